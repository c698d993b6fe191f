//! `amimono up <app>`: builds the bundle if the app changed, writes a
//! localhost bindings file pinned to the revision, and runs one `amimono run`
//! child per replica of each job (`AMIMONO_REPLICA=<i>`), named `<job>`, or
//! `<job>#<i>` when the job has several replicas. Child log lines (stderr)
//! come out prefixed with that name; once every HTTP component and every
//! admin listener of every replica has an address and every process
//! answers `/readyz` with 200, their URLs are printed
//! as `<label>: <url>` and `admin <job>: <url>` (replica 0), `<label>#<i>:
//! <url>` and `admin <job>#<i>: <url>` (replica `i` > 0). Ctrl-C or SIGTERM
//! stops every child (and so does `up` dying: each child gets SIGTERM from
//! the kernel); if a child dies, `up` says which, how, and its last log
//! lines, stops the others and exits 1.

use super::bindings::{localhost_bindings, ports_file};
use crate::app::App;
use crate::artifact_cache::engine_fingerprint;
use crate::bundle::{Bundle, build_components, write_bundle};
use crate::engine::{EngineUse, new_engine};
use crate::manifest::{BindingType, Manifest};
use anyhow::{Context, Result};
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// The share of requests whose colocated calls are measured when `up`
/// serves the dashboard (unless `AMIMONO_LOCAL_SAMPLE_RATIO` says).
const DASHBOARD_SAMPLE_RATIO: f64 = 0.1;

/// Log lines kept per job, to show when it dies.
const KEPT_LINES: usize = 20;
/// How long a child gets beyond its own shutdown grace period to stop after
/// SIGTERM before it is killed.
const STOP_MARGIN: Duration = Duration::from_secs(2);

/// What `amimono up` needs.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The app directory (or manifest).
    pub app: PathBuf,
    /// Where the bundle goes.
    pub bundle: PathBuf,
    /// First port for the bindings file.
    pub base_port: Option<u16>,
    /// The named layout whose jobs to run (`None`: `[jobs]`).
    pub layout: Option<String>,
    /// Where to serve the dashboard, if anywhere (loopback only).
    pub dashboard: Option<std::net::SocketAddr>,
}

enum Event {
    Stdout(String, String),
    Stderr(String, String),
    Exited(String),
    /// Time to check again whether every process is ready.
    Recheck,
}

/// How long one readiness probe of a child may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Whether every admin listener among `urls` (labels `admin …`) answers
/// `/readyz` with 200: each process serves, and the jobs it calls accept
/// connections.
async fn all_ready(urls: &BTreeMap<String, String>) -> bool {
    for (label, url) in urls {
        if label.starts_with("admin ")
            && crate::probe::probe(&format!("{url}/readyz"), PROBE_TIMEOUT)
                .await
                .is_err()
        {
            return false;
        }
    }
    true
}

