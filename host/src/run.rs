//! `amimono run`: what a process needs around a [`Job`]: binding the
//! addresses of the bindings file (its replica's entries, `--replica`, when
//! the file lists one per replica; or free loopback ports), printing the
//! URLs (the admin listener's as `admin: <url>`), and signals. On SIGTERM
//! or SIGINT the job turns not-ready (`/readyz` answers 503), stops
//! accepting, lets requests and calls in flight finish within the shutdown
//! grace period, and exits 0; a second signal, or the end of the grace
//! period, stops it at once with a non-zero status.

use crate::application::Application;
use crate::bindings_file::Bindings;
use crate::job::{Job, Listeners, Stopped};
use crate::link::router;
use crate::manifest::BindingType;
use crate::placement::Placement;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use tokio::net::TcpListener;

/// Exit status when the grace period ends, or a second signal comes, with
/// requests still in flight.
pub const EXIT_UNDRAINED: i32 = 3;

/// Environment variable overriding `[limits] shutdown_grace_ms`.
pub const SHUTDOWN_GRACE_ENV: &str = "AMIMONO_SHUTDOWN_GRACE_MS";

/// Environment variable (and `--replica`) saying which replica of its job a
/// process is: 0 to the job's `replicas` − 1.
pub const REPLICA_ENV: &str = "AMIMONO_REPLICA";

/// What `amimono run` is asked to run besides the app.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Every call between components of the process over HTTP.
    pub force_remote: bool,
    /// The bindings file.
    pub bindings: Option<Bindings>,
    /// Where the admin listener listens (overrides the bindings file).
    pub admin: Option<SocketAddr>,
    /// Which replica of the job this process is (picks its entries of the
    /// bindings file's lists).
    pub replica: u32,
}

/// Runs job `job` of `application` on `engine` (built for serving) until
/// SIGINT or SIGTERM, then drains; the exit status.
pub async fn run(
    engine: wasmtime::Engine,
    application: &Application,
    job: &str,
    options: RunOptions,
    data_dir: &Path,
) -> Result<i32> {
    let RunOptions {
        force_remote,
        bindings,
        admin,
        replica,
    } = options;
    let app = application.app();
    let placement = Placement::for_job(app, job)?.with_force_remote(force_remote);
    if let Some(bindings) = &bindings {
        bindings.check_revision(&app.revision)?;
        bindings.check_replica(&placement, replica)?;
        bindings.check_addresses(app, &placement, replica)?;
    }
    check_replica(app, job, replica)?;
    crate::observe::logs::set_process(crate::observe::logs::ProcessFields {
        app: app.name().to_string(),
        job: job.to_string(),
        revision: app.revision.clone(),
        replica,
    });
    // Listening for signals from the start: a SIGTERM while starting drains too.
    let signals = Signals::new();
    let since_start = || crate::uptime::since_start().as_secs_f64() * 1e3;
    tracing::debug!(ms = since_start(), "app loaded");

    // Listen first, so the runtime interface can report real URLs.
    let mut served = BTreeMap::new();
    let mut listeners = Listeners::new();
    for label in placement.members_with(app, BindingType::Http) {
        let (address, external) = address_of(app, bindings.as_ref(), &label, replica)?;
        let listener = listen(address, &label).await?;
        served.insert(label.clone(), external.unwrap_or(local_url(&listener)?));
        listeners = listeners.http(&label, listener);
    }
    // Other processes reach this job's rpc components (the router says
    // which); components sharing an address share a listener.
    let mut rpc_groups: BTreeMap<SocketAddr, Vec<(String, Option<String>)>> = BTreeMap::new();
    for label in router::rpc_members_called_from_outside(app, &placement) {
        let (address, external) = address_of(app, bindings.as_ref(), &label, replica)?;
        rpc_groups
            .entry(address)
            .or_default()
            .push((label, external));
    }
    for (address, members) in rpc_groups {
        let labels: Vec<String> = members.iter().map(|(label, _)| label.clone()).collect();
        let listener = listen(address, &labels.join(", ")).await?;
        let local = local_url(&listener)?;
        for (label, external) in members {
            served.insert(label, external.unwrap_or_else(|| local.clone()));
        }
        tracing::info!(components = ?labels, address = %local, "serving calls from other jobs");
        listeners = listeners.rpc(labels, listener);
    }
    // The admin listener: the flag (or AMIMONO_ADMIN), else the bindings
    // file's `[jobs.<job>] admin`, else a free loopback port.
    let admin_address = admin
        .or_else(|| {
            bindings
                .as_ref()
                .and_then(|b| b.admin.get(job)?.get(replica).copied())
        })
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
    let admin_listener = listen(admin_address, "admin").await?;
    let admin_url = local_url(&admin_listener)?;
    listeners = listeners.admin(admin_listener);

    let mut builder = application
        .job(job)
        .force_remote(force_remote)
        .engine(engine)
        .data_dir(data_dir)
        .shutdown_grace(shutdown_grace(app))
        .replica(replica);
    if let Some(bindings) = bindings {
        builder = builder.bindings(bindings);
    }
    for (label, url) in &served {
        builder = builder.url(label, url);
    }
    let job: Job = builder.prepare().await?;

    {
        let mut out = std::io::stdout().lock();
        for label in job.http_components() {
            if let Some(url) = served.get(&label) {
                writeln!(out, "{label}: {url}").context("writing to stdout")?;
            }
        }
        writeln!(out, "admin: {admin_url}").context("writing to stdout")?;
        out.flush().context("writing to stdout")?;
    }
    tracing::info!(
        app = %app.name(),
        job = %job.name(),
        replica,
        revision = %job.revision(),
        components = ?job.components(),
        force_remote,
        ready_ms = since_start(),
        "job running"
    );
    let stopped = job
        .serve_until(listeners, signals.next(), signals.next())
        .await;
    // The process exits at once after this: export the last spans first.
    job.export_traces().await;
    match stopped? {
        Stopped::Drained => Ok(0),
        Stopped::Undrained => Ok(EXIT_UNDRAINED),
    }
}

