//! A gateway's own figures, from its admin listener's `GET /metrics`.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Every unlabelled sample of the Prometheus text, by name.
pub async fn metrics(admin: SocketAddr) -> anyhow::Result<Vec<(String, f64)>> {
    let mut stream = TcpStream::connect(admin).await.with_context(|| format!("connect {admin}"))?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    let samples = text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.contains('{'))
        .filter_map(|line| {
            let (name, value) = line.split_once(' ')?;
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect();
    Ok(samples)
}

pub fn sample(samples: &[(String, f64)], name: &str) -> Option<f64> {
    samples.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
}
