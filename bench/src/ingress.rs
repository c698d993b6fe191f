//! PF4, HTTP ingress: one hello-world `wasi:http` component
//! (`tests/fixtures/hello-world-http`, which imports only WASI) served by
//! `amimono run` and by `wasmtime serve` 48.0.8 — its default configuration
//! and with its pooling allocator — under the same closed-loop load (the same
//! generator, the same connection counts), every server giving each request a
//! fresh instance. Servers take turns, round by round; medians of rounds.
//!
//! ratio = amimono requests/s ÷ the best `wasmtime serve` requests/s, at the
//! worst connection count; goal ≥ 2. `wasmtime` is installed under
//! `target/tools` by `cargo xtask bench` (full run only); without it (the
//! quick run in CI) amimono is measured alone and the ratio is left out.
//!
//! `amimono run` is `$AMIMONO_BIN` or `target/release/amimono`;
//! `AMIMONO_BENCH_BASELINE_BIN=<binary>` adds a row for that binary's
//! `amimono run` (e.g. a build of an older commit), measured in the same
//! rounds, with amimono ÷ baseline per connection count.

use crate::child::ChildGuard;
use crate::closed_loop::{LoadFigures, levels_json, load};
use crate::host_process::{HostProcess, free_port};
use crate::stats::median;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The goal: amimono serves at least this many times wasmtime serve's rate.
const GOAL: f64 = 2.0;
/// Observation on (metrics, sampled local calls) against off: requests/s
/// may drop by 10 % at most.
const OBSERVED_GOAL: f64 = 0.9;
/// The body every server answers.
const BODY: &[u8] = b"Hello, world!";

/// The servers compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Amimono,
    /// `amimono run` with `AMIMONO_METRICS=off`.
    AmimonoMetricsOff,
    /// `amimono run` with metrics and 1 % of requests on tapped graphs.
    AmimonoSampled,
    /// As [`Server::AmimonoSampled`], every request's span exported over
    /// OTLP/HTTP (to [`crate::otlp_sink`]).
    AmimonoTraced,
    /// `amimono run` from [`crate::host_process::BASELINE_ENV`]'s binary.
    AmimonoBaseline,
    Wasmtime,
    WasmtimePooling,
}

impl Server {
    fn label(self) -> &'static str {
        match self {
            Server::Amimono => "amimono run",
            Server::AmimonoMetricsOff => "amimono run, AMIMONO_METRICS=off",
            Server::AmimonoSampled => "amimono run, AMIMONO_LOCAL_SAMPLE_RATIO=0.01",
            Server::AmimonoTraced => "amimono run, 1 % tapped, spans exported (OTLP/HTTP)",
            Server::AmimonoBaseline => "amimono run (baseline binary)",
            Server::Wasmtime => "wasmtime serve 48.0.8",
            Server::WasmtimePooling => "wasmtime serve 48.0.8 -O pooling-allocator",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Server::Amimono => "amimono",
            Server::AmimonoMetricsOff => "amimono_metrics_off",
            Server::AmimonoSampled => "amimono_sampled",
            Server::AmimonoTraced => "amimono_traced",
            Server::AmimonoBaseline => "amimono_baseline",
            Server::Wasmtime => "wasmtime_serve",
            Server::WasmtimePooling => "wasmtime_serve_pooling",
        }
    }
}

/// Medians per server and connection count.
pub struct Pf4 {
    connections: Vec<usize>,
    /// `(server, figures per connection count)`.
    figures: Vec<(Server, Vec<LoadFigures>)>,
    seconds: f64,
    rounds: usize,
    wasmtime: Option<PathBuf>,
    baseline: Option<PathBuf>,
    /// The `amimono` binary measured ([`crate::host_process::amimono_binary`]).
    binary: PathBuf,
}

impl Pf4 {
    fn of(&self, server: Server) -> Option<&[LoadFigures]> {
        self.figures
            .iter()
            .find(|(s, _)| *s == server)
            .map(|(_, f)| f.as_slice())
    }

    /// amimono ÷ the best wasmtime serve, per connection count.
    fn ratios(&self) -> Option<Vec<f64>> {
        let amimono = self.of(Server::Amimono)?;
        let plain = self.of(Server::Wasmtime)?;
        let pooling = self.of(Server::WasmtimePooling)?;
        Some(
            (0..self.connections.len())
                .map(|i| {
                    amimono[i].requests_per_s
                        / plain[i].requests_per_s.max(pooling[i].requests_per_s)
                })
                .collect(),
        )
    }

    fn ratio(&self) -> Option<f64> {
        self.ratios()?.into_iter().reduce(f64::min)
    }

    /// requests/s of `server` ÷ metrics off, per connection count.
    fn against_metrics_off(&self, server: Server) -> Option<Vec<f64>> {
        let on = self.of(server)?;
        let off = self.of(Server::AmimonoMetricsOff)?;
        Some(
            on.iter()
                .zip(off)
                .map(|(on, off)| on.requests_per_s / off.requests_per_s)
                .collect(),
        )
    }

