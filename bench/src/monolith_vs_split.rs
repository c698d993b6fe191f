//! PF5, monolith vs split: the boutique (`examples/boutique`) under a fixed
//! request rate from an open-loop generator ([`crate::open_loop`]), deployed
//! three ways that take turns, round by round:
//! - `_local`: every service in one process, calls linked inside wasm;
//! - the `grouped` layout: a few processes;
//! - fully split (`[jobs]`): one process per service, every call over HTTP.
//!
//! Two flows run side by side: the home page (`GET /`, prices in EUR) and
//! checkout (`POST /cart` then `POST /cart/checkout`, a new session each
//! time). Reported: median and p99 latency per flow, and CPU-seconds per
//! request of all the deployment's processes together (from `/proc`).
//! ratio = split median ÷ `_local` median (the smaller of the two flows);
//! goal ≥ 20. The CPU ratio (split ÷ `_local`) has goal ≥ 10.

use crate::host_process::{HostProcess, cpu_seconds, free_port};
use crate::open_loop::{self, Flow, Step};
use crate::stats::{median, percentile};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// Goal for split median ÷ `_local` median.
const LATENCY_GOAL: f64 = 20.0;
/// Goal for split CPU per request ÷ `_local` CPU per request.
const CPU_GOAL: f64 = 10.0;
/// Home pages per second.
const HOME_RATE: f64 = 100.0;
/// Checkout flows per second (two requests each).
const CHECKOUT_RATE: f64 = 20.0;

/// How the boutique is deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deployment {
    Local,
    Grouped,
    Split,
}

impl Deployment {
    const ALL: [Deployment; 3] = [Deployment::Local, Deployment::Grouped, Deployment::Split];

    fn label(self) -> &'static str {
        match self {
            Deployment::Local => "_local (1 process)",
            Deployment::Grouped => "grouped layout",
            Deployment::Split => "fully split (1 process per service)",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Deployment::Local => "local",
            Deployment::Grouped => "grouped",
            Deployment::Split => "split",
        }
    }
}

/// Figures of one flow in one deployment.
#[derive(Debug, Clone, Copy, Default)]
struct Latency {
    median_us: f64,
    p99_us: f64,
}

/// Figures of one deployment.
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    processes: usize,
    home: Latency,
    checkout: Latency,
    cpu_us_per_request: f64,
}

/// What the counted rounds of one deployment collected.
#[derive(Default)]
struct Samples {
    home: Vec<f64>,
    checkout: Vec<f64>,
    cpu_seconds: f64,
    requests: f64,
}

/// A job and its components: (label, binding type).
pub type JobMembers = (String, Vec<(String, String)>);

/// PF5's result.
pub struct Pf5 {
    figures: Vec<(Deployment, Figures)>,
    rounds: usize,
    seconds: f64,
}

impl Pf5 {
    fn of(&self, deployment: Deployment) -> Figures {
        self.figures
            .iter()
            .find(|(d, _)| *d == deployment)
            .map(|(_, f)| *f)
            .unwrap_or_default()
    }

    /// (home, checkout) split ÷ local medians.
    fn latency_ratios(&self) -> (f64, f64) {
        let (local, split) = (self.of(Deployment::Local), self.of(Deployment::Split));
        (
            split.home.median_us / local.home.median_us,
            split.checkout.median_us / local.checkout.median_us,
        )
    }

    fn cpu_ratio(&self) -> f64 {
        self.of(Deployment::Split).cpu_us_per_request
            / self.of(Deployment::Local).cpu_us_per_request
    }

    /// The table, as markdown.
    pub fn table(&self) -> String {
        let mut out = format!(
            "PF5 monolith vs split: boutique, open loop, {HOME_RATE:.0} home pages/s + {CHECKOUT_RATE:.0} checkout flows/s, {} round(s) of {:.0} s per deployment\n\n\
             | deployment | processes | home p50 µs | home p99 µs | checkout p50 µs | checkout p99 µs | CPU µs/request |\n\
             |---|---:|---:|---:|---:|---:|---:|\n",
            self.rounds, self.seconds
        );
        for (deployment, f) in &self.figures {
            out.push_str(&format!(
                "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |\n",
                deployment.label(),
                f.processes,
                f.home.median_us,
                f.home.p99_us,
                f.checkout.median_us,
                f.checkout.p99_us,
                f.cpu_us_per_request
            ));
        }
        let (home, checkout) = self.latency_ratios();
        let ratio = home.min(checkout);
        let cpu = self.cpu_ratio();
        out.push_str(&format!(
            "\nsplit ÷ _local median latency: home {home:.1}, checkout {checkout:.1} → ratio {ratio:.1} (goal ≥ {LATENCY_GOAL}: {})\n\
             split ÷ _local CPU per request: {cpu:.1} (goal ≥ {CPU_GOAL}: {})\n",
            if ratio >= LATENCY_GOAL { "met" } else { "MISSED" },
            if cpu >= CPU_GOAL { "met" } else { "MISSED" },
        ));
        out
    }

