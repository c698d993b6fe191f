//! Soak: a split app under steady load for a long time while misbehaving
//! clients hit the same processes, to show that nothing accumulates — no
//! error among the well-behaved requests, no memory growth, no creeping tail
//! latency. `cargo xtask bench --only soak` runs it (10 minutes per app; the
//! full run of every measure leaves it out), `--quick` for 20 s per app
//! (part of the quick run CI does).
//!
//! Two apps: `examples/hello` split in two processes (jobs `web` and
//! `backend`) and `examples/boutique` one process per job. Each runs from a
//! copy of its manifest (absolute component paths) that adds three test
//! fixtures: `trap` (`tests/fixtures/trap-http`) and `edge`
//! (`tests/fixtures/edge-http`), two more HTTP components of the frontend's
//! job, and `probe` (trap-http again, as the rpc component exporting the
//! `fixtures:probe/control` that `edge` calls) in a callee's job (`backend`,
//! `checkout`), so a trap there crosses processes. Key-value data in SQLite,
//! as by default, under `target/bench/soak/<app>/data`.
//!
//! Misbehaving clients ([`Misbehaviour`]) run against the same processes
//! from the first measurement to the last, so the rates below are what they
//! leave to well-behaved requests.
//! 1. Closed loop: [`PROBE_CLIENTS`] clients send the app's well-behaved mix
//!    back to back for a few seconds: the maximum rate; then an open-loop
//!    ramp at rising fractions of it finds the highest rate that holds.
//! 2. Open loop at [`LOAD_FRACTION`] of that (schedule as in
//!    [`crate::open_loop`], latency from the scheduled start). The
//!    misbehaving clients:
//!    slow clients on the frontend's own listener (headers or a body a byte
//!    at a time, a body announced and never sent), clients that never read a
//!    64 MiB response, and requests that trap (in the frontend's job, in a
//!    callee's job across processes, after the response started, on the
//!    memory limit).
//! 3. VmRSS of every host process sampled from `/proc/<pid>/status`
//!    throughout.
//!
//! The run is cut in ten slices (a minute each in the full run); the first
//! is warm-up. Goals:
//! - zero errors: a well-behaved request answered with another status than
//!   expected, failing in transport or unanswered within [`CLIENT_TIMEOUT`]
//!   is an error, and there must be none;
//! - RSS: every process grows by less than [`RSS_GOAL`] between the first
//!   slice after warm-up and the last (median of each slice's samples);
//! - p99 stable: per flow, the median of the slice p99s of the last four
//!   slices is within [`P99_GOAL`]× that of the four after warm-up (one
//!   slice's p99 on a shared 2-core VM moves several-fold with CPU pressure,
//!   in both directions: a first and a last slice alone compare noise; the
//!   last-to-first ratio is printed too).
//!
//! The quick run judges only zero errors — a correctness property that holds
//! for any duration; 20 s say little about memory growth or tail trends, so
//! those are printed, not judged. Missed judged goals fail the bench (after
//! the tables and `results.json` are written). Host logs go to
//! `target/bench/soak/<app>/<job>.log`; an error's answer carries the
//! host's request id to look up there.

use crate::host_process::{HostProcess, clock_ticks_per_second, cpu_seconds, rss_kib};
use crate::monolith_vs_split::{JobMembers, checkout_flow, home_flow, jobs_of, write_bindings};
use crate::open_loop::{self, Flow, HttpClient, Step};
use crate::stats::{median, percentile};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Fraction of the sustained rate the soak's open loop sends.
const LOAD_FRACTION: f64 = 0.8;
/// Steps of the open-loop ramp that finds the sustained rate, as fractions
/// of the closed-loop maximum.
const RAMP: [f64; 8] = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
/// A ramp step holds with no error and a p99 up to this.
const HOLD_P99: Duration = Duration::from_millis(50);
/// Concurrent clients of the closed loop that measures the maximum rate.
const PROBE_CLIENTS: usize = 8;
/// Goal: largest RSS growth of any process after warm-up (a fraction).
const RSS_GOAL: f64 = 0.10;
/// Goal: later slices' p99 ÷ earlier slices' p99 after warm-up, per flow
/// (medians of four slices each).
const P99_GOAL: f64 = 2.0;
/// Slices the run is cut into; the first is warm-up.
const SLICES: usize = 10;
/// How long a well-behaved request may go unanswered before it counts as
/// an error (longer than the hosts' 30 s request timeout).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a misbehaving client waits for the server to cut it off.
const CUT_OFF_WITHIN: Duration = Duration::from_secs(60);
/// Pace of the slow clients: one byte per this.
const TRICKLE: Duration = Duration::from_millis(250);
/// How long a non-reading client leaves its response unread (the hosts'
/// `send_timeout_ms` is 10 s).
const NON_READER_STALL: Duration = Duration::from_secs(15);
/// The response a non-reading client asks for, MiB.
const NON_READER_MIB: usize = 64;
/// Starts per second of each canary flow.
const CANARY_RATE: f64 = 20.0;
/// Error messages kept for the report.
const ERROR_SAMPLES: usize = 20;
/// Environment variable leaving misbehaving clients out, for investigating:
/// `all`, or their keys separated by commas (`memory-bomb,trap`).
const SKIP_ENV: &str = "AMIMONO_SOAK_SKIP";
/// Environment variable setting the soak's length in seconds (default 600,
/// quick 20), for investigating.
const SECONDS_ENV: &str = "AMIMONO_SOAK_SECONDS";

/// The apps soaked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoakApp {
    /// `examples/hello`, jobs `web` and `backend`.
    Hello,
    /// `examples/boutique`, one process per job.
    Boutique,
}

impl SoakApp {
    /// Every app, in the order they run.
    pub const ALL: [SoakApp; 2] = [SoakApp::Hello, SoakApp::Boutique];

    /// Its key in `results.json` (and for `--only`).
    pub fn key(self) -> &'static str {
        match self {
            SoakApp::Hello => "soak-hello",
            SoakApp::Boutique => "soak-boutique",
        }
    }

    fn name(self) -> &'static str {
        match self {
            SoakApp::Hello => "hello",
            SoakApp::Boutique => "boutique",
        }
    }

    /// The component whose job also runs `probe`.
    fn callee(self) -> &'static str {
        match self {
            SoakApp::Hello => "greeter",
            SoakApp::Boutique => "checkout",
        }
    }

    /// Where slow uploads go on the frontend (a route that takes a body,
    /// or at least reads one before answering).
    fn upload_path(self) -> &'static str {
        match self {
            SoakApp::Hello => "/hello/slow-upload",
            SoakApp::Boutique => "/cart",
        }
    }

    /// The well-behaved mix: (flow, weight). `Flow::rate` is not used: the
    /// rates follow from the measured maximum.
    fn mix(self) -> Vec<(&'static str, Arc<Flow>, u32)> {
        match self {
            SoakApp::Hello => vec![(
                "hello",
                Arc::new(Flow {
                    steps: vec![Step {
                        method: "GET",
                        path: "/hello/soak".into(),
                        form: None,
                        expect_status: 200,
                    }],
                    rate: 0.0,
                    cookie: Box::new(|_| String::new()),
                }),
                1,
            )],
            // PF5's mix: five home pages per checkout.
            SoakApp::Boutique => vec![
                ("home", Arc::new(home_flow()), 5),
                ("checkout", Arc::new(checkout_flow()), 1),
            ],
        }
    }
}

/// Run lengths.
#[derive(Debug, Clone, Copy)]
struct Durations {
    probe: f64,
    ramp_step: f64,
    soak: f64,
    /// Interval between RSS samples.
    rss_every: Duration,
}

impl Durations {
    fn new(quick: bool) -> Result<Durations> {
        let mut durations = Durations::default_for(quick);
        if let Ok(seconds) = std::env::var(SECONDS_ENV) {
            durations.soak = seconds
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| *s >= SLICES as f64)
                .with_context(|| {
                    format!("{SECONDS_ENV}={seconds}: expected seconds, at least {SLICES}")
                })?;
        }
        Ok(durations)
    }

    fn default_for(quick: bool) -> Durations {
        if quick {
            Durations {
                probe: 2.0,
                ramp_step: 1.0,
                soak: 20.0,
                rss_every: Duration::from_millis(250),
            }
        } else {
            Durations {
                probe: 10.0,
                ramp_step: 3.0,
                soak: 600.0,
                rss_every: Duration::from_secs(1),
            }
        }
    }
}

