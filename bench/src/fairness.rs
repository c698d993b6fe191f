//! FAIR: how much a CPU-bound guest delays the other requests of its
//! serving thread. One `amimono run` process with a single serving thread
//! (`AMIMONO_SERVING_THREADS=1`, so every connection shares it) serves a
//! spinning component (`edge` `/spin`, a busy loop within its CPU limit) and
//! another component (`other` `/`). Probes of `other` are timed with the
//! thread idle, then while a spin runs; the difference is the delay one
//! guest's CPU use adds to its neighbours. Goal: at most one epoch tick
//! (10 ms) at the median. Before the guest yielded through tokio's
//! `yield_now`, the single-threaded runtime polled for I/O only every 61
//! task polls and probes waited 0.35–0.54 s.

use crate::host_process::HostProcess;
use crate::stats::{median, percentile};
use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// One epoch tick of the host (`amimono::internals::EPOCH_TICK`), in ms.
const TICK_MS: f64 = 10.0;

/// The figures.
pub struct Fairness {
    idle_ms: Vec<f64>,
    busy_ms: Vec<f64>,
}

impl Fairness {
    fn added_p50(&self) -> f64 {
        median(&self.busy_ms) - median(&self.idle_ms)
    }

    /// The table.
    pub fn table(&self) -> String {
        let row = |name: &str, v: &[f64]| {
            format!(
                "| {name} | {} | {:.2} | {:.2} | {:.2} |\n",
                v.len(),
                median(v),
                percentile(v, 99.0),
                v.iter().copied().fold(0.0, f64::max)
            )
        };
        let mut out = String::from(
            "FAIR — delay a CPU-bound guest adds to other requests of its serving thread\n\n| probes of `other` | n | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|\n",
        );
        out.push_str(&row("thread idle", &self.idle_ms));
        out.push_str(&row("while `edge` spins", &self.busy_ms));
        out.push_str(&format!(
            "\nadded delay at the median: {:.2} ms (goal ≤ one epoch tick, {TICK_MS} ms)\n",
            self.added_p50()
        ));
        out
    }

    /// The JSON record.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "ratio": self.added_p50() / TICK_MS,
            "goal": 1.0,
            "met": self.added_p50() <= TICK_MS,
            "idle_p50_ms": median(&self.idle_ms),
            "busy_p50_ms": median(&self.busy_ms),
            "busy_p99_ms": percentile(&self.busy_ms, 99.0),
            "busy_max_ms": self.busy_ms.iter().copied().fold(0.0, f64::max),
        })
    }
}

const APP: &str = "[app]\nname = \"fairness\"\n\n\
    [components.edge]\nbinding = \"http\"\nsource = \"WASM/fixture_edge_http.wasm\"\n\n\
    [components.edge.links]\n\"fixtures:probe/control\" = \"probe\"\n\n\
    [components.other]\nbinding = \"http\"\nsource = \"WASM/fixture_trap_http.wasm\"\n\n\
    [components.probe]\nbinding = \"rpc\"\nsource = \"WASM/fixture_trap_http.wasm\"\n\n\
    [jobs.one]\ncomponents = [\"edge\", \"other\", \"probe\"]\n";

/// `GET <path>` on a new connection; the time to the full answer, in ms.
fn timed_get(address: &str, path: &str) -> Result<f64> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(address).context("connecting")?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    if !answer.starts_with(b"HTTP/1.1 200") {
        bail!(
            "GET {path}: {}",
            String::from_utf8_lossy(&answer[..answer.len().min(200)])
        );
    }
    Ok(started.elapsed().as_secs_f64() * 1e3)
}

/// Runs FAIR.
pub fn run(root: &Path, quick: bool) -> Result<Fairness> {
    let dir = root.join("target/bench/fair");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let wasm = root.join("target/wasm32-wasip2/release");
    std::fs::write(
        dir.join("amimono.toml"),
        APP.replace("WASM", &wasm.display().to_string()),
    )
    .context("writing the FAIR app")?;
    let host = HostProcess::start(
        root,
        "the FAIR job",
        dir.as_os_str(),
        &[
            ("AMIMONO_JOB", "one".as_ref()),
            ("AMIMONO_SERVING_THREADS", "1".as_ref()),
        ],
        &["edge", "other"],
    )?;
    let address = |label: &str| -> Result<String> {
        Ok(host.url(label)?.trim_start_matches("http://").to_string())
    };
    let (edge, other) = (address("edge")?, address("other")?);
    let probes = if quick { 20 } else { 100 };
    let gap = Duration::from_millis(30);
    for _ in 0..5 {
        timed_get(&other, "/")?;
    }
    let mut idle_ms = Vec::new();
    for _ in 0..probes {
        idle_ms.push(timed_get(&other, "/")?);
        std::thread::sleep(gap);
    }
    // Spins of 2 s, within the default 10 s CPU limit, back to back while
    // the probes run.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spinner = {
        let (edge, stop) = (edge.clone(), stop.clone());
        std::thread::spawn(move || -> Result<()> {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                timed_get(&edge, "/spin?ms=2000")?;
            }
            Ok(())
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let mut busy_ms = Vec::new();
    for _ in 0..probes {
        busy_ms.push(timed_get(&other, "/")?);
        std::thread::sleep(gap);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    spinner
        .join()
        .map_err(|_| anyhow::anyhow!("the spinning client panicked"))??;
    Ok(Fairness { idle_ms, busy_ms })
}