    /// The table, as markdown.
    pub fn table(&self) -> String {
        let mut out = format!(
            "PF4 HTTP ingress: hello-world wasi:http component, fresh instance per request, closed loop, {} round(s) of {:.0} s per server and level\n\n\
             | server | connections | requests/s | p50 µs | p99 µs |\n|---|---:|---:|---:|---:|\n",
            self.rounds, self.seconds
        );
        for (server, figures) in &self.figures {
            for (connections, f) in self.connections.iter().zip(figures) {
                out.push_str(&format!(
                    "| {} | {connections} | {:.0} | {:.0} | {:.0} |\n",
                    server.label(),
                    f.requests_per_s,
                    f.p50_us,
                    f.p99_us
                ));
            }
        }
        if let Some(baseline) = &self.baseline {
            out.push_str(&format!(
                "\namimono run binary: {}; baseline binary ({}): {}\n",
                self.binary.display(),
                crate::host_process::BASELINE_ENV,
                baseline.display()
            ));
            if let (Some(now), Some(before)) =
                (self.of(Server::Amimono), self.of(Server::AmimonoBaseline))
            {
                let ratios: Vec<String> = self
                    .connections
                    .iter()
                    .zip(now.iter().zip(before))
                    .map(|(c, (n, b))| {
                        format!("{c} connections {:.3}", n.requests_per_s / b.requests_per_s)
                    })
                    .collect();
                out.push_str(&format!(
                    "amimono run ÷ baseline, requests/s: {}\n",
                    ratios.join(", ")
                ));
            }
        }
        for (server, what) in [
            (Server::Amimono, "metrics on (the default)"),
            (Server::AmimonoSampled, "metrics on, 1 % of requests tapped"),
            (
                Server::AmimonoTraced,
                "metrics on, 1 % tapped, every request's span exported",
            ),
        ] {
            if let Some(ratios) = self.against_metrics_off(server) {
                let levels: Vec<String> = self
                    .connections
                    .iter()
                    .zip(ratios)
                    .map(|(c, r)| format!("{c} connections {r:.3}"))
                    .collect();
                out.push_str(&format!(
                    "\n{what} ÷ metrics off, requests/s: {} (goal ≥ {OBSERVED_GOAL})",
                    levels.join(", ")
                ));
            }
        }
        out.push('\n');
        match self.ratio() {
            Some(ratio) => out.push_str(&format!(
                "\nratio amimono ÷ best wasmtime serve (worst level): {ratio:.2} (goal ≥ {GOAL}: {})\n",
                if ratio >= GOAL { "met" } else { "MISSED" }
            )),
            None => out.push_str(
                "\nwasmtime serve is not installed (the full `cargo xtask bench` installs it): no ratio\n",
            ),
        }
        out
    }

    /// The JSON entry for `results.json`.
    pub fn json(&self) -> serde_json::Value {
        let servers: serde_json::Map<String, serde_json::Value> = self
            .figures
            .iter()
            .map(|(server, figures)| {
                let levels = levels_json(&self.connections, figures);
                (server.key().to_string(), levels.into())
            })
            .collect();
        let ratio = self.ratio();
        serde_json::json!({
            "ratio": ratio,
            "goal": GOAL,
            "met": ratio.map(|r| r >= GOAL),
            "ratios_per_level": self.ratios(),
            "metrics_on_vs_off": self.against_metrics_off(Server::Amimono),
            "sampled_vs_metrics_off": self.against_metrics_off(Server::AmimonoSampled),
            "traced_vs_metrics_off": self.against_metrics_off(Server::AmimonoTraced),
            "observed_goal": OBSERVED_GOAL,
            "connections": self.connections,
            "servers": servers,
            "seconds_per_round": self.seconds,
            "rounds": self.rounds,
            "wasmtime": self.wasmtime.as_ref().map(|p| p.display().to_string()),
            "baseline": self.baseline.as_ref().map(|p| p.display().to_string()),
            "binary": self.binary.display().to_string(),
        })
    }
}

/// Where `cargo xtask bench` installs wasmtime-cli.
pub fn wasmtime_path(root: &Path) -> PathBuf {
    root.join("target/tools/bin/wasmtime")
}