/// What a misbehaving client does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Misbehaviour {
    /// `GET /trap` of `trap`: the guest panics.
    Trap,
    /// `GET /call/boom` of `edge`: `probe`, in a callee's job, traps in the
    /// call; `edge` traps on the failed call.
    RemoteTrap,
    /// `GET /trap-after-response` of `edge`: a 200 whose body the trap cuts.
    TrapAfterResponse,
    /// `GET /bomb` of `trap`: allocates until the memory limit stops it.
    MemoryBomb,
    /// Request headers to the frontend a byte at a time, never finished.
    SlowHeaders,
    /// A body of 100 000 bytes announced to the frontend, sent a byte at a time.
    TrickledBody,
    /// A body of 1000 bytes announced to the frontend, 10 sent, then nothing.
    StalledBody,
    /// `GET /big?mib=64` of `edge`, left unread for 15 s.
    NonReader,
}

/// How often a misbehaving kind runs.
#[derive(Debug, Clone, Copy)]
enum Pace {
    /// Requests per second, one after another on fresh connections.
    Rate(f64),
    /// Clients, each repeating its episode.
    Clients(usize),
}

impl Misbehaviour {
    const ALL: [Misbehaviour; 8] = [
        Misbehaviour::Trap,
        Misbehaviour::RemoteTrap,
        Misbehaviour::TrapAfterResponse,
        Misbehaviour::MemoryBomb,
        Misbehaviour::SlowHeaders,
        Misbehaviour::TrickledBody,
        Misbehaviour::StalledBody,
        Misbehaviour::NonReader,
    ];

    fn key(self) -> &'static str {
        match self {
            Misbehaviour::Trap => "trap",
            Misbehaviour::RemoteTrap => "remote-trap",
            Misbehaviour::TrapAfterResponse => "trap-after-response",
            Misbehaviour::MemoryBomb => "memory-bomb",
            Misbehaviour::SlowHeaders => "slow-headers",
            Misbehaviour::TrickledBody => "trickled-body",
            Misbehaviour::StalledBody => "stalled-body",
            Misbehaviour::NonReader => "non-reader",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Misbehaviour::Trap => "`GET /trap` (guest panics)",
            Misbehaviour::RemoteTrap => "`GET /call/boom` (callee in another job traps)",
            Misbehaviour::TrapAfterResponse => "`GET /trap-after-response`",
            Misbehaviour::MemoryBomb => "`GET /bomb` (allocates past the memory limit)",
            Misbehaviour::SlowHeaders => "headers a byte per 250 ms, never finished",
            Misbehaviour::TrickledBody => "100 000-byte body, a byte per 250 ms",
            Misbehaviour::StalledBody => "1000-byte body announced, 10 sent, then silence",
            Misbehaviour::NonReader => "`GET /big?mib=64`, unread for 15 s",
        }
    }

    /// The HTTP component it targets.
    fn target(self) -> &'static str {
        match self {
            Misbehaviour::Trap | Misbehaviour::MemoryBomb => "trap",
            Misbehaviour::RemoteTrap
            | Misbehaviour::TrapAfterResponse
            | Misbehaviour::NonReader => "edge",
            Misbehaviour::SlowHeaders | Misbehaviour::TrickledBody | Misbehaviour::StalledBody => {
                "frontend"
            }
        }
    }

    fn pace(self) -> Pace {
        match self {
            Misbehaviour::Trap => Pace::Rate(5.0),
            Misbehaviour::RemoteTrap | Misbehaviour::TrapAfterResponse => Pace::Rate(2.0),
            Misbehaviour::MemoryBomb => Pace::Rate(0.25),
            Misbehaviour::SlowHeaders
            | Misbehaviour::TrickledBody
            | Misbehaviour::StalledBody
            | Misbehaviour::NonReader => Pace::Clients(2),
        }
    }
}

/// How one kind of misbehaving request was answered.
#[derive(Debug, Clone, Default)]
struct Tally {
    sent: u64,
    /// Outcome → count.
    outcomes: BTreeMap<String, u64>,
    /// Seconds from sending to the server's answer or cut-off.
    seconds: Vec<f64>,
}

/// Latency and errors of one flow in one slice.
#[derive(Debug, Clone, Default)]
struct FlowSlice {
    latencies_us: Vec<f64>,
    requests: u64,
    errors: u64,
}

/// Shares of the machine's CPU (all cores) over a slice: the soak's hosts,
/// this bench (load generator, misbehaving clients), every other process
/// (another build on a shared machine shows here), and time the hypervisor
/// stole.
#[derive(Debug, Clone, Copy, Default)]
struct CpuShares {
    hosts: f64,
    bench: f64,
    others: f64,
    steal: f64,
    /// The worst sampling interval's stall, ms per second: some task
    /// waiting for IO, for a CPU (pressure stall information).
    worst_io_stall: f64,
    worst_cpu_stall: f64,
}

/// RSS figures of one process, MiB.
#[derive(Debug, Clone)]
struct ProcessRss {
    job: String,
    pid: u32,
    start_mib: f64,
    after_warmup_mib: f64,
    end_mib: f64,
    peak_mib: f64,
}

impl ProcessRss {
    fn growth(&self) -> f64 {
        self.end_mib / self.after_warmup_mib - 1.0
    }
}

/// One app's soak.
pub struct Soak {
    app: SoakApp,
    quick: bool,
    jobs: Vec<String>,
    durations: Durations,
    max_rate: f64,
    ramp: Vec<RampStep>,
    sustained: f64,
    rate: f64,
    probe_errors: u64,
    /// The app's flows, then the canaries.
    flow_names: Vec<&'static str>,
    /// How many of `flow_names` are the app's (the p99 goal is theirs).
    app_flows: usize,
    /// `[slice][flow]`.
    slices: Vec<Vec<FlowSlice>>,
    /// Median total RSS of all processes per slice, MiB.
    slice_rss_mib: Vec<f64>,
    /// Who used the machine's CPU, per slice.
    slice_cpu: Vec<CpuShares>,
    rss: Vec<ProcessRss>,
    misbehaving: Vec<(Misbehaviour, Tally)>,
    error_samples: Vec<String>,
    logs: PathBuf,
}

impl Soak {
    fn requests(&self) -> u64 {
        self.slices.iter().flatten().map(|f| f.requests).sum()
    }

    fn errors(&self) -> u64 {
        self.slices.iter().flatten().map(|f| f.errors).sum::<u64>() + self.probe_errors
    }

    /// The process growing most after warm-up, and its growth.
    fn worst_rss(&self) -> Option<&ProcessRss> {
        self.rss
            .iter()
            .max_by(|a, b| a.growth().total_cmp(&b.growth()))
    }

    /// Per flow of the app: the median of the slice p99s in the later half
    /// of the run ÷ the same in the earlier half after warm-up (a trend: one
    /// slice's p99 on a shared 2-core VM moves several-fold with CPU
    /// pressure, so a single first and last slice compare noise).
    fn p99_ratios(&self) -> Vec<(&'static str, f64)> {
        let half = (SLICES - 1) / 2;
        self.flow_names
            .iter()
            .take(self.app_flows)
            .enumerate()
            .map(|(f, name)| {
                let p99s = |slices: std::ops::Range<usize>| {
                    let p99s: Vec<f64> = slices
                        .map(|slice| percentile(&self.slices[slice][f].latencies_us, 99.0))
                        .collect();
                    median(&p99s)
                };
                (*name, p99s(SLICES - half..SLICES) / p99s(1..1 + half))
            })
            .collect()
    }