    /// The JSON entry for `results.json`.
    pub fn json(&self) -> serde_json::Value {
        let (home, checkout) = self.latency_ratios();
        let ratio = home.min(checkout);
        let cpu = self.cpu_ratio();
        let deployments: serde_json::Map<String, serde_json::Value> = self
            .figures
            .iter()
            .map(|(d, f)| {
                (
                    d.key().to_string(),
                    serde_json::json!({
                        "processes": f.processes,
                        "home_us": { "median": f.home.median_us, "p99": f.home.p99_us },
                        "checkout_us": { "median": f.checkout.median_us, "p99": f.checkout.p99_us },
                        "cpu_us_per_request": f.cpu_us_per_request,
                    }),
                )
            })
            .collect();
        serde_json::json!({
            "ratio": ratio,
            "goal": LATENCY_GOAL,
            "met": ratio >= LATENCY_GOAL,
            "latency_ratios": { "home": home, "checkout": checkout },
            "cpu_ratio": cpu,
            "cpu_goal": CPU_GOAL,
            "cpu_met": cpu >= CPU_GOAL,
            "deployments": deployments,
            "home_per_s": HOME_RATE,
            "checkout_flows_per_s": CHECKOUT_RATE,
            "rounds": self.rounds,
            "seconds_per_round": self.seconds,
        })
    }
}

