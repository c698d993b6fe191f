//! EMBED, the embedded path: does a job embedded in a Rust server through the
//! library API cost what `amimono run` costs?
//!
//! - HTTP: PF4's hello-world `wasi:http` component (`tests/fixtures/hello-world-http`,
//!   the one-component app PF4 writes) served by `amimono run` (a child
//!   process) and by the same job's [`amimono::HttpService`] nested under
//!   `/app` in an axum `Router`, in a child process of this binary
//!   (`amimono-bench --embed-server <app dir> <job> <label> <mode>`), served
//!   two ways: by [`amimono::Job::serve`] with the `Router` added through
//!   [`amimono::Listeners::service`] (the library's way: one current-thread
//!   runtime per core, as `amimono run` serves; the goal's row), and by
//!   `axum::serve` on tokio's multi-thread runtime, one worker per core,
//!   `TCP_NODELAY` as `amimono run` sets it (what the axum docs show; no
//!   goal, it says what the work-stealing runtime costs). Same closed-loop
//!   generator (in this process), same connection counts, the servers take
//!   turns round by round (the order alternates); medians of rounds.
//!   ratio = `Job::serve` embedding ÷ `amimono run` requests/s at the worse
//!   connection count; goal ≥ 0.95.
//! - Native typed calls into PF1's callee (`bench/app`, `add(u32,u32)` and a
//!   1 KiB echo) through `Job::typed_call`: [`amimono::TypedInstance::call`]
//!   (one instance, many calls) and [`amimono::TypedCall::call`] (a fresh
//!   instance of the callee's graph per call), ns per call, in the same
//!   rounds as PF1's colocated (wasm caller in the same graph) and
//!   host-forwarded ways, which call the very same function. No goal: the
//!   figures say what a native call costs next to a wasm one.

use crate::child::ChildGuard;
use crate::closed_loop::{LoadFigures, levels_json, load};
use crate::colocated::colocated_and_forwarded;
use crate::host_process::{BENCH_CLUSTER_KEY, HostProcess};
use crate::stats::median;
use amimono::{Application, Listeners, TypedCall};
use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The internal mode serving a job's HTTP component in axum.
pub const SERVER_FLAG: &str = "--embed-server";
/// The goal: embedded requests/s ≥ this × `amimono run`'s.
const GOAL: f64 = 0.95;
/// The body both servers answer.
const BODY: &[u8] = b"Hello, world!";
/// Where the embedded server nests the component (as `embed-hello` does).
const PREFIX: &str = "/app";
/// How long the embedded server may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// The HTTP servers, in table order: `amimono run`, then the embedded
/// server in each [`Threads`] mode.
const SERVERS: [&str; 3] = [
    "amimono run",
    "embedded: axum::serve, tokio multi-thread runtime",
    "embedded: same Router, Job::serve with Listeners::service (one current-thread runtime per core)",
];

/// How the embedded server runs its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Threads {
    /// `axum::serve` on tokio's multi-thread (work-stealing) runtime, one
    /// worker per core: what `#[tokio::main]` and the axum docs give.
    MultiThread,
    /// The same `Router` served by [`amimono::Job::serve`] through
    /// [`amimono::Listeners::service`]: each connection handed to one of
    /// the job's current-thread runtimes (one per core) for good, as
    /// `amimono run` serves its own listeners.
    JobServe,
}

impl Threads {
    fn arg(self) -> &'static str {
        match self {
            Threads::MultiThread => "multi-thread",
            Threads::JobServe => "job-serve",
        }
    }
}

/// The ways of calling the callee, in table order.
const WAYS: [&str; 4] = [
    "PF1 amimono (colocated in one job: a wasm caller in the same graph)",
    "PF1 host-forwarded (typed host functions, sync store)",
    "native TypedInstance::call (one instance, many calls)",
    "native TypedCall::call (a fresh instance per call)",
];