    /// Per flow of the app: last slice p99 ÷ first p99 after warm-up
    /// (printed, not judged).
    fn last_to_first_p99(&self) -> Vec<(&'static str, f64)> {
        self.flow_names
            .iter()
            .take(self.app_flows)
            .enumerate()
            .map(|(f, name)| {
                let p99 = |slice: usize| percentile(&self.slices[slice][f].latencies_us, 99.0);
                (*name, p99(SLICES - 1) / p99(1))
            })
            .collect()
    }

    fn worst_p99(&self) -> (&'static str, f64) {
        self.p99_ratios()
            .into_iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or(("", f64::NAN))
    }

    fn zero_errors_met(&self) -> bool {
        self.errors() == 0
    }

    fn rss_met(&self) -> bool {
        self.worst_rss().is_some_and(|p| p.growth() < RSS_GOAL)
    }

    fn p99_met(&self) -> bool {
        self.worst_p99().1 <= P99_GOAL
    }

    /// The judged goals missed (the quick run judges only zero errors).
    pub fn failures(&self) -> Vec<String> {
        let mut missed = Vec::new();
        if !self.zero_errors_met() {
            missed.push(format!(
                "{}: {} of {} well-behaved requests failed (goal 0)",
                self.app.key(),
                self.errors(),
                self.requests()
            ));
        }
        if !self.quick {
            if let Some(p) = self.worst_rss()
                && !self.rss_met()
            {
                missed.push(format!(
                    "{}: RSS of job {} grew {:+.1} % after warm-up (goal < {:.0} %)",
                    self.app.key(),
                    p.job,
                    p.growth() * 100.0,
                    RSS_GOAL * 100.0
                ));
            }
            if !self.p99_met() {
                let (flow, ratio) = self.worst_p99();
                missed.push(format!(
                    "{}: {flow} p99 of the later slices is {ratio:.2}× the earlier ones after warm-up (medians; goal ≤ {P99_GOAL})",
                    self.app.key()
                ));
            }
        }
        missed
    }

    fn met(&self) -> bool {
        self.failures().is_empty()
    }

