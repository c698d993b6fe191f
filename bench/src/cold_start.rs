//! PF3, cold start: from spawning `amimono run` to the first `200` from the
//! boutique frontend (`GET /`), every job in one process (`_local`), two ways
//! taking turns:
//! - from the bundle (`amimono build examples/boutique`), whose graphs are
//!   precompiled for this engine: nothing is compiled at start;
//! - from the app directory with an empty compile cache: the frontend's
//!   graph is composed and compiled by cranelift at start.
//!
//! Each start is measured inside the host (`ready_ms`: from `main` to
//! listening with every graph pre-instantiated) and from outside (wall time
//! from spawn to the first 200). ratio = median `ready_ms` from the bundle;
//! goal ≤ 10 ms.

use crate::host_process::HostProcess;
use crate::stats::median;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The goal: ready within this many ms from the bundle.
const GOAL_MS: f64 = 10.0;

/// How the host starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    Bundle,
    Compile,
}

/// Medians per way of starting.
pub struct Pf3 {
    /// `[bundle, compile]`: ms from process start to "job running".
    ready_ms: [f64; 2],
    /// `[bundle, compile]`: ms from spawn to the first 200.
    first_response_ms: [f64; 2],
    rounds: usize,
    bundle_kib: u64,
}

impl Pf3 {
    /// The table, as markdown.
    pub fn table(&self) -> String {
        let ratio = self.ready_ms[0];
        format!(
            "PF3 cold start: boutique `_local`, spawn → first 200 on GET /, median of {} starts each ({} KiB bundle)\n\n\
             | start | ready inside the host, ms | spawn → first 200, ms |\n|---|---:|---:|\n\
             | precompiled bundle | {:.1} | {:.1} |\n| compiling at start | {:.1} | {:.1} |\n\n\
             ratio (ms to ready from the bundle): {ratio:.1} (goal ≤ {GOAL_MS}: {})\n",
            self.rounds,
            self.bundle_kib,
            self.ready_ms[0],
            self.first_response_ms[0],
            self.ready_ms[1],
            self.first_response_ms[1],
            if ratio <= GOAL_MS { "met" } else { "MISSED" }
        )
    }

    /// The JSON entry for `results.json`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "ratio": self.ready_ms[0],
            "goal": GOAL_MS,
            "met": self.ready_ms[0] <= GOAL_MS,
            "bundle": { "ready_ms": self.ready_ms[0], "first_response_ms": self.first_response_ms[0] },
            "compile_at_start": { "ready_ms": self.ready_ms[1], "first_response_ms": self.first_response_ms[1] },
            "rounds": self.rounds,
            "bundle_kib": self.bundle_kib,
        })
    }
}

/// Runs PF3.
pub fn run(root: &Path, quick: bool) -> Result<Pf3> {
    let rounds = if quick { 2 } else { 7 };
    let bundle = build_bundle(root)?;
    let bundle_kib = std::fs::metadata(&bundle).map(|m| m.len() / 1024)?;
    let cache = root.join("target/bench/pf3-cache");
    let data = root.join("target/bench/pf3-data");
    let mut ready = [Vec::new(), Vec::new()];
    let mut first = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (i, start) in [Start::Bundle, Start::Compile].into_iter().enumerate() {
            // A fresh compile cache every time: "compiling at start" compiles.
            let _ = std::fs::remove_dir_all(&cache);
            let app = match start {
                Start::Bundle => bundle.clone(),
                Start::Compile => root.join("examples/boutique"),
            };
            let host = HostProcess::start(
                root,
                "PF3 boutique",
                app.as_os_str(),
                &[
                    ("AMIMONO_JOB", "_local".as_ref()),
                    ("AMIMONO_CACHE_DIR", cache.as_os_str()),
                    ("AMIMONO_DATA_DIR", data.as_os_str()),
                    ("RUST_LOG", "warn,amimono::run=info".as_ref()),
                ],
                &["frontend"],
            )?;
            let url = host.url("frontend")?.to_string();
            first_ok(&url)?;
            first[i].push(host.spawned.elapsed().as_secs_f64() * 1e3);
            ready[i].push(host.ready_ms);
        }
    }
    Ok(Pf3 {
        ready_ms: [median(&ready[0]), median(&ready[1])],
        first_response_ms: [median(&first[0]), median(&first[1])],
        rounds,
        bundle_kib,
    })
}

/// `amimono build examples/boutique` into `target/bench/boutique.amimono`.
fn build_bundle(root: &Path) -> Result<PathBuf> {
    let out = root.join("target/bench/boutique.amimono");
    let status = Command::new(root.join("target/release/amimono"))
        .current_dir(root)
        .args(["build", "examples/boutique", "--out"])
        .arg(&out)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .status()
        .context("running `amimono build examples/boutique`")?;
    if !status.success() {
        bail!("`amimono build examples/boutique` failed ({status})");
    }
    Ok(out)
}

/// Sends `GET /` until the first 200 (a new connection each try).
fn first_ok(url: &str) -> Result<()> {
    let address = url.trim_start_matches("http://");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(status) = get_status(address) {
            if status == 200 {
                return Ok(());
            }
            bail!("GET {url}/ answered {status}");
        }
        if Instant::now() > deadline {
            bail!("{url} did not answer within 30 s");
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// The status of one plain `GET /` over a fresh connection.
fn get_status(address: &str) -> Result<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_nodelay(true)?;
    stream.write_all(
        format!("GET / HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("not an HTTP answer: {text:.80}"))
}
