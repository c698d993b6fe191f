//! A closed-loop HTTP load generator: `connections` keep-alive connections,
//! each sending `GET <path>` back to back for a while, checking every answer.
//! Used wherever two servers are compared under the same load (PF4).

use crate::stats::{median, percentile};
use anyhow::{Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// What one load level measured.
#[derive(Debug, Clone, Copy)]
pub struct LoadFigures {
    /// Requests answered per second.
    pub requests_per_s: f64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 99th-percentile latency, µs.
    pub p99_us: f64,
}

/// The JSON of one server's levels: `figures[i]` measured with
/// `connections[i]` connections.
pub fn levels_json(connections: &[usize], figures: &[LoadFigures]) -> Vec<serde_json::Value> {
    connections
        .iter()
        .zip(figures)
        .map(|(c, f)| {
            serde_json::json!({
                "connections": c,
                "requests_per_s": f.requests_per_s,
                "p50_us": f.p50_us,
                "p99_us": f.p99_us,
            })
        })
        .collect()
}

/// Loads `address` (`host:port`) with `connections` connections for
/// `seconds`; every answer must be 200 with a body starting with `expect`.
pub async fn load(
    address: &str,
    path: &str,
    expect: &'static [u8],
    connections: usize,
    seconds: f64,
) -> Result<LoadFigures> {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (address, path) = (address.to_string(), path.to_string());
        tasks.push(tokio::spawn(async move {
            connection(&address, &path, expect, deadline).await
        }));
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(LoadFigures {
        requests_per_s: latencies.len() as f64 / elapsed,
        p50_us: median(&latencies),
        p99_us: percentile(&latencies, 99.0),
    })
}

/// One keep-alive connection sending requests back to back until `deadline`;
/// each request's latency in µs.
async fn connection(
    address: &str,
    path: &str,
    expect: &[u8],
    deadline: Instant,
) -> Result<Vec<f64>> {
    let stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut latencies = Vec::new();
    while Instant::now() < deadline {
        let request = hyper::Request::get(path)
            .header("host", address)
            .body(Empty::<Bytes>::new())?;
        let started = Instant::now();
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        latencies.push(started.elapsed().as_secs_f64() * 1e6);
        if status != 200 || !body.starts_with(expect) {
            bail!("unexpected answer from {address}{path}: {status} {body:?}");
        }
    }
    Ok(latencies)
}