/// Runs every job of the app as its own process until stopped; returns the
/// exit status for `up` itself.
pub async fn up(options: &UpOptions, progress: &mut dyn FnMut(String)) -> Result<i32> {
    if let Some(address) = options.dashboard
        && !address.ip().is_loopback()
    {
        anyhow::bail!(
            "--dashboard {address}: `up` serves the dashboard on loopback only (it has no login and \
             shows log lines); use 127.0.0.1:<port>, or run `amimono dashboard --public` yourself"
        );
    }
    let manifest = Manifest::load(&options.app)?;
    build_components(&manifest, progress)?;
    let app = App::load(&options.app)?;
    let engine = new_engine(EngineUse::Serving)?;
    let current = Bundle::open(&options.bundle).ok().is_some_and(|b| {
        b.index.revision == app.revision && b.index.engine == engine_fingerprint(&engine)
    });
    if current {
        progress(format!(
            "bundle {} is up to date (revision {})",
            options.bundle.display(),
            app.revision
        ));
    } else {
        let outcome = write_bundle(&app, &engine, &options.bundle, progress)?;
        progress(format!(
            "bundle {} (revision {})",
            outcome.path.display(),
            outcome.revision
        ));
    }
    drop(engine);

    // The bundle holds every layout; the jobs run are the chosen layout's.
    let app = match &options.layout {
        Some(layout) => app.with_layout(layout)?,
        None => app,
    };
    let ports = ports_file(&options.app);
    let bindings_text = localhost_bindings(&app, options.base_port, &ports, true)?;
    let bindings_path = ports.with_file_name("bindings.toml");
    std::fs::write(&bindings_path, &bindings_text)
        .with_context(|| format!("writing {}", bindings_path.display()))?;
    progress(format!("bindings {}", bindings_path.display()));

    // The URLs to wait for and print: each HTTP component's and each
    // admin listener's, per replica.
    let mut expected: Vec<String> = Vec::new();
    let mut processes: BTreeMap<String, Process> = BTreeMap::new();
    for (job, spec) in &app.manifest.jobs {
        for replica in 0..spec.replicas {
            let process = Process {
                job: job.clone(),
                replica,
                several: spec.replicas > 1,
            };
            for label in &spec.components {
                if app
                    .component(label)
                    .is_some_and(|c| c.spec.binding == BindingType::Http)
                {
                    expected.push(process.url_label(label));
                }
            }
            expected.push(process.url_label(&format!("admin {job}")));
            processes.insert(process.name(), process);
        }
    }
    // The dashboard listens before any job starts: jobs send it their spans
    // from their first request on.
    let dashboard = match options.dashboard {
        Some(address) => Some(start_dashboard(address, &app, &bindings_path).await?),
        None => None,
    };
    let mut env: Vec<(&str, String)> = Vec::new();
    if let Some(key) = cluster_key_for_children()? {
        env.push((crate::remote::auth::KEY_ENV, key));
    }
    // With the dashboard, jobs log JSON (their lines carry component and
    // trace id; `up` shows them in the chosen format) and export spans to it
    // unless an OTLP endpoint is set already.
    let children_format = match &dashboard {
        Some(_) => crate::observe::logs::LogFormat::Json,
        None => crate::observe::logs::format(),
    };
    env.push(("AMIMONO_LOG_FORMAT", children_format.name().to_string()));
    if let Some((_, url)) = &dashboard {
        let unset = |name: &str| std::env::var_os(name).is_none_or(|v| v.is_empty());
        // Local edges are drawn from sampled calls: sample enough of a
        // developer's few requests to see them.
        if unset(crate::observe::tapped::SAMPLE_RATIO_ENV) {
            env.push((
                crate::observe::tapped::SAMPLE_RATIO_ENV,
                DASHBOARD_SAMPLE_RATIO.to_string(),
            ));
        }
        if unset("OTEL_EXPORTER_OTLP_ENDPOINT") && unset("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            env.push((
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                url.trim_end_matches('/').to_string(),
            ));
            if unset("OTEL_BSP_SCHEDULE_DELAY") {
                env.push(("OTEL_BSP_SCHEDULE_DELAY", "1000".to_string()));
            }
        }
    }
    let exe = std::env::current_exe().context("finding the amimono executable")?;
    // Listening before the first child starts: a SIGTERM from then on stops
    // the children, even one that comes while the loop below is busy.
    let signals = crate::run::Signals::new();
    let (events, mut received) = mpsc::unbounded_channel();
    let mut children: BTreeMap<String, Child> = BTreeMap::new();
    for (name, process) in &processes {
        let child = spawn_job(
            &exe,
            &options.bundle,
            &bindings_path,
            process,
            options.layout.as_deref(),
            &env,
            &events,
        )?;
        children.insert(name.clone(), child);
    }
    drop(events);

    let mut last_lines: BTreeMap<String, VecDeque<String>> = BTreeMap::new();
    let mut urls: BTreeMap<String, String> = BTreeMap::new();
    let mut announced = false;
    let mut recheck = tokio::time::interval(Duration::from_millis(20));
    let status = loop {
        let event = tokio::select! {
            event = received.recv() => event,
            _ = recheck.tick(), if !announced => Some(Event::Recheck),
            () = signals.next() => {
                progress("stopping every job".to_string());
                break 0;
            }
        };
        match event {
            Some(Event::Stderr(job, line)) => {
                if let Some((dashboard, _)) = &dashboard {
                    dashboard.log_line(&job, &line);
                }
                // JSON lines name their job and replica themselves.
                let json = line.starts_with('{');
                if crate::observe::logs::format() == crate::observe::logs::LogFormat::Json && json {
                    eprintln!("{line}");
                } else if let Some(text) = json
                    .then(|| crate::observe::logs::json_line_as_text(&line))
                    .flatten()
                {
                    eprintln!("[{job}] {text}");
                } else {
                    eprintln!("[{job}] {line}");
                }
                remember(&mut last_lines, &job, line);
            }
            Some(Event::Stdout(job, line)) => {
                let labelled = line.split_once(": ").and_then(|(label, url)| {
                    let process = processes.get(&job)?;
                    let label = match label {
                        "admin" => process.url_label(&format!("admin {}", process.job)),
                        label => process.url_label(label),
                    };
                    expected.contains(&label).then(|| (label, url.to_string()))
                });
                match labelled {
                    Some((label, url)) => {
                        urls.insert(label, url);
                    }
                    None => println!("[{job}] {line}"),
                }
                remember(&mut last_lines, &job, line);
            }
            Some(Event::Recheck) => {
                // Every process ready before the URLs are announced: a
                // request must not reach a job whose callees are not there.
                if expected.iter().all(|label| urls.contains_key(label)) && all_ready(&urls).await {
                    announced = true;
                    let mut out = std::io::stdout().lock();
                    // HTTP components first, then the admin listeners.
                    let (admin, components): (Vec<_>, Vec<_>) = urls
                        .iter()
                        .partition(|(label, _)| label.starts_with("admin "));
                    for (label, url) in components.into_iter().chain(admin) {
                        writeln!(out, "{label}: {url}").context("writing to stdout")?;
                    }
                    if let Some((_, url)) = &dashboard {
                        writeln!(out, "dashboard: {url}").context("writing to stdout")?;
                    }
                    out.flush().context("writing to stdout")?;
                    let jobs = app.manifest.jobs.len();
                    progress(if children.len() == jobs {
                        format!("{jobs} jobs running; Ctrl-C stops them")
                    } else {
                        format!(
                            "{jobs} jobs running as {} processes; Ctrl-C stops them",
                            children.len()
                        )
                    });
                }
            }
            Some(Event::Exited(job)) => {
                let how = match children.remove(&job) {
                    Some(mut child) => match child.wait().await {
                        Ok(status) => describe(status),
                        Err(e) => format!("ended and could not be waited for ({e})"),
                    },
                    None => "ended".to_string(),
                };
                let lines = last_lines.remove(&job).unwrap_or_default();
                eprintln!("amimono up: job `{job}` {how}; its last log lines:");
                for line in lines {
                    eprintln!("  [{job}] {line}");
                }
                eprintln!("amimono up: stopping the other jobs");
                break 1;
            }
            None => break 1,
        }
    };
    let grace = app.manifest.limits.shutdown_grace + STOP_MARGIN;
    let stopped_cleanly = stop_all(children, grace, &signals).await;
    Ok(if status == 0 && !stopped_cleanly {
        1
    } else {
        status
    })
}