/// The drain time after SIGTERM: `AMIMONO_SHUTDOWN_GRACE_MS`, else the
/// manifest's `shutdown_grace_ms`.
fn shutdown_grace(app: &crate::app::App) -> std::time::Duration {
    std::env::var(SHUTDOWN_GRACE_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(
            app.manifest.limits.shutdown_grace,
            std::time::Duration::from_millis,
        )
}

/// Refuses a replica index the job does not have (`_local`, one process
/// of every job, may be run side by side with single addresses).
fn check_replica(app: &crate::app::App, job: &str, replica: u32) -> Result<()> {
    let Some(spec) = app.manifest.jobs.get(job) else {
        return Ok(());
    };
    if replica >= spec.replicas {
        anyhow::bail!(
            "job `{job}` has replicas = {} (replicas 0–{}): there is no replica {replica}; set --replica ({REPLICA_ENV}) to one of them",
            spec.replicas,
            spec.replicas - 1
        );
    }
    Ok(())
}

/// Where replica `replica` of component `label`'s job listens for it, and
/// its external URL: from the bindings file, or any free loopback port (the
/// URL is then the listener's).
fn address_of(
    app: &crate::app::App,
    bindings: Option<&Bindings>,
    label: &str,
    replica: u32,
) -> Result<(SocketAddr, Option<String>)> {
    match bindings {
        Some(bindings) => {
            let entry = bindings.require(app, label)?;
            let internal = entry.internal_of(replica).with_context(|| {
                format!("the bindings file gives `{label}` no address for replica {replica}")
            })?;
            Ok((internal, entry.external_of(replica).map(str::to_string)))
        }
        None => Ok((SocketAddr::from(([127, 0, 0, 1], 0)), None)),
    }
}

fn local_url(listener: &TcpListener) -> Result<String> {
    let address = listener
        .local_addr()
        .context("reading the listener's address")?;
    Ok(format!("http://{address}"))
}

async fn listen(address: SocketAddr, what: &str) -> Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("listening on {address} for `{what}`"))
}

/// SIGINT and SIGTERM, as a stream: the first one starts draining, the
/// second one stops at once. Both are listened to from [`Signals::new`] on,
/// so a signal that comes while nobody awaits [`Signals::next`] (a loop busy
/// with something else) is kept for the next call, not lost.
pub struct Signals {
    #[cfg(unix)]
    interrupt: Option<tokio::sync::Mutex<tokio::signal::unix::Signal>>,
    #[cfg(unix)]
    terminate: Option<tokio::sync::Mutex<tokio::signal::unix::Signal>>,
}

impl Default for Signals {
    fn default() -> Self {
        Signals::new()
    }
}

impl Signals {
    /// Starts listening (call before the first signal may come).
    pub fn new() -> Signals {
        #[cfg(unix)]
        let listen = |kind| {
            tokio::signal::unix::signal(kind)
                .ok()
                .map(tokio::sync::Mutex::new)
        };
        Signals {
            #[cfg(unix)]
            interrupt: listen(tokio::signal::unix::SignalKind::interrupt()),
            #[cfg(unix)]
            terminate: listen(tokio::signal::unix::SignalKind::terminate()),
        }
    }

    /// Resolves at the next SIGINT or SIGTERM (one received since the last
    /// call included). Cancel-safe: dropping the future loses no signal.
    pub async fn next(&self) {
        #[cfg(unix)]
        {
            async fn one(signal: Option<&tokio::sync::Mutex<tokio::signal::unix::Signal>>) {
                match signal {
                    Some(signal) => {
                        if signal.lock().await.recv().await.is_none() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = one(self.interrupt.as_ref()) => {}
                () = one(self.terminate.as_ref()) => {}
            }
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::Signals;
    use std::time::Duration;

    fn raise(signal: libc::c_int) {
        // SAFETY: raising a signal this process listens to (Signals::new
        // installed tokio's handler for it) runs that handler, nothing else.
        #[allow(unsafe_code)]
        unsafe {
            libc::raise(signal);
        }
    }

    /// `up` awaits the next signal inside a loop that is often busy with
    /// something else; a SIGTERM or SIGINT arriving then must stop it at the
    /// next turn (CI once saw `up` ignore a SIGTERM that came between turns).
    #[tokio::test]
    async fn a_signal_that_comes_while_nobody_waits_is_kept_for_the_next_wait() {
        let signals = Signals::new();
        for signal in [libc::SIGTERM, libc::SIGINT] {
            raise(signal);
            // Let the runtime's signal driver see it with nobody waiting.
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(
                tokio::time::timeout(Duration::from_secs(10), signals.next())
                    .await
                    .is_ok(),
                "signal {signal} was lost"
            );
        }
    }
}