/// EMBED results.
pub struct Embed {
    connections: Vec<usize>,
    /// Medians per server (in [`SERVERS`] order) and connection count.
    http: [Vec<LoadFigures>; 3],
    seconds: f64,
    http_rounds: usize,
    /// ns per call, per way (in [`WAYS`] order).
    add_ns: [f64; 4],
    echo_ns: [f64; 4],
    call_rounds: usize,
    /// Calls per round, per way: (add, echo).
    calls: [(u32, u32); 4],
}

impl Embed {
    /// Embedded server `server` ÷ `amimono run`, per connection count.
    fn ratios_of(&self, server: usize) -> Vec<f64> {
        self.http[server]
            .iter()
            .zip(&self.http[0])
            .map(|(embedded, run)| embedded.requests_per_s / run.requests_per_s)
            .collect()
    }

    /// The library's embedding (`Job::serve`) ÷ `amimono run`, per level.
    fn ratios(&self) -> Vec<f64> {
        self.ratios_of(2)
    }

    /// The worse level's ratio of [`Embed::ratios`]: the goal's.
    fn ratio(&self) -> f64 {
        self.ratios().into_iter().fold(f64::INFINITY, f64::min)
    }

    /// The tables, as markdown.
    pub fn table(&self) -> String {
        let mut out = format!(
            "EMBED embedded vs amimono run: PF4's hello-world wasi:http component, fresh instance per request, closed loop, {} round(s) of {:.0} s per server and level\n\n\
             | server | connections | requests/s | p50 µs | p99 µs |\n|---|---:|---:|---:|---:|\n",
            self.http_rounds, self.seconds
        );
        for (server, figures) in SERVERS.iter().zip(&self.http) {
            for (connections, f) in self.connections.iter().zip(figures) {
                out.push_str(&format!(
                    "| {server} | {connections} | {:.0} | {:.0} | {:.0} |\n",
                    f.requests_per_s, f.p50_us, f.p99_us
                ));
            }
        }
        let per_level = |server: usize| -> String {
            self.connections
                .iter()
                .zip(self.ratios_of(server))
                .map(|(c, r)| format!("{c} connections {r:.3}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let ratio = self.ratio();
        out.push_str(&format!(
            "\nratio embedded (Router in Job::serve) ÷ amimono run, requests/s (worse level): {ratio:.3} (goal ≥ {GOAL}: {}); {}\n\
             embedded (Router in axum::serve, multi-thread runtime; no goal) ÷ amimono run: {}\n",
            if ratio >= GOAL { "met" } else { "MISSED" },
            per_level(2),
            per_level(1)
        ));
        out.push_str(&format!(
            "\nEMBED native typed calls into PF1's callee (bench/app): ns per call, median of {} rounds, PF1's ways in the same rounds\n\n\
             | how the call is made | add(u32,u32) | echo 1 KiB string | calls per round (add, echo) |\n|---|---:|---:|---:|\n",
            self.call_rounds
        ));
        for (i, way) in WAYS.iter().enumerate() {
            out.push_str(&format!(
                "| {way} | {:.1} | {:.1} | {}, {} |\n",
                self.add_ns[i], self.echo_ns[i], self.calls[i].0, self.calls[i].1
            ));
        }
        out
    }

    /// The JSON entry for `results.json`.
    pub fn json(&self) -> serde_json::Value {
        let levels = |figures: &[LoadFigures]| levels_json(&self.connections, figures);
        let ways = |ns: &[f64; 4]| {
            serde_json::json!({
                "pf1_colocated": ns[0],
                "pf1_host_forwarded": ns[1],
                "native_instance": ns[2],
                "native_fresh_instance": ns[3],
            })
        };
        let ratio = self.ratio();
        serde_json::json!({
            "ratio": ratio,
            "goal": GOAL,
            "met": ratio >= GOAL,
            "ratios_per_level": self.ratios(),
            "axum_serve_ratios_per_level": self.ratios_of(1),
            "connections": self.connections,
            "servers": {
                "amimono_run": levels(&self.http[0]),
                "embedded_axum": levels(&self.http[1]),
                "embedded_job_serve": levels(&self.http[2]),
            },
            "seconds_per_round": self.seconds,
            "http_rounds": self.http_rounds,
            "add_ns": ways(&self.add_ns),
            "echo_ns": ways(&self.echo_ns),
            "call_rounds": self.call_rounds,
            "calls_per_round": self.calls.iter().map(|(a, e)| serde_json::json!({"add": a, "echo": e})).collect::<Vec<_>>(),
        })
    }
}

/// Runs EMBED.
pub fn run(root: &Path, quick: bool) -> Result<Embed> {
    let (http_rounds, seconds) = if quick { (1, 1.0) } else { (5, 4.0) };
    let connections = vec![4usize, 16];
    let component = root.join("target/wasm32-wasip2/release/fixture_hello_world_http.wasm");
    if !component.exists() {
        bail!(
            "{} is missing: run `cargo xtask build`",
            component.display()
        );
    }
    let app = crate::ingress::write_app(root, &component)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // samples[server][level], one per round.
    let mut samples = vec![vec![Vec::<LoadFigures>::new(); connections.len()]; SERVERS.len()];
    for round in 0..http_rounds {
        // Alternate which server goes first, so a drift of the machine
        // during a round does not always favour the same one.
        let order: [usize; 3] = if round % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
        for s in order {
            let server = start(root, s, &app)?;
            for (l, c) in connections.iter().enumerate() {
                // A short warm-up at this level, then the measured run.
                runtime.block_on(load(&server.address, &server.path, BODY, *c, 0.2))?;
                samples[s][l].push(runtime.block_on(load(
                    &server.address,
                    &server.path,
                    BODY,
                    *c,
                    seconds,
                ))?);
            }
        }
    }
    drop(runtime);
    let medians = |levels: &[Vec<LoadFigures>]| -> Vec<LoadFigures> {
        levels
            .iter()
            .map(|rounds| LoadFigures {
                requests_per_s: median(
                    &rounds.iter().map(|f| f.requests_per_s).collect::<Vec<_>>(),
                ),
                p50_us: median(&rounds.iter().map(|f| f.p50_us).collect::<Vec<_>>()),
                p99_us: median(&rounds.iter().map(|f| f.p99_us).collect::<Vec<_>>()),
            })
            .collect()
    };
    let http = [
        medians(&samples[0]),
        medians(&samples[1]),
        medians(&samples[2]),
    ];
    let calls = typed_calls(root, quick)?;
    Ok(Embed {
        connections,
        http,
        seconds,
        http_rounds,
        add_ns: calls.add_ns,
        echo_ns: calls.echo_ns,
        call_rounds: calls.rounds,
        calls: calls.calls,
    })
}

/// A server under test, stopped on drop.
struct Running {
    address: String,
    path: String,
    _run: Option<HostProcess>,
    _embedded: Option<ChildGuard>,
}

/// Starts server `index` of [`SERVERS`] on the app.
fn start(root: &Path, index: usize, app: &Path) -> Result<Running> {
    if index == 0 {
        let host = HostProcess::start(
            root,
            "EMBED amimono run",
            app.as_os_str(),
            &[
                ("AMIMONO_JOB", "web".as_ref()),
                ("RUST_LOG", "warn,amimono::run=info".as_ref()),
            ],
            &["hello"],
        )?;
        let address = host.url("hello")?.trim_start_matches("http://").to_string();
        return Ok(Running {
            address,
            path: "/".to_string(),
            _run: Some(host),
            _embedded: None,
        });
    }
    let threads = if index == 1 {
        Threads::MultiThread
    } else {
        Threads::JobServe
    };
    let exe = std::env::current_exe().context("finding the bench's own executable")?;
    let mut child = Command::new(&exe)
        .current_dir(root)
        .arg(SERVER_FLAG)
        .arg(app)
        .args(["web", "hello", threads.arg()])
        .env(amimono::internals::auth::KEY_ENV, BENCH_CLUSTER_KEY)
        .env_remove("AMIMONO_LAYOUT")
        .env_remove("AMIMONO_BINDINGS")
        .env_remove("AMIMONO_FORCE_REMOTE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {} {SERVER_FLAG}", exe.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let guard = ChildGuard(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Read to the end, so the child never blocks on a full pipe.
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix("listening on http://") {
                let _ = tx.send(url.to_string());
            }
        }
    });
    let address = rx
        .recv_timeout(START_TIMEOUT)
        .context("the embedded server did not print `listening on http://…`")?;
    Ok(Running {
        address,
        path: format!("{PREFIX}/"),
        _run: None,
        _embedded: Some(guard),
    })
}

/// The internal mode: `--embed-server <app dir> <job> <label>
/// <multi-thread|job-serve>` prepares the job, nests component `label`'s
/// [`amimono::HttpService`] under `/app` in an axum `Router`, listens on a
/// loopback port of the system's choosing, prints `listening on
/// http://<address>` and serves until killed (see [`Threads`]).
pub fn serve(args: &[String]) -> Result<()> {
    let [app, job, label, threads] = args else {
        bail!(
            "usage: amimono-bench {SERVER_FLAG} <app dir> <job> <label> <multi-thread|job-serve>"
        );
    };
    let threads = match threads.as_str() {
        "multi-thread" => Threads::MultiThread,
        "job-serve" => Threads::JobServe,
        other => bail!("unknown threads mode {other:?}"),
    };
    // tokio's default multi-thread runtime: one worker per core, as an
    // axum service would run (`#[tokio::main]`). In the job-serve mode it
    // only prepares the job and accepts; the job's threads serve.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(match threads {
            Threads::MultiThread => std::thread::available_parallelism().map_or(1, usize::from),
            Threads::JobServe => 1,
        })
        .enable_all()
        .build()?;
    runtime.block_on(async {
        use axum::serve::ListenerExt;
        let application = Application::open(app)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a loopback port")?;
        let address = listener.local_addr()?;
        let job = application
            .job(job)
            .url(label, &format!("http://{address}{PREFIX}"))
            .data_dir(PathBuf::from(app).join(".amimono/embed-data"))
            .prepare()
            .await?;
        let router = axum::Router::new().nest_service(PREFIX, job.http_service(label)?);
        println!("listening on http://{address}");
        match threads {
            Threads::MultiThread => {
                let listener = listener.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                axum::serve(listener, router).await.context("serving")
            }
            Threads::JobServe => {
                let listeners = Listeners::new().service(listener, router);
                let _ = job.serve(listeners, std::future::pending()).await?;
                Ok(())
            }
        }
    })
}

