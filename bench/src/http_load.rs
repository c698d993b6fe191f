//! HTTP serving under load: `amimono run` (a real process) serving the hello
//! app's `GET /hello/world`, a fresh instance of the three-component graph
//! per request, driven by closed-loop keep-alive connections (1 and 4) from
//! this process. Reports requests/s and latency percentiles, to show how the
//! per-request-instance model scales across the machine's cores.

use crate::child::ChildGuard;
use crate::stats::{median, percentile};
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// One load level's figures.
pub struct Level {
    connections: usize,
    requests_per_s: f64,
    p50_us: f64,
    p99_us: f64,
}

/// All load levels.
pub struct HttpLoad {
    levels: Vec<Level>,
    seconds: f64,
}

impl HttpLoad {
    /// The table, as markdown.
    pub fn table(&self) -> String {
        let mut out = format!(
            "HTTP: amimono run, GET /hello/world (fresh 3-component graph per request), closed loop, {:.0} s per level\n\n\
             | connections | requests/s | p50 µs | p99 µs |\n|---:|---:|---:|---:|\n",
            self.seconds
        );
        for l in &self.levels {
            out.push_str(&format!(
                "| {} | {:.0} | {:.0} | {:.0} |\n",
                l.connections, l.requests_per_s, l.p50_us, l.p99_us
            ));
        }
        out
    }

    /// The JSON entry for `results.json`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.levels
                .iter()
                .map(|l| {
                    serde_json::json!({
                        "connections": l.connections,
                        "requests_per_s": l.requests_per_s,
                        "p50_us": l.p50_us,
                        "p99_us": l.p99_us,
                    })
                })
                .collect(),
        )
    }
}

/// Runs the measure against a freshly started host.
pub fn run(root: &Path, quick: bool) -> Result<HttpLoad> {
    let seconds = if quick { 1.0 } else { 5.0 };
    let mut child = Command::new(root.join("target/release/amimono"))
        .current_dir(root)
        .args(["run", "examples/hello"])
        .env("AMIMONO_JOB", "_local")
        // The visit counter in memory: this measures the host, not SQLite.
        .env("AMIMONO_KEYVALUE", "memory")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting target/release/amimono (run `cargo xtask build`)")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let host = ChildGuard(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .context("reading the host's URL")?;
    let Some(url) = line.trim().strip_prefix("frontend: ") else {
        bail!("unexpected first line from the host: {line:?}");
    };
    let address = url.trim_start_matches("http://").to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut levels = Vec::new();
    for connections in [1usize, 4] {
        levels.push(runtime.block_on(level(&address, connections, seconds))?);
    }
    drop(host);
    Ok(HttpLoad { levels, seconds })
}

async fn level(address: &str, connections: usize, seconds: f64) -> Result<Level> {
    // Warm up: one request per connection.
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let address = address.to_string();
        tasks.push(tokio::spawn(
            async move { connection(&address, deadline).await },
        ));
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(Level {
        connections,
        requests_per_s: latencies.len() as f64 / elapsed,
        p50_us: median(&latencies),
        p99_us: percentile(&latencies, 99.0),
    })
}

/// One keep-alive connection sending requests back to back until `deadline`;
/// returns each request's latency in µs.
async fn connection(address: &str, deadline: Instant) -> Result<Vec<f64>> {
    let stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut latencies = Vec::new();
    while Instant::now() < deadline {
        let request = hyper::Request::get("/hello/world")
            .header("host", address)
            .body(Empty::<Bytes>::new())?;
        let started = Instant::now();
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        latencies.push(started.elapsed().as_secs_f64() * 1e6);
        if status != 200 || !body.starts_with(b"Hello, world! (visit ") {
            bail!("unexpected answer {status}: {body:?}");
        }
    }
    Ok(latencies)
}
