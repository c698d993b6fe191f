//! An open-loop HTTP load generator: requests (or flows of requests) start
//! on a fixed schedule whatever the server's pace, each on a pooled
//! keep-alive connection (a new one when all are busy), and latency is
//! counted from the *scheduled* start, so a slow server cannot hide its
//! queueing by slowing the generator down (no coordinated omission).

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One HTTP request of a flow.
#[derive(Debug, Clone)]
pub struct Step {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// Path and query.
    pub path: String,
    /// Form body for `POST` (sent as `application/x-www-form-urlencoded`).
    pub form: Option<String>,
    /// The status the server must answer.
    pub expect_status: u16,
}

/// A sequence of requests sent one after another (e.g. add to cart, then
/// check out); `cookie(n)` gives the `Cookie` header of the `n`-th flow.
pub struct Flow {
    /// The requests.
    pub steps: Vec<Step>,
    /// Flows started per second.
    pub rate: f64,
    /// The `Cookie` header of flow number `n`.
    pub cookie: Box<dyn Fn(u64) -> String + Send + Sync>,
}

/// A shared HTTP client with a keep-alive connection pool.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A client with Nagle off and a roomy idle pool.
pub fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build(connector)
}

/// Runs `flows` side by side against `base` (`http://host:port`) for
/// `seconds`, starting flow `f` every `1 / flows[f].rate` s; per flow, the
/// latency of each run in µs, from its scheduled start to the end of its
/// last response.
///
/// The schedule is kept by this (blocking) thread, not by a tokio timer
/// (whose 1 ms granularity would add up to a millisecond to every latency):
/// it sleeps until shortly before each start, spins the rest, and hands the
/// flow to `runtime`.
pub fn run(
    runtime: &tokio::runtime::Runtime,
    client: &HttpClient,
    base: &str,
    flows: &[Arc<Flow>],
    seconds: f64,
    first_number: u64,
) -> Result<Vec<Vec<f64>>> {
    // Every start, in time order: (offset, flow, number).
    let mut starts: Vec<(Duration, usize, u64)> = Vec::new();
    for (f, flow) in flows.iter().enumerate() {
        let interval = Duration::from_secs_f64(1.0 / flow.rate);
        let count = (seconds * flow.rate).round() as u64;
        starts.extend((0..count).map(|i| (interval.mul_f64(i as f64), f, i)));
    }
    starts.sort();
    let origin = Instant::now() + Duration::from_millis(5);
    let mut tasks = Vec::with_capacity(starts.len());
    for (offset, f, i) in starts {
        let scheduled = origin + offset;
        wait_until(scheduled);
        let (client, base, flow) = (client.clone(), base.to_string(), flows[f].clone());
        let task = runtime.spawn(async move {
            let cookie = (flow.cookie)(first_number + i);
            for step in &flow.steps {
                send(&client, &base, step, &cookie).await?;
            }
            Ok::<f64, anyhow::Error>(scheduled.elapsed().as_secs_f64() * 1e6)
        });
        tasks.push((f, task));
    }
    let mut latencies = vec![Vec::new(); flows.len()];
    for (f, task) in tasks {
        latencies[f].push(runtime.block_on(task).context("a load task failed")??);
    }
    Ok(latencies)
}

/// Sleeps until shortly before `at`, then spins until it.
pub fn wait_until(at: Instant) {
    const SPIN: Duration = Duration::from_micros(100);
    let now = Instant::now();
    if at > now + SPIN {
        std::thread::sleep(at - now - SPIN);
    }
    while Instant::now() < at {
        std::hint::spin_loop();
    }
}

/// Sends one step and checks its status; reads the whole body.
pub async fn send(client: &HttpClient, base: &str, step: &Step, cookie: &str) -> Result<()> {
    let mut request = hyper::Request::builder()
        .method(step.method)
        .uri(format!("{base}{}", step.path))
        .header("cookie", cookie);
    let body = match &step.form {
        Some(form) => {
            request = request.header("content-type", "application/x-www-form-urlencoded");
            Full::new(Bytes::from(form.clone()))
        }
        None => Full::new(Bytes::new()),
    };
    let started = Instant::now();
    let response = client
        .request(request.body(body)?)
        .await
        .with_context(|| format!("{} {base}{}", step.method, step.path))?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    if status != step.expect_status {
        bail!(
            "{} {base}{} answered {status} (expected {}) after {:?}: {}",
            step.method,
            step.path,
            step.expect_status,
            started.elapsed(),
            String::from_utf8_lossy(&body)
                .chars()
                .take(300)
                .collect::<String>()
        );
    }
    Ok(())
}
