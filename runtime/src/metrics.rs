//! Prometheus text exposition, and (with the `admin` feature) the admin
//! listener that serves it. A binary declares its metrics once, as a table
//! ([`metric_table!`](crate::metric_table): name, help, kind, label); its
//! [`Counters`] are plain atomics counted where the thing happens, and a
//! [`Snapshot`] holds what is read from its state for one exposition. There
//! is no registry and no lock on any hot path.
//!
//! prometheus-client was weighed and not taken: it writes OpenMetrics (a
//! `# EOF` line, `_total` added to counter names), which would rename every
//! metric operators already scrape.

use std::fmt::Write;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[cfg(feature = "admin")]
pub use admin::serve_admin;

/// A sample's labels: name and value.
pub type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, help, "counter", vec![(Vec::new(), value as f64)]);
    }

    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, help, "gauge", vec![(Vec::new(), value)]);
    }

    /// One metric with a sample per label set.
    pub fn family(&mut self, name: &str, help: &str, kind: &str, samples: Vec<(Labels, f64)>) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
                .collect();
            let labels = if labels.is_empty() { String::new() } else { format!("{{{}}}", labels.join(",")) };
            let _ = writeln!(self.text, "{name}{labels} {value}");
        }
    }

    /// Every metric of `specs`, with `value(i)` for the i-th: those of one
    /// name, one after the other, as one family.
    pub fn table(&mut self, specs: &[Spec], value: impl Fn(usize) -> f64) {
        let mut at = 0;
        while at < specs.len() {
            let spec = &specs[at];
            let same = specs[at..].iter().take_while(|other| other.name == spec.name).count();
            let samples = (at..at + same)
                .map(|i| (specs[i].label.map(|(k, v)| vec![(k, v.to_owned())]).unwrap_or_default(), value(i)))
                .collect();
            self.family(spec.name, spec.help, spec.kind.as_str(), samples);
            at += same;
        }
    }

    pub fn finish(self) -> String {
        self.text
    }
}

/// What a metric is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// One metric, or one sample of a family (`label`: its label and value).
#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub label: Option<(&'static str, &'static str)>,
}

/// A declared set of metrics: an enum whose variants index `SPECS`.
pub trait Table: Copy {
    const SPECS: &'static [Spec];
    fn index(self) -> usize;
}

