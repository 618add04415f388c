//! Figures: latency histograms, a live progress bar, and the final report
//! as a table or as JSON.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Map, Value};

/// Latencies in microseconds, 1 µs to 60 s at 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

pub fn record(hist: &mut Histogram<u64>, latency: Duration) {
    hist.saturating_record(latency.as_micros().max(1) as u64);
}

fn ms(micros: u64) -> f64 {
    (micros as f64 / 1000.0 * 1000.0).round() / 1000.0
}

/// `p50_ms`, `p99_ms`, `p999_ms`, `max_ms` under `prefix`.
pub fn percentiles(report: &mut Report, prefix: &str, hist: &Histogram<u64>) {
    if hist.is_empty() {
        return;
    }
    report.set(&format!("{prefix}p50_ms"), ms(hist.value_at_quantile(0.50)));
    report.set(&format!("{prefix}p99_ms"), ms(hist.value_at_quantile(0.99)));
    report.set(&format!("{prefix}p999_ms"), ms(hist.value_at_quantile(0.999)));
    report.set(&format!("{prefix}max_ms"), ms(hist.max()));
}

/// A live counter on stderr (hidden when stderr is not a terminal).
pub struct Progress {
    bar: ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
}

impl Progress {
    pub fn start(label: &str, total: Option<u64>, done: Arc<AtomicU64>) -> Progress {
        let bar = match total {
            Some(total) => ProgressBar::new(total),
            None => ProgressBar::new_spinner(),
        };
        let template = if total.is_some() {
            "{prefix:>9} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec})"
        } else {
            "{prefix:>9} [{elapsed_precise}] {spinner} {pos} ({per_sec})"
        };
        bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
        bar.set_prefix(label.to_owned());
        let ticking = bar.clone();
        let ticker = tokio::spawn(async move {
            loop {
                ticking.set_position(done.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Progress { bar, ticker }
    }

    pub fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}

/// The result of one scenario: named figures, in order, plus integrity errors.
pub struct Report {
    pub scenario: &'static str,
    figures: Map<String, Value>,
    errors: Vec<String>,
    error_count: usize,
}

/// Errors listed in full; past that only counted.
const ERRORS_SHOWN: usize = 20;

impl Report {
    pub fn new(scenario: &'static str) -> Report {
        Report { scenario, figures: Map::new(), errors: Vec::new(), error_count: 0 }
    }

    pub fn set(&mut self, name: &str, value: impl Into<Value>) {
        self.figures.insert(name.to_owned(), value.into());
    }

    /// A figure set before, as a number.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.figures.get(name)?.as_f64()
    }

    pub fn error(&mut self, error: impl Into<String>) {
        self.error_count += 1;
        if self.errors.len() < ERRORS_SHOWN {
            self.errors.push(error.into());
        }
    }

    pub fn ok(&self) -> bool {
        self.error_count == 0
    }

    pub fn to_json(&self) -> Value {
        json!({"scenario": self.scenario, "ok": self.ok(), "figures": self.figures, "error_count": self.error_count, "errors": self.errors})
    }

    pub fn print(&self, as_json: bool) {
        if as_json {
            println!("{}", self.to_json());
            return;
        }
        let width = self.figures.keys().map(String::len).max().unwrap_or(0).max(8);
        println!("{}", self.scenario);
        for (name, value) in &self.figures {
            let shown = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            println!("  {name:<width$}  {shown}");
        }
        println!("  {:<width$}  {}", "result", if self.ok() { "OK" } else { "FAILED" });
        for error in &self.errors {
            println!("  ! {error}");
        }
        if self.error_count > self.errors.len() {
            println!("  ! … and {} more", self.error_count - self.errors.len());
        }
    }
}