/// Runs PF5.
pub fn run(root: &Path, quick: bool) -> Result<Pf5> {
    let (rounds, seconds) = if quick { (1, 2.0) } else { (3, 10.0) };
    let app = root.join("examples/boutique");
    let work = root.join("target/bench/pf5");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let mut running = Vec::new();
    for deployment in Deployment::ALL {
        running.push((deployment, start(root, &app, &work, deployment)?));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let client = runtime.block_on(async { open_loop::client() });
    let home = Arc::new(home_flow());
    let checkout = Arc::new(checkout_flow());
    let mut samples: BTreeMap<&str, Samples> = BTreeMap::new();
    let mut flows_started = 0u64;
    for round in 0..=rounds {
        // Round 0 warms every deployment up and is not counted.
        let round_seconds = if round == 0 { 1.0 } else { seconds };
        for (deployment, processes) in &running {
            let base = processes.url.clone();
            let cpu_before = processes.cpu_seconds()?;
            let mut latencies = open_loop::run(
                &runtime,
                &client,
                &base,
                &[home.clone(), checkout.clone()],
                round_seconds,
                flows_started,
            )?;
            let checkout_latencies = latencies.pop().unwrap_or_default();
            let home_latencies = latencies.pop().unwrap_or_default();
            let cpu = processes.cpu_seconds()? - cpu_before;
            flows_started += 1_000_000;
            if round == 0 {
                continue;
            }
            let entry = samples.entry(deployment.key()).or_default();
            entry.cpu_seconds += cpu;
            entry.requests += (home_latencies.len() + 2 * checkout_latencies.len()) as f64;
            entry.home.extend(home_latencies);
            entry.checkout.extend(checkout_latencies);
        }
    }
    let figures = running
        .iter()
        .map(|(deployment, processes)| {
            let Samples {
                home,
                checkout,
                cpu_seconds: cpu,
                requests,
            } = samples.remove(deployment.key()).unwrap_or_default();
            (
                *deployment,
                Figures {
                    processes: processes.hosts.len(),
                    home: Latency {
                        median_us: median(&home),
                        p99_us: percentile(&home, 99.0),
                    },
                    checkout: Latency {
                        median_us: median(&checkout),
                        p99_us: percentile(&checkout, 99.0),
                    },
                    cpu_us_per_request: cpu * 1e6 / requests.max(1.0),
                },
            )
        })
        .collect();
    Ok(Pf5 {
        figures,
        rounds,
        seconds,
    })
}

/// The home page in EUR (every product price converted).
pub fn home_flow() -> Flow {
    Flow {
        steps: vec![Step {
            method: "GET",
            path: "/".into(),
            form: None,
            expect_status: 200,
        }],
        rate: HOME_RATE,
        cookie: Box::new(|_| "shop_session-id=bench-home; shop_currency=EUR".into()),
    }
}

/// Add one product to a fresh cart, then check out with a valid card.
pub fn checkout_flow() -> Flow {
    let order = [
        ("email", "someone@example.com"),
        ("street_address", "1600 Amphitheatre Parkway"),
        ("zip_code", "94043"),
        ("city", "Mountain View"),
        ("state", "CA"),
        ("country", "United States"),
        ("credit_card_number", "4432801561520454"),
        ("credit_card_expiration_month", "1"),
        ("credit_card_expiration_year", "2039"),
        ("credit_card_cvv", "672"),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={}", v.replace(' ', "+")))
    .collect::<Vec<_>>()
    .join("&");
    Flow {
        steps: vec![
            Step {
                method: "POST",
                path: "/cart".into(),
                form: Some("product_id=OLJCESPC7Z&quantity=2".into()),
                expect_status: 302,
            },
            Step {
                method: "POST",
                path: "/cart/checkout".into(),
                form: Some(order),
                expect_status: 200,
            },
        ],
        rate: CHECKOUT_RATE,
        cookie: Box::new(|n| format!("shop_session-id=bench-checkout-{n}; shop_currency=EUR")),
    }
}

/// One deployment's processes.
struct Processes {
    hosts: Vec<HostProcess>,
    /// The frontend's base URL.
    url: String,
}

impl Processes {
    /// CPU-seconds used so far by all of them.
    fn cpu_seconds(&self) -> Result<f64> {
        self.hosts.iter().map(|h| cpu_seconds(h.pid())).sum()
    }
}

/// Starts the boutique in `deployment`; keys in memory so the figures are
/// about the host, not the disk.
fn start(root: &Path, app: &Path, work: &Path, deployment: Deployment) -> Result<Processes> {
    let name = format!("PF5 {}", deployment.key());
    let quiet = ("RUST_LOG", OsStr::new("warn,amimono::run=info"));
    let memory = ("AMIMONO_KEYVALUE", OsStr::new("memory"));
    if deployment == Deployment::Local {
        let host = HostProcess::start(
            root,
            &name,
            app.as_os_str(),
            &[("AMIMONO_JOB", OsStr::new("_local")), quiet, memory],
            &["frontend"],
        )?;
        let url = host.url("frontend")?.to_string();
        return Ok(Processes {
            hosts: vec![host],
            url,
        });
    }
    let layout = (deployment == Deployment::Grouped).then_some("grouped");
    let jobs = jobs_of(root, app, layout)?;
    let bindings = write_bindings(work, deployment.key(), &jobs)?;
    let mut hosts = Vec::new();
    let mut url = None;
    // Jobs without the frontend first, so its callees are up when it starts.
    let mut ordered: Vec<&JobMembers> = jobs.iter().collect();
    ordered.sort_by_key(|(_, members)| members.iter().any(|(label, _)| label == "frontend"));
    for (job, members) in ordered {
        let mut env = vec![
            ("AMIMONO_JOB", OsStr::new(job.as_str())),
            ("AMIMONO_BINDINGS", bindings.as_os_str()),
            quiet,
            memory,
        ];
        if let Some(layout) = layout {
            env.push(("AMIMONO_LAYOUT", OsStr::new(layout)));
        }
        let http: Vec<&str> = members
            .iter()
            .filter(|(_, binding)| binding == "http")
            .map(|(label, _)| label.as_str())
            .collect();
        let host = HostProcess::start(
            root,
            &format!("{name} job {job}"),
            app.as_os_str(),
            &env,
            &http,
        )?;
        if let Ok(frontend) = host.url("frontend") {
            url = Some(frontend.to_string());
        }
        hosts.push(host);
    }
    let url = url.context("no job of the boutique serves `frontend`")?;
    Ok(Processes { hosts, url })
}

/// The jobs of `layout` (or `[jobs]`): job → [(label, binding type)], from
/// `AMIMONO_JOB=_config`.
pub fn jobs_of(root: &Path, app: &Path, layout: Option<&str>) -> Result<Vec<JobMembers>> {
    let mut command = Command::new(root.join("target/release/amimono"));
    command
        .current_dir(root)
        .arg("run")
        .arg(app)
        .env("AMIMONO_JOB", "_config")
        .env_remove("AMIMONO_BINDINGS");
    match layout {
        Some(layout) => command.env("AMIMONO_LAYOUT", layout),
        None => command.env_remove("AMIMONO_LAYOUT"),
    };
    let output = command
        .output()
        .context("running `amimono run` for _config")?;
    if !output.status.success() {
        bail!(
            "`AMIMONO_JOB=_config amimono run {}` failed: {}",
            app.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let config: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("parsing the _config JSON")?;
    let jobs = config["jobs"]
        .as_object()
        .context("the _config JSON has no `jobs`")?;
    Ok(jobs
        .iter()
        .map(|(job, spec)| {
            let members = spec["components"]
                .as_object()
                .map(|components| {
                    components
                        .iter()
                        .map(|(label, c)| {
                            let binding = c["binding"]["type"].as_str().unwrap_or("none");
                            (label.clone(), binding.to_string())
                        })
                        .collect()
                })
                .unwrap_or_default();
            (job.clone(), members)
        })
        .collect())
}

/// A bindings file giving every `http` and `rpc` component a free loopback
/// port (rpc components of one job share one).
pub fn write_bindings(work: &Path, name: &str, jobs: &[JobMembers]) -> Result<PathBuf> {
    let mut text = String::from("# Written by the benchmarks (PF5, soak).\n");
    let mut taken = std::collections::BTreeSet::new();
    let mut port = || -> Result<u16> {
        loop {
            let port = free_port()?;
            if taken.insert(port) {
                return Ok(port);
            }
        }
    };
    for (_, members) in jobs {
        let rpc_port = port()?;
        for (label, binding) in members {
            let port = match binding.as_str() {
                "rpc" => rpc_port,
                "http" => port()?,
                _ => continue,
            };
            text.push_str(&format!(
                "\n[components.{label}]\ntype = \"{binding}\"\ninternal = \"127.0.0.1:{port}\"\n"
            ));
        }
    }
    let path = work.join(format!("{name}-bindings.toml"));
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