/// What the typed calls measured.
struct CallFigures {
    add_ns: [f64; 4],
    echo_ns: [f64; 4],
    rounds: usize,
    calls: [(u32, u32); 4],
}

/// The native typed calls beside PF1's colocated and host-forwarded ways,
/// rounds interleaved.
fn typed_calls(root: &Path, quick: bool) -> Result<CallFigures> {
    let (rounds, scale) = if quick { (3, 1) } else { (7, 10) };
    // (add, echo) calls per round: loops inside wasm are cheap, a fresh
    // instance per call is not.
    let calls: [(u32, u32); 4] = [
        (200_000 * scale, 20_000 * scale),
        (200_000 * scale, 20_000 * scale),
        (20_000 * scale, 10_000 * scale),
        (2_000 * scale, 1_000 * scale),
    ];
    let payload = "x".repeat(1024);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut pf1 = colocated_and_forwarded(root)?;
    let app_dir = root.join("bench/app");
    let (add, echo) = runtime.block_on(async {
        let application = Application::open(&app_dir)?;
        let job = application
            .local()
            .data_dir(root.join("target/bench/embed-data"))
            .prepare()
            .await?;
        let add = job
            .typed_call::<(u32, u32), (u32,)>("callee", "amimono-bench:calls/target#add")
            .await?;
        let echo = job
            .typed_call::<(String,), (String,)>("callee", "amimono-bench:calls/target#echo")
            .await?;
        anyhow::Ok((add, echo))
    })?;
    let mut add_ns = vec![Vec::new(); WAYS.len()];
    let mut echo_ns = vec![Vec::new(); WAYS.len()];
    for _ in 0..rounds {
        for (way, driver) in pf1.iter_mut().enumerate() {
            let (n_add, n_echo) = calls[way];
            add_ns[way].push(timed(n_add, || check_add(n_add, driver.run_add(n_add)?))?);
            echo_ns[way].push(timed(n_echo, || {
                check_echo(n_echo, driver.run_echo(n_echo, &payload)?)
            })?);
        }
        for (way, fresh) in [(2, false), (3, true)] {
            let (n_add, n_echo) = calls[way];
            add_ns[way].push(runtime.block_on(native_add(&add, n_add, fresh))?);
            echo_ns[way].push(runtime.block_on(native_echo(&echo, n_echo, &payload, fresh))?);
        }
    }
    let med = |v: &[Vec<f64>]| -> [f64; 4] { std::array::from_fn(|i| median(&v[i])) };
    Ok(CallFigures {
        add_ns: med(&add_ns),
        echo_ns: med(&echo_ns),
        rounds,
        calls,
    })
}