    /// The tables, as markdown.
    pub fn table(&self) -> String {
        let slice_s = self.durations.soak / SLICES as f64;
        let ramp = self
            .ramp
            .iter()
            .map(|step| {
                format!(
                    "{:.0} % {}",
                    step.fraction * 100.0,
                    if step.held {
                        format!("held (p99 {:.1} ms)", step.p99_us / 1000.0)
                    } else {
                        format!(
                            "NOT held ({} errors, p99 {:.1} ms)",
                            step.errors,
                            step.p99_us / 1000.0
                        )
                    }
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let mut out = format!(
            "{} soak: {} ({} processes: {}); closed loop max {:.0} requests/s ({PROBE_CLIENTS} clients, {:.0} s); open-loop ramp of {:.0} s steps: {ramp} → sustained {:.0} requests/s; misbehaving clients alongside throughout; soak at {:.0} % of it: {:.0} requests/s for {:.0} s; {SLICES} slices of {slice_s:.0} s, the first is warm-up\n\n",
            self.app.key(),
            self.app.name(),
            self.jobs.len(),
            self.jobs.join(", "),
            self.max_rate,
            self.durations.probe,
            self.durations.ramp_step,
            self.sustained,
            LOAD_FRACTION * 100.0,
            self.rate,
            self.durations.soak,
        );
        out.push_str("| slice | from s | requests | errors |");
        for name in &self.flow_names {
            out.push_str(&format!(" {name} p50 µs | {name} p99 µs |"));
        }
        out.push_str(
            " RSS MiB (all processes) | CPU % hosts / bench / others / stolen | worst stall ms/s IO / CPU |\n|---|---:|---:|---:|",
        );
        for _ in &self.flow_names {
            out.push_str("---:|---:|");
        }
        out.push_str("---:|---:|---:|\n");
        for (i, slice) in self.slices.iter().enumerate() {
            let requests: u64 = slice.iter().map(|f| f.requests).sum();
            let errors: u64 = slice.iter().map(|f| f.errors).sum();
            let label = if i == 0 {
                "1 (warm-up)".to_string()
            } else {
                (i + 1).to_string()
            };
            out.push_str(&format!(
                "| {label} | {:.0} | {requests} | {errors} |",
                i as f64 * slice_s
            ));
            for flow in slice {
                out.push_str(&format!(
                    " {:.0} | {:.0} |",
                    median(&flow.latencies_us),
                    percentile(&flow.latencies_us, 99.0)
                ));
            }
            let cpu = self.slice_cpu.get(i).copied().unwrap_or_default();
            out.push_str(&format!(
                " {:.1} | {:.0} / {:.0} / {:.0} / {:.0} | {:.0} / {:.0} |\n",
                self.slice_rss_mib.get(i).copied().unwrap_or(f64::NAN),
                cpu.hosts * 100.0,
                cpu.bench * 100.0,
                cpu.others * 100.0,
                cpu.steal * 100.0,
                cpu.worst_io_stall,
                cpu.worst_cpu_stall,
            ));
        }
        out.push_str(
            "\n| job (process) | pid | RSS at start MiB | after warm-up MiB | end MiB | peak MiB | growth after warm-up |\n\
             |---|---:|---:|---:|---:|---:|---:|\n",
        );
        for p in &self.rss {
            out.push_str(&format!(
                "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:+.1} % |\n",
                p.job,
                p.pid,
                p.start_mib,
                p.after_warmup_mib,
                p.end_mib,
                p.peak_mib,
                p.growth() * 100.0
            ));
        }
        out.push_str(
            "\n| misbehaving client | against | pace | sent | answered | median time to answer s |\n\
             |---|---|---|---:|---|---:|\n",
        );
        for (kind, tally) in &self.misbehaving {
            let pace = match kind.pace() {
                Pace::Rate(r) => format!("{r}/s"),
                Pace::Clients(n) => format!("{n} clients"),
            };
            let outcomes = tally
                .outcomes
                .iter()
                .map(|(o, n)| format!("{n} × {o}"))
                .collect::<Vec<_>>()
                .join(", ");
            out.push_str(&format!(
                "| {} | {} | {pace} | {} | {outcomes} | {:.2} |\n",
                kind.label(),
                kind.target(),
                tally.sent,
                median(&tally.seconds)
            ));
        }
        let judged = |met: bool| {
            if self.quick {
                "quick run: not judged".to_string()
            } else if met {
                "met".to_string()
            } else {
                "MISSED".to_string()
            }
        };
        out.push_str(&format!(
            "\nwell-behaved requests: {} sent, {} errors (closed loop included) (goal 0: {})\n",
            self.requests(),
            self.errors(),
            if self.zero_errors_met() {
                "met"
            } else {
                "MISSED"
            }
        ));
        if let Some(p) = self.worst_rss() {
            out.push_str(&format!(
                "RSS growth after warm-up: worst {:+.1} % (job {}) (goal < {:.0} %: {})\n",
                p.growth() * 100.0,
                p.job,
                RSS_GOAL * 100.0,
                judged(self.rss_met())
            ));
        }
        let ratios = self
            .p99_ratios()
            .iter()
            .map(|(name, r)| format!("{name} {r:.2}"))
            .collect::<Vec<_>>()
            .join(", ");
        let last_to_first = self
            .last_to_first_p99()
            .iter()
            .map(|(name, r)| format!("{name} {r:.2}"))
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!(
            "p99, median of the last four slices ÷ of the four after warm-up: {ratios} (goal ≤ {P99_GOAL}: {}); last slice ÷ first after warm-up: {last_to_first}\n",
            judged(self.p99_met())
        ));
        for error in &self.error_samples {
            out.push_str(&format!("error: {error}\n"));
        }
        out.push_str(&format!("host logs: {}/<job>.log\n", self.logs.display()));
        out
    }

    /// The JSON entry for `results.json`.
    pub fn json(&self) -> serde_json::Value {
        let slice_s = self.durations.soak / SLICES as f64;
        let slices: Vec<serde_json::Value> = self
            .slices
            .iter()
            .enumerate()
            .map(|(i, slice)| {
                let flows: serde_json::Map<String, serde_json::Value> = self
                    .flow_names
                    .iter()
                    .zip(slice)
                    .map(|(name, f)| {
                        (
                            name.to_string(),
                            serde_json::json!({
                                "requests": f.requests,
                                "errors": f.errors,
                                "p50_us": median(&f.latencies_us),
                                "p99_us": percentile(&f.latencies_us, 99.0),
                            }),
                        )
                    })
                    .collect();
                let cpu = self.slice_cpu.get(i).copied().unwrap_or_default();
                serde_json::json!({
                    "from_s": i as f64 * slice_s,
                    "warm_up": i == 0,
                    "flows": flows,
                    "rss_mib_total": self.slice_rss_mib.get(i),
                    "cpu_share": {
                        "hosts": cpu.hosts,
                        "bench": cpu.bench,
                        "others": cpu.others,
                        "steal": cpu.steal,
                    },
                    "worst_stall_ms_per_s": {
                        "io": cpu.worst_io_stall,
                        "cpu": cpu.worst_cpu_stall,
                    },
                })
            })
            .collect();
        let rss: serde_json::Map<String, serde_json::Value> = self
            .rss
            .iter()
            .map(|p| {
                (
                    p.job.clone(),
                    serde_json::json!({
                        "pid": p.pid,
                        "start_mib": p.start_mib,
                        "after_warmup_mib": p.after_warmup_mib,
                        "end_mib": p.end_mib,
                        "peak_mib": p.peak_mib,
                        "growth": p.growth(),
                    }),
                )
            })
            .collect();
        let misbehaving: serde_json::Map<String, serde_json::Value> = self
            .misbehaving
            .iter()
            .map(|(kind, t)| {
                (
                    kind.key().to_string(),
                    serde_json::json!({
                        "target": kind.target(),
                        "sent": t.sent,
                        "outcomes": t.outcomes,
                        "median_seconds_to_answer": median(&t.seconds),
                    }),
                )
            })
            .collect();
        let worst_rss = self.worst_rss();
        let (p99_flow, p99_ratio) = self.worst_p99();
        serde_json::json!({
            "ratio": self.errors(),
            "goal": 0,
            "met": self.met(),
            "summary_ratio": format!(
                "{} errors, RSS {:+.1} %, p99 ×{p99_ratio:.2}",
                self.errors(),
                worst_rss.map_or(f64::NAN, |p| p.growth() * 100.0)
            ),
            "summary_goal": if self.quick {
                "0 errors (RSS, p99 not judged)".to_string()
            } else {
                format!("0 errors, < {:.0} %, ≤ ×{P99_GOAL}", RSS_GOAL * 100.0)
            },
            "quick": self.quick,
            "goals": {
                "zero_errors": { "met": self.zero_errors_met(), "errors": self.errors(), "judged": true },
                "rss_growth": {
                    "met": self.rss_met(),
                    "judged": !self.quick,
                    "goal": RSS_GOAL,
                    "worst": worst_rss.map(ProcessRss::growth),
                    "job": worst_rss.map(|p| p.job.clone()),
                },
                "p99_stable": {
                    "met": self.p99_met(),
                    "judged": !self.quick,
                    "goal": P99_GOAL,
                    "worst": p99_ratio,
                    "flow": p99_flow,
                },
            },
            "requests": self.requests(),
            "errors": self.errors(),
            "probe_errors": self.probe_errors,
            "max_rate_per_s": self.max_rate,
            "ramp": self.ramp.iter().map(|step| serde_json::json!({
                "fraction": step.fraction,
                "rate_per_s": step.rate,
                "errors": step.errors,
                "p99_us": step.p99_us,
                "held": step.held,
            })).collect::<Vec<_>>(),
            "sustained_rate_per_s": self.sustained,
            "rate_per_s": self.rate,
            "load_fraction": LOAD_FRACTION,
            "seconds": self.durations.soak,
            "jobs": self.jobs,
            "slices": slices,
            "rss": rss,
            "misbehaving": misbehaving,
            "error_samples": self.error_samples,
        })
    }
}

/// A flow of the open loop: where it goes and how often it starts.
#[derive(Clone)]
struct LoadFlow {
    base: String,
    flow: Arc<Flow>,
    /// Starts per second.
    rate: f64,
}

/// The flows of `mix` against `base` for `rate` requests per second: flow f
/// starts rate × w_f ÷ Σ w_g × steps_g times a second.
fn mix_at(mix: &[(&'static str, Arc<Flow>, u32)], base: &str, rate: f64) -> Vec<LoadFlow> {
    let requests_per_unit: f64 = mix
        .iter()
        .map(|(_, flow, w)| f64::from(*w) * flow.steps.len() as f64)
        .sum();
    mix.iter()
        .map(|(_, flow, w)| LoadFlow {
            base: base.to_string(),
            flow: flow.clone(),
            rate: rate * f64::from(*w) / requests_per_unit,
        })
        .collect()
}

/// The canaries: well-behaved requests at [`CANARY_RATE`] that avoid parts
/// of the app's path, so a stall can be placed — `local` (`GET /` of
/// `trap`: a guest in the frontend's job, no call, no key-value) and
/// `remote` (`GET /call/whoami` of `edge`: a call to `probe` in the
/// callee's job, no key-value).
fn canaries(trap: &str, edge: &str) -> Vec<(&'static str, LoadFlow)> {
    let get = |path: &str| {
        Arc::new(Flow {
            steps: vec![Step {
                method: "GET",
                path: path.into(),
                form: None,
                expect_status: 200,
            }],
            rate: CANARY_RATE,
            cookie: Box::new(|_| String::new()),
        })
    };
    vec![
        (
            "local",
            LoadFlow {
                base: trap.to_string(),
                flow: get("/"),
                rate: CANARY_RATE,
            },
        ),
        (
            "remote",
            LoadFlow {
                base: edge.to_string(),
                flow: get("/call/whoami"),
                rate: CANARY_RATE,
            },
        ),
    ]
}

/// One step of the open-loop ramp.
#[derive(Debug, Clone)]
struct RampStep {
    fraction: f64,
    rate: f64,
    errors: u64,
    p99_us: f64,
    held: bool,
}

/// Open-loop steps at rising fractions ([`RAMP`]) of the closed-loop
/// maximum, `seconds` each, until one does not hold (an error, or a p99
/// above [`HOLD_P99`]): an open loop pays a wake-up per request that a
/// saturated closed loop batches away, so it saturates sooner.
fn ramp(
    runtime: &tokio::runtime::Runtime,
    client: &HttpClient,
    base: &str,
    mix: &[(&'static str, Arc<Flow>, u32)],
    max_rate: f64,
    seconds: f64,
) -> Result<Vec<RampStep>> {
    let mut steps = Vec::new();
    for (i, fraction) in RAMP.iter().enumerate() {
        let rate = max_rate * fraction;
        let origin = Instant::now() + Duration::from_millis(20);
        // Session numbers apart from the soak's and the closed loop's.
        let first = (1 << 41) + (i as u64) * 1_000_000;
        let load = open_loop_run(
            runtime,
            client,
            &mix_at(mix, base, rate),
            seconds,
            origin,
            first,
        )?;
        let errors = load.slices.iter().flatten().map(|f| f.errors).sum();
        let latencies: Vec<f64> = load
            .slices
            .iter()
            .flatten()
            .flat_map(|f| f.latencies_us.iter().copied())
            .collect();
        let p99_us = percentile(&latencies, 99.0);
        let held = errors == 0 && p99_us <= HOLD_P99.as_secs_f64() * 1e6;
        eprintln!(
            "  ramp {:.0} % = {rate:.0} requests/s: {errors} errors, p99 {:.1} ms{}",
            fraction * 100.0,
            p99_us / 1000.0,
            if held { "" } else { ": not sustained" }
        );
        steps.push(RampStep {
            fraction: *fraction,
            rate,
            errors,
            p99_us,
            held,
        });
        if !held {
            break;
        }
        // Let the hosts drain before the next step.
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(steps)
}

/// Runs the soak of `app`.
pub fn run(root: &Path, quick: bool, app: SoakApp) -> Result<Soak> {
    let durations = Durations::new(quick)?;
    let work = root.join("target/bench/soak").join(app.name());
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("clearing {}", work.display()))?;
    }
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let manifest = work.join("amimono.toml");
    std::fs::write(&manifest, soak_manifest(root, app)?)
        .with_context(|| format!("writing {}", manifest.display()))?;
    let jobs = jobs_of(root, &work, None)?;
    let bindings = write_bindings(&work, "soak", &jobs)?;
    let hosts = start_hosts(root, app, &work, &bindings, &jobs)?;
    let url = |label: &str| -> Result<String> {
        hosts
            .iter()
            .find_map(|(_, h)| h.url(label).ok())
            .map(str::to_string)
            .with_context(|| format!("no job of the soak app serves `{label}`"))
    };
    let targets = Targets {
        frontend: address_of(&url("frontend")?),
        trap: address_of(&url("trap")?),
        edge: address_of(&url("edge")?),
        upload_path: app.upload_path(),
    };
    let base = url("frontend")?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let client = runtime.block_on(async { open_loop::client() });
    let mix = app.mix();
    // The misbehaving clients run from the start, so the maximum rate and
    // the ramp measure the capacity they leave to well-behaved requests.
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_error = StopOnDrop(stop.clone());
    let misbehaving_from = Instant::now();
    let tallies: Arc<Mutex<BTreeMap<&'static str, Tally>>> = Arc::default();
    let skip = std::env::var(SKIP_ENV).unwrap_or_default();
    let skipped = |kind: Misbehaviour| {
        skip.split(',')
            .any(|s| s.trim() == "all" || s.trim() == kind.key())
    };
    let mut clients = Vec::new();
    for kind in Misbehaviour::ALL.into_iter().filter(|k| !skipped(*k)) {
        let threads = match kind.pace() {
            Pace::Rate(_) => 1,
            Pace::Clients(n) => n,
        };
        for i in 0..threads {
            let (stop, tallies, targets) = (stop.clone(), tallies.clone(), targets.clone());
            clients.push(
                std::thread::Builder::new()
                    .name(format!("soak-{}-{i}", kind.key()))
                    .spawn(move || misbehave(kind, &targets, misbehaving_from, &stop, &tallies))
                    .context("starting a misbehaving client")?,
            );
        }
    }

    eprintln!(
        "soak {}: measuring the maximum rate ({:.0} s)",
        app.name(),
        durations.probe
    );
    let probe = runtime.block_on(closed_loop(&client, &base, &mix, durations.probe));
    if probe.requests == 0 {
        bail!(
            "{}: the closed loop got no answer: {:?}",
            app.key(),
            probe.error_samples
        );
    }
    let max_rate = probe.requests as f64 / durations.probe;
    let ramp = ramp(
        &runtime,
        &client,
        &base,
        &mix,
        max_rate,
        durations.ramp_step,
    )?;
    let sustained = ramp
        .iter()
        .take_while(|step| step.held)
        .last()
        .map_or(RAMP[0] * max_rate, |step| step.rate);
    let rate = sustained * LOAD_FRACTION;
    let canaries = canaries(&url("trap")?, &url("edge")?);
    let mut flows = mix_at(&mix, &base, rate);
    flows.extend(canaries.iter().map(|(_, flow)| flow.clone()));

    eprintln!(
        "soak {}: {rate:.0} requests/s for {:.0} s with misbehaving clients",
        app.name(),
        durations.soak
    );
    let origin = Instant::now() + Duration::from_millis(20);
    let pids: Vec<u32> = hosts.iter().map(|(_, h)| h.pid()).collect();
    let sampler = {
        let (stop, pids, every) = (stop.clone(), pids.clone(), durations.rss_every);
        std::thread::spawn(move || sample(&pids, origin, every, &stop))
    };
    let load = open_loop_run(&runtime, &client, &flows, durations.soak, origin, 0);
    stop.store(true, Ordering::SeqCst);
    for handle in clients {
        if handle.join().is_err() {
            bail!("a misbehaving client panicked");
        }
    }
    let samples = sampler
        .join()
        .map_err(|_| anyhow::anyhow!("the RSS sampler panicked"))??;
    let load = load?;

    let mut tallies = std::mem::take(&mut *tallies.lock().map_err(|_| poisoned())?);
    let misbehaving = Misbehaviour::ALL
        .iter()
        .map(|k| (*k, tallies.remove(k.key()).unwrap_or_default()))
        .collect();
    let slice_s = durations.soak / SLICES as f64;
    let in_slice = |t: f64| ((t / slice_s).floor().max(0.0) as usize).min(SLICES - 1);
    let of_slice = |slice: usize| samples.iter().filter(move |s| in_slice(s.at) == slice);
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    // The largest stall per second between consecutive samples ending in
    // `slice`, ms/s.
    let worst_stall = |slice: usize, total: fn(&Sample) -> u64| {
        samples
            .windows(2)
            .filter(|w| in_slice(w[1].at) == slice && w[1].at > w[0].at)
            .map(|w| {
                total(&w[1]).saturating_sub(total(&w[0])) as f64 / 1000.0 / (w[1].at - w[0].at)
            })
            .fold(0.0, f64::max)
    };
    let mut slice_rss_mib = Vec::new();
    let mut slice_cpu = Vec::new();
    for slice in 0..SLICES {
        let totals: Vec<f64> = of_slice(slice)
            .map(|s| s.rss_kib.iter().sum::<u64>() as f64 / 1024.0)
            .collect();
        slice_rss_mib.push(median(&totals));
        // From the last sample before the slice (or its first) to its last.
        let first = samples
            .iter()
            .rev()
            .find(|s| in_slice(s.at) < slice && slice > 0)
            .or_else(|| of_slice(slice).next());
        let last = of_slice(slice).next_back();
        slice_cpu.push(match (first, last) {
            (Some(a), Some(b)) if b.at > a.at => {
                let share = |d: f64| d / (b.at - a.at) / cores;
                CpuShares {
                    hosts: share(b.hosts - a.hosts),
                    bench: share(b.bench - a.bench),
                    others: share(
                        (b.machine - a.machine) - (b.hosts - a.hosts) - (b.bench - a.bench),
                    )
                    .max(0.0),
                    steal: share(b.steal - a.steal),
                    worst_io_stall: worst_stall(slice, |s| s.io_stall_us),
                    worst_cpu_stall: worst_stall(slice, |s| s.cpu_stall_us),
                }
            }
            _ => CpuShares::default(),
        });
    }
    let rss = hosts
        .iter()
        .enumerate()
        .map(|(p, (job, host))| {
            let mib = |s: &Sample| s.rss_kib[p] as f64 / 1024.0;
            let median_of = |slice: usize| median(&of_slice(slice).map(mib).collect::<Vec<_>>());
            ProcessRss {
                job: job.clone(),
                pid: host.pid(),
                start_mib: samples.first().map_or(f64::NAN, mib),
                after_warmup_mib: median_of(1),
                end_mib: median_of(SLICES - 1),
                peak_mib: samples
                    .iter()
                    .filter(|s| in_slice(s.at) >= 1)
                    .map(mib)
                    .fold(f64::NAN, f64::max),
            }
        })
        .collect();
    let mut error_samples = probe.error_samples;
    error_samples.extend(load.error_samples);
    error_samples.truncate(ERROR_SAMPLES);
    Ok(Soak {
        app,
        quick,
        jobs: hosts.iter().map(|(job, _)| job.clone()).collect(),
        durations,
        max_rate,
        ramp,
        sustained,
        rate,
        probe_errors: probe.errors,
        flow_names: mix
            .iter()
            .map(|(name, _, _)| *name)
            .chain(canaries.iter().map(|(name, _)| *name))
            .collect(),
        app_flows: mix.len(),
        slices: load.slices,
        slice_rss_mib,
        slice_cpu,
        rss,
        misbehaving,
        error_samples,
        logs: work,
    })
}

/// Sets its flag when dropped: an early return stops the clients too.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn poisoned() -> anyhow::Error {
    anyhow::anyhow!("a soak lock was poisoned (a load task panicked)")
}

/// The app's manifest with absolute component paths, no build commands,
/// `trap` and `edge` in the frontend's job and `probe` in the callee's, in
/// `[jobs]` and in every named layout.
fn soak_manifest(root: &Path, app: SoakApp) -> Result<String> {
    let path = root.join("examples").join(app.name()).join("amimono.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let wasm = root.join("target/wasm32-wasip2/release");
    let text = text.replace(
        "../../target/wasm32-wasip2/release/",
        &format!("{}/", wasm.display()),
    );
    let mut out = String::new();
    let (mut web, mut callee) = (0, 0);
    for line in text.lines() {
        if line.starts_with("build = ") {
            continue;
        }
        let mut line = line.to_string();
        if line.starts_with("components = [") {
            if line.contains("\"frontend\"") {
                line = line.replace("\"frontend\"", "\"frontend\", \"trap\", \"edge\"");
                web += 1;
            }
            let anchor = format!("\"{}\"", app.callee());
            if line.contains(&anchor) {
                line = line.replace(&anchor, &format!("{anchor}, \"probe\""));
                callee += 1;
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    if web == 0 || callee == 0 {
        bail!(
            "{}: no job lists `frontend` or `{}` on a `components = [` line",
            path.display(),
            app.callee()
        );
    }
    let wasm = |name: &str| wasm.join(format!("{name}.wasm")).display().to_string();
    out.push_str(&format!(
        "\n# Added by the soak benchmark: misbehaving guests beside the app.\n\
         [components.trap]\nbinding = \"http\"\nsource = \"{trap}\"\n\n\
         [components.edge]\nbinding = \"http\"\nsource = \"{edge}\"\n\n\
         [components.edge.links]\n\"fixtures:probe/control\" = \"probe\"\n\n\
         [components.probe]\nbinding = \"rpc\"\nsource = \"{trap}\"\n",
        trap = wasm("fixture_trap_http"),
        edge = wasm("fixture_edge_http"),
    ));
    Ok(out)
}

/// Starts one host per job (callees first), logs into `work/<job>.log`.
fn start_hosts(
    root: &Path,
    app: SoakApp,
    work: &Path,
    bindings: &Path,
    jobs: &[JobMembers],
) -> Result<Vec<(String, HostProcess)>> {
    let data = work.join("data");
    let mut ordered: Vec<&JobMembers> = jobs.iter().collect();
    ordered.sort_by_key(|(_, members)| members.iter().any(|(label, _)| label == "frontend"));
    let mut hosts = Vec::new();
    for (job, members) in ordered {
        let http: Vec<&str> = members
            .iter()
            .filter(|(_, binding)| binding == "http")
            .map(|(label, _)| label.as_str())
            .collect();
        let log = work.join(format!("{job}.log"));
        let host = HostProcess::start_logging(
            root,
            &format!("soak {} job {job}", app.name()),
            work.as_os_str(),
            &[
                ("AMIMONO_JOB", OsStr::new(job.as_str())),
                ("AMIMONO_BINDINGS", bindings.as_os_str()),
                ("AMIMONO_DATA_DIR", data.as_os_str()),
            ],
            &http,
            Some(&log),
        )?;
        hosts.push((job.clone(), host));
    }
    Ok(hosts)
}

/// `host:port` of `http://host:port`.
fn address_of(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

/// What the closed loop measured.
struct Probe {
    requests: u64,
    errors: u64,
    error_samples: Vec<String>,
}

/// [`PROBE_CLIENTS`] clients run the mix back to back (flows in the
/// proportion of their weights) for `seconds`.
async fn closed_loop(
    client: &HttpClient,
    base: &str,
    mix: &[(&'static str, Arc<Flow>, u32)],
    seconds: f64,
) -> Probe {
    let cycle: Vec<Arc<Flow>> = mix
        .iter()
        .flat_map(|(_, flow, w)| std::iter::repeat_n(flow.clone(), *w as usize))
        .collect();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for worker in 0..PROBE_CLIENTS {
        let (client, base, cycle) = (client.clone(), base.to_string(), cycle.clone());
        tasks.push(tokio::spawn(async move {
            let (mut requests, mut errors, mut samples) = (0u64, 0u64, Vec::new());
            let mut n = worker;
            while Instant::now() < deadline {
                let flow = &cycle[n % cycle.len()];
                // Session numbers apart from the open loop's.
                let cookie = (flow.cookie)(1 << 40 | n as u64);
                n += PROBE_CLIENTS;
                for step in &flow.steps {
                    match tokio::time::timeout(
                        CLIENT_TIMEOUT,
                        open_loop::send(&client, &base, step, &cookie),
                    )
                    .await
                    {
                        Ok(Ok(())) => requests += 1,
                        Ok(Err(e)) => {
                            errors += 1;
                            samples.push(format!("closed loop: {e:#}"));
                            break;
                        }
                        Err(_) => {
                            errors += 1;
                            samples.push(format!(
                                "closed loop: {} {base}{}: no answer within {} s",
                                step.method,
                                step.path,
                                CLIENT_TIMEOUT.as_secs()
                            ));
                            break;
                        }
                    }
                }
            }
            (requests, errors, samples)
        }));
    }
    let mut probe = Probe {
        requests: 0,
        errors: 0,
        error_samples: Vec::new(),
    };
    for task in tasks {
        match task.await {
            Ok((requests, errors, samples)) => {
                probe.requests += requests;
                probe.errors += errors;
                probe.error_samples.extend(samples);
            }
            Err(e) => {
                probe.errors += 1;
                probe.error_samples.push(format!("closed loop task: {e}"));
            }
        }
    }
    probe.error_samples.truncate(ERROR_SAMPLES);
    probe
}

/// What the open loop collected.
struct Load {
    slices: Vec<Vec<FlowSlice>>,
    error_samples: Vec<String>,
}

/// One flow run of the open loop.
struct Record {
    flow: usize,
    slice: usize,
    latency_us: f64,
    requests: u64,
    error: Option<String>,
}

/// Starts each of `flows` at its rate from `origin` for `seconds`
/// (schedule kept on this thread, as in [`crate::open_loop::run`]), each
/// run on `runtime`; waits for every run to finish or time out.
fn open_loop_run(
    runtime: &tokio::runtime::Runtime,
    client: &HttpClient,
    flows: &[LoadFlow],
    seconds: f64,
    origin: Instant,
    first_number: u64,
) -> Result<Load> {
    let records: Arc<Mutex<Vec<Record>>> = Arc::default();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let intervals: Vec<f64> = flows.iter().map(|f| 1.0 / f.rate.max(1e-9)).collect();
    let mut next: Vec<(f64, u64)> = vec![(0.0, 0); flows.len()];
    // The earliest next start of any flow, until all are past the end.
    while let Some((f, &(offset, n))) = next
        .iter()
        .enumerate()
        .filter(|(_, (offset, _))| *offset < seconds)
        .min_by(|a, b| a.1.0.total_cmp(&b.1.0))
    {
        next[f] = (offset + intervals[f], n + 1);
        let scheduled = origin + Duration::from_secs_f64(offset);
        // Sleep only: spinning (as PF5 does for µs precision) would take a
        // fifth of a core from the hosts at these rates; a late wake-up
        // (tens of µs) counts in the latency, which is in ms here.
        let now = Instant::now();
        if scheduled > now {
            std::thread::sleep(scheduled - now);
        }
        let slice = ((offset / seconds * SLICES as f64) as usize).min(SLICES - 1);
        let (client, base, flow) = (client.clone(), flows[f].base.clone(), flows[f].flow.clone());
        let (records, in_flight) = (records.clone(), in_flight.clone());
        in_flight.fetch_add(1, Ordering::SeqCst);
        runtime.spawn(async move {
            let cookie = (flow.cookie)(first_number + n);
            let (mut requests, mut error) = (0u64, None);
            for step in &flow.steps {
                requests += 1;
                match tokio::time::timeout(
                    CLIENT_TIMEOUT,
                    open_loop::send(&client, &base, step, &cookie),
                )
                .await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        error = Some(format!("at {offset:.1} s: {e:#}"));
                        break;
                    }
                    Err(_) => {
                        error = Some(format!(
                            "at {offset:.1} s: {} {base}{}: no answer within {} s",
                            step.method,
                            step.path,
                            CLIENT_TIMEOUT.as_secs()
                        ));
                        break;
                    }
                }
            }
            let record = Record {
                flow: f,
                slice,
                latency_us: scheduled.elapsed().as_secs_f64() * 1e6,
                requests,
                error,
            };
            if let Ok(mut records) = records.lock() {
                records.push(record);
            }
            in_flight.fetch_sub(1, Ordering::SeqCst);
        });
    }
    // Every run ends within its steps' timeouts.
    let longest = flows.iter().map(|f| f.flow.steps.len()).max().unwrap_or(1) as u32;
    let deadline = Instant::now() + CLIENT_TIMEOUT * longest + Duration::from_secs(5);
    while in_flight.load(Ordering::SeqCst) > 0 {
        if Instant::now() > deadline {
            bail!(
                "{} well-behaved flows still running after their timeouts",
                in_flight.load(Ordering::SeqCst)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let records = std::mem::take(&mut *records.lock().map_err(|_| poisoned())?);
    let mut slices = vec![vec![FlowSlice::default(); flows.len()]; SLICES];
    let mut error_samples = Vec::new();
    for record in records {
        let cell = &mut slices[record.slice][record.flow];
        cell.requests += record.requests;
        match record.error {
            Some(e) => {
                cell.errors += 1;
                if error_samples.len() < ERROR_SAMPLES {
                    error_samples.push(e);
                }
            }
            None => cell.latencies_us.push(record.latency_us),
        }
    }
    Ok(Load {
        slices,
        error_samples,
    })
}

/// One sample of the sampler.
#[derive(Debug, Clone)]
struct Sample {
    /// Seconds since the open loop's origin.
    at: f64,
    /// VmRSS of each host, KiB.
    rss_kib: Vec<u64>,
    /// CPU-seconds so far: the whole machine busy, stolen by the
    /// hypervisor, the hosts together, this bench process.
    machine: f64,
    steal: f64,
    hosts: f64,
    bench: f64,
    /// Microseconds so far in which some task waited for IO, for CPU
    /// (`/proc/pressure/*`, "some" totals; 0 where the kernel has no PSI).
    io_stall_us: u64,
    cpu_stall_us: u64,
}

/// Samples every `pids`' VmRSS and CPU time each `every` until `stop`.
fn sample(
    pids: &[u32],
    origin: Instant,
    every: Duration,
    stop: &AtomicBool,
) -> Result<Vec<Sample>> {
    let mut samples = Vec::new();
    let mut next = origin;
    let bench = std::process::id();
    while !stop.load(Ordering::SeqCst) {
        sleep_until(next, stop);
        next += every;
        let rss_kib = pids
            .iter()
            .map(|pid| rss_kib(*pid))
            .collect::<Result<Vec<_>>>()
            .context("a host process of the soak is gone")?;
        let hosts = pids
            .iter()
            .map(|pid| cpu_seconds(*pid))
            .sum::<Result<f64>>()?;
        let (machine, steal) = machine_cpu_seconds()?;
        samples.push(Sample {
            at: Instant::now()
                .saturating_duration_since(origin)
                .as_secs_f64(),
            rss_kib,
            machine,
            steal,
            hosts,
            bench: cpu_seconds(bench)?,
            io_stall_us: pressure_us("io"),
            cpu_stall_us: pressure_us("cpu"),
        });
    }
    Ok(samples)
}

/// The "some" total of `/proc/pressure/<resource>`, µs (0 if unreadable).
fn pressure_us(resource: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/pressure/{resource}"))
        .ok()
        .and_then(|text| some_total_of(&text))
        .unwrap_or(0)
}

/// `total=` of the `some` line of a PSI file.
fn some_total_of(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("some "))?;
    line.split_whitespace()
        .find_map(|f| f.strip_prefix("total="))?
        .parse()
        .ok()
}

/// CPU-seconds the whole machine has been busy (all cores, idle and iowait
/// excluded) and stolen by the hypervisor, from `/proc/stat`.
fn machine_cpu_seconds() -> Result<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    machine_ticks_of(&stat)
        .map(|(busy, steal)| {
            let hz = clock_ticks_per_second();
            (busy as f64 / hz, steal as f64 / hz)
        })
        .context("parsing the cpu line of /proc/stat")
}

/// (busy, steal) ticks of the aggregate `cpu` line of `/proc/stat`.
fn machine_ticks_of(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    // (guest time is counted in user already).
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4)?;
    Some((total.checked_sub(idle)?, *fields.get(7)?))
}

/// Where the misbehaving clients go.
#[derive(Debug, Clone)]
struct Targets {
    frontend: String,
    trap: String,
    edge: String,
    upload_path: &'static str,
}

impl Targets {
    fn of(&self, kind: Misbehaviour) -> &str {
        match kind.target() {
            "trap" => &self.trap,
            "edge" => &self.edge,
            _ => &self.frontend,
        }
    }
}

/// Runs `kind`'s episodes from `origin` until `stop`, tallying outcomes.
fn misbehave(
    kind: Misbehaviour,
    targets: &Targets,
    origin: Instant,
    stop: &AtomicBool,
    tallies: &Mutex<BTreeMap<&'static str, Tally>>,
) {
    let address = targets.of(kind);
    let mut next = origin;
    while !stop.load(Ordering::SeqCst) {
        if let Pace::Rate(rate) = kind.pace() {
            sleep_until(next, stop);
            next += Duration::from_secs_f64(1.0 / rate);
            if stop.load(Ordering::SeqCst) {
                break;
            }
        } else {
            sleep_until(origin, stop);
        }
        let started = Instant::now();
        let outcome = episode(kind, address, targets.upload_path, stop);
        let Ok(mut tallies) = tallies.lock() else {
            return;
        };
        let tally = tallies.entry(kind.key()).or_default();
        tally.sent += 1;
        if let Some(answered_after) = outcome.answered_after {
            tally.seconds.push((answered_after - started).as_secs_f64());
        }
        *tally.outcomes.entry(outcome.text).or_default() += 1;
    }
}

/// Sleeps until `at` or `stop`, whichever comes first.
fn sleep_until(at: Instant, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now >= at {
            return;
        }
        std::thread::sleep((at - now).min(Duration::from_millis(100)));
    }
}

/// How one misbehaving request ended.
struct Outcome {
    text: String,
    /// When the server answered or cut the client off.
    answered_after: Option<Instant>,
}

/// How reading a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Closed,
    Reset,
    TimedOut,
    Stopped,
}

/// One misbehaving request on a fresh connection.
fn episode(kind: Misbehaviour, address: &str, upload_path: &str, stop: &AtomicBool) -> Outcome {
    let mut stream = match TcpStream::connect(address) {
        Ok(stream) => stream,
        Err(e) => {
            return Outcome {
                text: format!("connect failed: {}", e.kind()),
                answered_after: None,
            };
        }
    };
    let _ = stream.set_nodelay(true);
    let mut received = Vec::new();
    let get =
        |path: &str| format!("GET {path} HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n");
    let end = match kind {
        Misbehaviour::Trap => send_then_read(&mut stream, &get("/trap"), &mut received, stop),
        Misbehaviour::MemoryBomb => send_then_read(&mut stream, &get("/bomb"), &mut received, stop),
        Misbehaviour::RemoteTrap => {
            send_then_read(&mut stream, &get("/call/boom"), &mut received, stop)
        }
        Misbehaviour::TrapAfterResponse => send_then_read(
            &mut stream,
            &get("/trap-after-response"),
            &mut received,
            stop,
        ),
        Misbehaviour::SlowHeaders => {
            // Never finished: the padding header goes on forever.
            let head = b"GET / HTTP/1.1\r\nHost: soak\r\nX-Slow: ";
            let bytes = head.iter().copied().chain(std::iter::repeat(b'a'));
            trickle(&mut stream, bytes, &mut received, stop)
        }
        Misbehaviour::TrickledBody => {
            let head = format!(
                "POST {upload_path} HTTP/1.1\r\nHost: soak\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n"
            );
            if stream.write_all(head.as_bytes()).is_err() {
                End::Reset
            } else {
                trickle(&mut stream, std::iter::repeat(b'a'), &mut received, stop)
            }
        }
        Misbehaviour::StalledBody => {
            let head = format!(
                "POST {upload_path} HTTP/1.1\r\nHost: soak\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nproduct_id"
            );
            send_then_read(&mut stream, &head, &mut received, stop)
        }
        Misbehaviour::NonReader => {
            let request = get(&format!("/big?mib={NON_READER_MIB}"));
            if stream.write_all(request.as_bytes()).is_err() {
                End::Reset
            } else {
                sleep_until(Instant::now() + NON_READER_STALL, stop);
                if stop.load(Ordering::SeqCst) {
                    End::Stopped
                } else {
                    read_until_closed(&mut stream, &mut received, stop)
                }
            }
        }
    };
    let answered_after = (end != End::Stopped && end != End::TimedOut).then(Instant::now);
    Outcome {
        text: describe(kind, &received, end),
        answered_after,
    }
}

/// Sends `request` whole, then reads until the server closes.
fn send_then_read(
    stream: &mut TcpStream,
    request: &str,
    received: &mut Vec<u8>,
    stop: &AtomicBool,
) -> End {
    if stream.write_all(request.as_bytes()).is_err() {
        return End::Reset;
    }
    read_until_closed(stream, received, stop)
}

/// Sends `bytes` one per [`TRICKLE`] until the server answers or closes.
fn trickle(
    stream: &mut TcpStream,
    bytes: impl Iterator<Item = u8>,
    received: &mut Vec<u8>,
    stop: &AtomicBool,
) -> End {
    let started = Instant::now();
    if stream.set_read_timeout(Some(TRICKLE)).is_err() {
        return End::Reset;
    }
    let mut buffer = [0u8; 4096];
    for byte in bytes {
        if stop.load(Ordering::SeqCst) {
            return End::Stopped;
        }
        if started.elapsed() > CUT_OFF_WITHIN {
            return End::TimedOut;
        }
        if stream.write_all(&[byte]).is_err() {
            // Cut off; an answer may be waiting to be read.
            read_until_closed(stream, received, stop);
            return End::Reset;
        }
        match stream.read(&mut buffer) {
            Ok(0) => return End::Closed,
            Ok(n) => {
                received.extend_from_slice(&buffer[..n]);
                return read_until_closed(stream, received, stop);
            }
            Err(e) if is_timeout(&e) => {}
            Err(_) => return End::Reset,
        }
    }
    End::TimedOut
}

/// Reads until the server closes the connection, [`CUT_OFF_WITHIN`]
/// passes or `stop` is set.
fn read_until_closed(stream: &mut TcpStream, received: &mut Vec<u8>, stop: &AtomicBool) -> End {
    let started = Instant::now();
    if stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .is_err()
    {
        return End::Reset;
    }
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        if stop.load(Ordering::SeqCst) {
            return End::Stopped;
        }
        if started.elapsed() > CUT_OFF_WITHIN {
            return End::TimedOut;
        }
        match stream.read(&mut buffer) {
            Ok(0) => return End::Closed,
            // Only the head matters, and whether the body ended.
            Ok(n) => keep_ends(received, &buffer[..n]),
            Err(e) if is_timeout(&e) => {}
            Err(_) => return End::Reset,
        }
    }
}

/// Appends `bytes` to `received`, keeping only its first and last KiB.
fn keep_ends(received: &mut Vec<u8>, bytes: &[u8]) {
    const KEEP: usize = 1024;
    received.extend_from_slice(bytes);
    if received.len() > 4 * KEEP {
        let tail = received.len() - KEEP;
        received.drain(KEEP..tail);
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// The outcome of a misbehaving request, in words.
fn describe(kind: Misbehaviour, received: &[u8], end: End) -> String {
    let status = received
        .strip_prefix(b"HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .map(|code| String::from_utf8_lossy(code).into_owned());
    let how = match end {
        End::Closed => "closed",
        End::Reset => "reset",
        End::TimedOut => "still open after 60 s",
        End::Stopped => "unfinished at the end of the run",
    };
    match status {
        None if received.is_empty() => format!("no answer, {how}"),
        None => format!("garbled answer, {how}"),
        Some(status) => {
            let body_ended = received.ends_with(b"0\r\n\r\n");
            let chunked = received
                .windows(26)
                .any(|w| w.eq_ignore_ascii_case(b"transfer-encoding: chunked"));
            if matches!(
                kind,
                Misbehaviour::TrapAfterResponse | Misbehaviour::NonReader
            ) && chunked
                && !body_ended
            {
                format!("{status}, body cut off, {how}")
            } else if end == End::Closed {
                status
            } else {
                format!("{status}, {how}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_named_from_what_the_server_sent() {
        let kind = Misbehaviour::Trap;
        assert_eq!(describe(kind, b"HTTP/1.1 500 Internal", End::Closed), "500");
        assert_eq!(describe(kind, b"", End::Closed), "no answer, closed");
        assert_eq!(describe(kind, b"", End::Reset), "no answer, reset");
        assert_eq!(
            describe(kind, b"xyz", End::Closed),
            "garbled answer, closed"
        );
        let cut = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n7\r\npartial\r\n";
        assert_eq!(
            describe(Misbehaviour::TrapAfterResponse, cut, End::Closed),
            "200, body cut off, closed"
        );
        let whole = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        assert_eq!(
            describe(Misbehaviour::TrapAfterResponse, whole, End::Closed),
            "200"
        );
    }

    #[test]
    fn machine_cpu_is_read_from_the_aggregate_line() {
        let stat = "cpu  100 5 50 1000 20 3 2 7 0 0\ncpu0 50 2 25 500 10 1 1 3 0 0\n";
        // busy = all of the first eight − idle − iowait.
        assert_eq!(machine_ticks_of(stat), Some((167, 7)));
        assert_eq!(machine_ticks_of("cpu0 1 2 3\n"), None);
        assert!(machine_cpu_seconds().unwrap().0 > 0.0);
    }

    #[test]
    fn pressure_totals_are_read_from_the_some_line() {
        let text = "some avg10=0.03 avg60=0.26 avg300=0.45 total=107382414\n\
                    full avg10=0.00 avg60=0.00 avg300=0.05 total=28164458\n";
        assert_eq!(some_total_of(text), Some(107382414));
        assert_eq!(some_total_of("full total=1\n"), None);
    }

    #[test]
    fn only_the_ends_of_a_long_answer_are_kept() {
        let mut received = Vec::new();
        keep_ends(&mut received, b"HTTP/1.1 200 OK\r\n");
        for _ in 0..100 {
            keep_ends(&mut received, &[b'x'; 1000]);
        }
        keep_ends(&mut received, b"0\r\n\r\n");
        assert!(received.starts_with(b"HTTP/1.1 200"));
        assert!(received.ends_with(b"0\r\n\r\n"));
        assert!(received.len() <= 4 * 1024 + 1000);
    }

    #[test]
    fn the_manifest_copy_adds_the_fixtures_to_every_layout() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let hello = soak_manifest(root, SoakApp::Hello).unwrap();
        assert!(hello.contains("components = [\"frontend\", \"trap\", \"edge\"]"));
        assert!(hello.contains("components = [\"greeter\", \"probe\", \"phrasebook\"]"));
        assert!(!hello.contains("build = "));
        assert!(!hello.contains("../../target"));
        let boutique = soak_manifest(root, SoakApp::Boutique).unwrap();
        // [jobs] and [layouts.grouped] both.
        assert_eq!(
            boutique.matches("\"frontend\", \"trap\", \"edge\"").count(),
            2
        );
        assert_eq!(boutique.matches("\"checkout\", \"probe\"").count(), 2);
    }
}