/// Declares a metric table: an enum, one variant per metric, each with its
/// kind, name and help; a labelled family lists a variant per label value.
///
/// ```
/// runtime::metric_table! {
///     /// What a server counts.
///     pub enum Count {
///         Requests: Counter "app_requests_total" "Requests served.",
///         Counter "app_refused_total" "Requests refused." by reason {
///             RefusedRate = "rate",
///             RefusedFull = "full",
///         },
///     }
/// }
/// let counts = runtime::metrics::Counters::<Count>::default();
/// counts.add(Count::RefusedRate, 2);
/// let mut out = runtime::metrics::Exposition::default();
/// counts.render(&mut out);
/// assert!(out.finish().contains("app_refused_total{reason=\"rate\"} 2\napp_refused_total{reason=\"full\"} 0"));
/// ```
#[macro_export]
macro_rules! metric_table {
    ($(#[$doc:meta])* $vis:vis enum $table:ident { $($body:tt)* }) => {
        $crate::metric_table!(@munch [$(#[$doc])*] [$vis] $table [] [] $($body)*);
    };
    // A family: a variant per value of its label.
    (@munch $doc:tt $vis:tt $table:ident [$($variants:tt)*] [$($specs:tt)*]
        $kind:ident $name:literal $help:literal by $label:ident {
            $($(#[$vdoc:meta])* $variant:ident = $value:literal),* $(,)?
        } $(, $($rest:tt)*)?) => {
        $crate::metric_table!(@munch $doc $vis $table
            [$($variants)* $($(#[$vdoc])* $variant,)*]
            [$($specs)* $($crate::metrics::Spec {
                name: $name,
                help: $help,
                kind: $crate::metrics::Kind::$kind,
                label: Some((stringify!($label), $value)),
            },)*]
            $($($rest)*)?);
    };
    // One metric.
    (@munch $doc:tt $vis:tt $table:ident [$($variants:tt)*] [$($specs:tt)*]
        $(#[$vdoc:meta])* $variant:ident : $kind:ident $name:literal $help:literal $(, $($rest:tt)*)?) => {
        $crate::metric_table!(@munch $doc $vis $table
            [$($variants)* $(#[$vdoc])* $variant,]
            [$($specs)* $crate::metrics::Spec {
                name: $name,
                help: $help,
                kind: $crate::metrics::Kind::$kind,
                label: None,
            },]
            $($($rest)*)?);
    };
    (@munch [$(#[$doc:meta])*] [$vis:vis] $table:ident [$($variants:tt)*] [$($specs:tt)*]) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        $vis enum $table {
            $($variants)*
        }

        impl $crate::metrics::Table for $table {
            const SPECS: &'static [$crate::metrics::Spec] = &[$($specs)*];

            fn index(self) -> usize {
                self as usize
            }
        }
    };
}

/// A table's counters and gauges kept as atomics, changed where things
/// happen: one increment API for all of them.
pub struct Counters<T> {
    values: Box<[AtomicU64]>,
    table: PhantomData<T>,
}

impl<T: Table> Default for Counters<T> {
    fn default() -> Self {
        Counters { values: T::SPECS.iter().map(|_| AtomicU64::new(0)).collect(), table: PhantomData }
    }
}

impl<T: Table> Counters<T> {
    pub fn add(&self, which: T, n: u64) {
        self.values[which.index()].fetch_add(n, Relaxed);
    }

    /// A gauge goes down.
    pub fn sub(&self, which: T, n: u64) {
        self.values[which.index()].fetch_sub(n, Relaxed);
    }

    pub fn set(&self, which: T, n: u64) {
        self.values[which.index()].store(n, Relaxed);
    }

    pub fn get(&self, which: T) -> u64 {
        self.values[which.index()].load(Relaxed)
    }

    pub fn render(&self, out: &mut Exposition) {
        out.table(T::SPECS, |i| self.values[i].load(Relaxed) as f64);
    }
}

/// A table's values read from the state for one exposition.
pub struct Snapshot<T> {
    values: Vec<f64>,
    table: PhantomData<T>,
}

impl<T: Table> Default for Snapshot<T> {
    fn default() -> Self {
        Snapshot { values: vec![0.0; T::SPECS.len()], table: PhantomData }
    }
}

impl<T: Table> Snapshot<T> {
    pub fn set(&mut self, which: T, value: f64) -> &mut Self {
        self.values[which.index()] = value;
        self
    }

    pub fn render(&self, out: &mut Exposition) {
        out.table(T::SPECS, |i| self.values[i]);
    }
}

#[cfg(feature = "admin")]
mod admin {
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::Arc;

    use bytes::Bytes;
    use http::{Response, StatusCode};
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;

    const ADMIN_HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

    /// Serves `GET /metrics` (Prometheus text from `render`) and `GET /healthz`
    /// on `addr` until shutdown.
    pub async fn serve_admin<F>(addr: SocketAddr, shutdown: crate::Shutdown, render: F) -> anyhow::Result<()>
    where
        F: Fn() -> String + Send + Sync + 'static,
    {
        let listener = TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("bind admin {addr}: {e}"))?;
        let render = Arc::new(render);
        crate::accept_loop(listener, crate::Slots::new(64), shutdown, move |stream, _| {
            let render = render.clone();
            async move {
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let render = render.clone();
                    async move {
                        let (status, content_type, body) = match req.uri().path() {
                            "/metrics" => (StatusCode::OK, "text/plain; version=0.0.4", render()),
                            "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
                            _ => (StatusCode::NOT_FOUND, "text/plain", "not found\n".to_owned()),
                        };
                        let response =
                            Response::builder().status(status).header(http::header::CONTENT_TYPE, content_type);
                        Ok::<_, Infallible>(response.body(Full::new(Bytes::from(body))).expect("valid response"))
                    }
                });
                // One request per connection, its head within the timeout: a
                // scraper cannot hold one of the few places.
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(ADMIN_HEADER_TIMEOUT)
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
        })
        .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::metric_table! {
        enum Now {
            Up: Gauge "x_up" "Whether it is up.",
            Counter "x_lights_total" "Lights, by colour." by colour {
                Red = "red",
                Green = "green",
            },
        }
    }

    #[test]
    fn a_table_writes_a_family_for_each_name_in_order() {
        let counts = Counters::<Now>::default();
        counts.add(Now::Green, 3);
        counts.add(Now::Up, 2);
        counts.sub(Now::Up, 1);
        let mut out = Exposition::default();
        counts.render(&mut out);
        let mut snapshot = Snapshot::<Now>::default();
        snapshot.set(Now::Red, 7.0);
        snapshot.render(&mut out);
        let text = out.finish();
        let expected = "# HELP x_up Whether it is up.\n# TYPE x_up gauge\nx_up 1\n\
            # HELP x_lights_total Lights, by colour.\n# TYPE x_lights_total counter\n\
            x_lights_total{colour=\"red\"} 0\nx_lights_total{colour=\"green\"} 3\n";
        assert!(text.starts_with(expected), "{text}");
        assert!(text.ends_with("x_lights_total{colour=\"red\"} 7\nx_lights_total{colour=\"green\"} 0\n"), "{text}");
    }

    #[test]
    fn writes_prometheus_text() {
        let mut out = Exposition::default();
        out.counter("x_total", "Things.", 3);
        out.family("y", "Per thing.", "gauge", vec![(vec![("backend", "unix:/a\"b".into())], 1.0)]);
        assert_eq!(
            out.finish(),
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total 3\n# HELP y Per thing.\n# TYPE y gauge\ny{backend=\"unix:/a\\\"b\"} 1\n"
        );
    }
}