/// ns per call of `n` calls made by `f`.
fn timed(n: u32, f: impl FnOnce() -> Result<()>) -> Result<f64> {
    let started = Instant::now();
    f()?;
    Ok(started.elapsed().as_nanos() as f64 / f64::from(n))
}

/// What `n` chained adds `acc = add(acc, i)` give.
fn expected_add(n: u32) -> u32 {
    (0..n).fold(0u32, |acc, i| acc.wrapping_add(i))
}

fn check_add(n: u32, got: u32) -> Result<()> {
    anyhow::ensure!(got == expected_add(n), "{n} adds gave {got}");
    Ok(())
}

fn check_echo(n: u32, got: u32) -> Result<()> {
    anyhow::ensure!(got == n.wrapping_mul(1024), "{n} echoes gave {got} bytes");
    Ok(())
}

/// ns per native `add` call: in one instance, or in a fresh one per call.
async fn native_add(add: &TypedCall<(u32, u32), (u32,)>, n: u32, fresh: bool) -> Result<f64> {
    let mut acc = 0u32;
    let started;
    if fresh {
        started = Instant::now();
        for i in 0..n {
            (acc,) = add.call((acc, i)).await?;
        }
    } else {
        let mut instance = add.instance().await?;
        started = Instant::now();
        for i in 0..n {
            (acc,) = instance.call((acc, i)).await?;
        }
    }
    let ns = started.elapsed().as_nanos() as f64 / f64::from(n);
    check_add(n, acc)?;
    Ok(ns)
}

/// ns per native 1 KiB `echo` call: in one instance, or a fresh one per call.
async fn native_echo(
    echo: &TypedCall<(String,), (String,)>,
    n: u32,
    payload: &str,
    fresh: bool,
) -> Result<f64> {
    let mut bytes = 0u32;
    let started;
    if fresh {
        started = Instant::now();
        for _ in 0..n {
            let (s,) = echo.call((payload.to_string(),)).await?;
            bytes = bytes.wrapping_add(s.len() as u32);
        }
    } else {
        let mut instance = echo.instance().await?;
        started = Instant::now();
        for _ in 0..n {
            let (s,) = instance.call((payload.to_string(),)).await?;
            bytes = bytes.wrapping_add(s.len() as u32);
        }
    }
    let ns = started.elapsed().as_nanos() as f64 / f64::from(n);
    check_echo(n, bytes)?;
    Ok(ns)
}
