//! Prometheus text exposition, and (with the `admin` feature) the admin
//! listener that serves it. Counters are plain atomics where they are
//! counted; this only writes them out, so there is no registry and no
//! lock on any hot path.

use std::fmt::Write;

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

    pub fn finish(self) -> String {
        self.text
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