/// The cluster key the jobs get: a new one per run, unless the environment
/// already has one (or turns authentication off), which the children inherit.
fn cluster_key_for_children() -> Result<Option<String>> {
    use crate::remote::auth::{Authentication, ClusterKey};
    match Authentication::from_environment()? {
        Some(_) => Ok(None),
        None => Ok(Some(
            ClusterKey::generate().context("making a cluster key for the jobs")?,
        )),
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => format!("ended ({status})"),
    }
}

fn remember(last: &mut BTreeMap<String, VecDeque<String>>, job: &str, line: String) {
    let lines = last.entry(job.to_string()).or_default();
    if lines.len() == KEPT_LINES {
        lines.pop_front();
    }
    lines.push_back(line);
}

/// One child: a replica of a job.
#[derive(Debug, Clone)]
struct Process {
    job: String,
    replica: u32,
    /// Whether its job has several replicas.
    several: bool,
}

impl Process {
    /// How logs and messages name it: `<job>`, or `<job>#<i>` when the job
    /// has several replicas.
    fn name(&self) -> String {
        if self.several {
            format!("{}#{}", self.job, self.replica)
        } else {
            self.job.clone()
        }
    }

    /// How `up` prints URL `label` of this replica: as is for replica 0,
    /// `<label>#<i>` for the others.
    fn url_label(&self, label: &str) -> String {
        if self.replica == 0 {
            label.to_string()
        } else {
            format!("{label}#{}", self.replica)
        }
    }
}