/// Runs PF4.
pub fn run(root: &Path, quick: bool) -> Result<Pf4> {
    let (rounds, seconds) = if quick { (1, 1.0) } else { (3, 4.0) };
    let connections = vec![4usize, 16];
    let component = root.join("target/wasm32-wasip2/release/fixture_hello_world_http.wasm");
    if !component.exists() {
        bail!(
            "{} is missing: run `cargo xtask build`",
            component.display()
        );
    }
    let wasmtime = Some(wasmtime_path(root)).filter(|p| p.exists());
    let baseline = crate::host_process::baseline_binary()?;
    let mut servers = vec![
        Server::Amimono,
        Server::AmimonoMetricsOff,
        Server::AmimonoSampled,
        Server::AmimonoTraced,
    ];
    if baseline.is_some() {
        servers.push(Server::AmimonoBaseline);
    }
    if wasmtime.is_some() {
        servers.extend([Server::Wasmtime, Server::WasmtimePooling]);
    }

    let app = write_app(root, &component)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // samples[server][level] = requests/s, p50, p99 per round.
    let mut samples = vec![vec![Vec::<LoadFigures>::new(); connections.len()]; servers.len()];
    for _ in 0..rounds {
        for (s, server) in servers.iter().enumerate() {
            let running = start(
                root,
                *server,
                &app,
                &component,
                wasmtime.as_deref(),
                baseline.as_deref(),
            )?;
            for (l, c) in connections.iter().enumerate() {
                // A short warm-up at this level, then the measured run.
                runtime.block_on(load(&running.address, "/", BODY, *c, 0.2))?;
                samples[s][l].push(runtime.block_on(load(
                    &running.address,
                    "/",
                    BODY,
                    *c,
                    seconds,
                ))?);
            }
        }
    }
    let figures = servers
        .iter()
        .zip(samples)
        .map(|(server, levels)| {
            let medians = levels
                .iter()
                .map(|rounds| LoadFigures {
                    requests_per_s: median(
                        &rounds.iter().map(|f| f.requests_per_s).collect::<Vec<_>>(),
                    ),
                    p50_us: median(&rounds.iter().map(|f| f.p50_us).collect::<Vec<_>>()),
                    p99_us: median(&rounds.iter().map(|f| f.p99_us).collect::<Vec<_>>()),
                })
                .collect();
            (*server, medians)
        })
        .collect();
    Ok(Pf4 {
        connections,
        figures,
        seconds,
        rounds,
        wasmtime,
        baseline,
        binary: crate::host_process::amimono_binary(root),
    })
}

/// A one-component app serving the fixture, for `amimono run` (EMBED
/// serves it too).
pub(crate) fn write_app(root: &Path, component: &Path) -> Result<PathBuf> {
    let dir = root.join("target/bench/pf4-app");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(
        dir.join("amimono.toml"),
        format!(
            "# Written by the PF4 benchmark.\n[app]\nname = \"pf4\"\n\n[components.hello]\nbinding = \"http\"\nsource = \"{}\"\n\n[jobs.web]\ncomponents = [\"hello\"]\n",
            component.display()
        ),
    )
    .with_context(|| format!("writing the PF4 app in {}", dir.display()))?;
    Ok(dir)
}

/// A server under test, stopped on drop.
struct Running {
    address: String,
    _amimono: Option<HostProcess>,
    _wasmtime: Option<ChildGuard>,
}

fn start(
    root: &Path,
    server: Server,
    app: &Path,
    component: &Path,
    wasmtime: Option<&Path>,
    baseline: Option<&Path>,
) -> Result<Running> {
    match server {
        Server::Amimono
        | Server::AmimonoMetricsOff
        | Server::AmimonoSampled
        | Server::AmimonoTraced
        | Server::AmimonoBaseline => {
            let default = crate::host_process::amimono_binary(root);
            let binary = match server {
                Server::AmimonoBaseline => baseline.context("no baseline binary")?,
                _ => default.as_path(),
            };
            // Spans go to a sink for the traced row; nowhere otherwise.
            let endpoint = match server {
                Server::AmimonoTraced => crate::otlp_sink::start()?,
                _ => String::new(),
            };
            let host = HostProcess::start_binary(
                binary,
                root,
                server.label(),
                app.as_os_str(),
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_ref()),
                    ("AMIMONO_JOB", "web".as_ref()),
                    ("RUST_LOG", "warn,amimono::run=info".as_ref()),
                    (
                        "AMIMONO_METRICS",
                        if server == Server::AmimonoMetricsOff {
                            "off"
                        } else {
                            "on"
                        }
                        .as_ref(),
                    ),
                    (
                        "AMIMONO_LOCAL_SAMPLE_RATIO",
                        if matches!(server, Server::AmimonoSampled | Server::AmimonoTraced) {
                            "0.01"
                        } else {
                            "0"
                        }
                        .as_ref(),
                    ),
                ],
                &["hello"],
                None,
            )?;
            let address = host.url("hello")?.trim_start_matches("http://").to_string();
            Ok(Running {
                address,
                _amimono: Some(host),
                _wasmtime: None,
            })
        }
        Server::Wasmtime | Server::WasmtimePooling => {
            let exe = wasmtime.context("wasmtime is not installed")?;
            let port = free_port()?;
            let address = format!("127.0.0.1:{port}");
            let mut command = Command::new(exe);
            command.args(["serve", "--addr", &address, "-S", "cli=y"]);
            if server == Server::WasmtimePooling {
                command.args(["-O", "pooling-allocator=y"]);
            }
            let child = command
                .arg(component)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("starting {}", exe.display()))?;
            let guard = ChildGuard(child);
            wait_for_port(&address, Duration::from_secs(60))?;
            Ok(Running {
                address,
                _amimono: None,
                _wasmtime: Some(guard),
            })
        }
    }
}

/// Waits until something accepts connections on `address`.
fn wait_for_port(address: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(address).is_err() {
        if Instant::now() > deadline {
            bail!("nothing listens on {address} after {} s", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