/// Starts the dashboard of `up` on `address` (checked loopback), reading the
/// admin listeners of `bindings`: it and its URL.
async fn start_dashboard(
    address: std::net::SocketAddr,
    app: &App,
    bindings: &Path,
) -> Result<(std::sync::Arc<crate::dashboard::Dashboard>, String)> {
    let bindings = crate::bindings_file::Bindings::load(bindings, app)?;
    let dashboard = crate::dashboard::Dashboard::new(app.clone(), &bindings)?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("the dashboard cannot listen on {address}"))?;
    let url = format!(
        "http://{}/",
        listener.local_addr().context("the dashboard's address")?
    );
    let serving = dashboard.clone();
    tokio::spawn(async move {
        if let Err(e) = serving.serve(listener, false).await {
            tracing::error!(error = %format!("{e:#}"), "the dashboard stopped");
        }
    });
    Ok((dashboard, url))
}

fn spawn_job(
    exe: &Path,
    bundle: &Path,
    bindings: &Path,
    process: &Process,
    layout: Option<&str>,
    env: &[(&str, String)],
    events: &mpsc::UnboundedSender<Event>,
) -> Result<Child> {
    let (job, name) = (process.job.as_str(), process.name());
    let mut command = Command::new(exe);
    for (name, value) in env {
        command.env(name, value);
    }
    match layout {
        Some(layout) => command.env("AMIMONO_LAYOUT", layout),
        None => command.env_remove("AMIMONO_LAYOUT"),
    };
    stop_with_parent(&mut command);
    let mut child = command
        .arg("run")
        .arg(bundle)
        .env("AMIMONO_JOB", job)
        .env(crate::run::REPLICA_ENV, process.replica.to_string())
        .env("AMIMONO_BINDINGS", bindings)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting job `{name}`"))?;
    let stdout = child.stdout.take().context("child stdout")?;
    let stderr = child.stderr.take().context("child stderr")?;
    let tx = events.clone();
    let out_name = name.clone();
    tokio::spawn(async move {
        let name = out_name;
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = tx.send(Event::Stdout(name.clone(), line));
        }
    });
    let tx = events.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = tx.send(Event::Stderr(name.clone(), line));
        }
        // stderr closes when the process ends: report how it ended.
        let _ = tx.send(Event::Exited(name));
    });
    Ok(child)
}

/// Sends SIGTERM to every child at once (each drains), waits up to `grace`
/// for all of them (a second Ctrl-C or SIGTERM cuts the wait short), then
/// kills the rest. Whether every child exited 0 in time.
async fn stop_all(
    children: BTreeMap<String, Child>,
    grace: Duration,
    signals: &crate::run::Signals,
) -> bool {
    for child in children.values() {
        if let Some(pid) = child.id() {
            terminate(pid);
        }
    }
    let deadline = tokio::time::Instant::now() + grace;
    let mut clean = true;
    for (job, mut child) in children {
        let outcome = tokio::select! {
            waited = tokio::time::timeout_at(deadline, child.wait()) => waited.ok(),
            () = signals.next() => None,
        };
        match outcome {
            Some(Ok(status)) => {
                tracing::debug!(job, %status, "job stopped");
                clean &= status.success();
            }
            _ => {
                tracing::warn!(job, "job did not stop in time: killed");
                let _ = child.kill().await;
                clean = false;
            }
        }
    }
    clean
}

/// Makes the child get SIGTERM (and drain) when `up` dies, however it dies:
/// `kill_on_drop` covers only an orderly exit, and a killed `up` would
/// otherwise leave its jobs running, holding their ports.
fn stop_with_parent(command: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and calls
    // only async-signal-safe functions (prctl, getppid, _exit).
    #[allow(unsafe_code)]
    unsafe {
        let parent = libc::getpid();
        command.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            // `up` may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

fn terminate(pid: u32) {
    // SAFETY: `kill` with a pid this process spawned and still owns (the
    // child has not been reaped: we hold its `Child`), and a valid signal.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}
