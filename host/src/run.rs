//! `amimono run`: loading the app, selecting the job, binding addresses,
//! preparing each entry component's graph and serving until told to stop.
//! On SIGTERM or SIGINT the job drains: it stops accepting, lets requests and
//! calls in flight finish within the shutdown grace period, and exits 0; a
//! second signal, or the end of the grace period, stops it at once with a
//! non-zero status.

use crate::app::App;
use crate::bindings_file::Bindings;
use crate::bundle::Bundle;
use crate::capabilities::CapabilityContext;
use crate::capabilities::config::SecretSource;
use crate::capabilities::runtime::{BindingFact, RuntimeFacts};
use crate::host_state::StoreSettings;
use crate::job::{ComposedGraph, LinkContext, compose_job, prepare_graph};
use crate::link::Route;
use crate::manifest::BindingType;
use crate::placement::LOCAL_JOB;
use crate::placement::Placement;
use crate::remote::auth::{Authentication, ClusterKey, KeyError};
use crate::remote::client::{RemoteClient, RemoteTarget};
use crate::serve::budget::MemoryBudget;
use crate::serve::drain::Drain;
use crate::serve::http::HttpComponent;
use crate::serve::rpc::{RpcComponent, RpcServer};
use crate::serve::threads::ServingThreads;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Exit status when the grace period ends, or a second signal comes, with
/// requests still in flight.
pub const EXIT_UNDRAINED: i32 = 3;

/// The runtime facts of `placement`, with the URLs known to this process:
/// from the bindings file, or the ones this process serves.
pub fn runtime_facts(
    app: &App,
    job: &str,
    bindings: Option<&Bindings>,
    served: &BTreeMap<String, String>,
) -> RuntimeFacts {
    let bindings_map = app
        .components
        .iter()
        .map(|(label, component)| {
            let url = served.get(label).cloned().or_else(|| {
                bindings.and_then(|b| b.components.get(label).map(|a| a.external.clone()))
            });
            let fact = BindingFact {
                kind: component.spec.binding.into(),
                job: component.spec.job.clone(),
                url,
            };
            (label.clone(), fact)
        })
        .collect();
    RuntimeFacts {
        app: app.name().to_string(),
        job: job.to_string(),
        revision: app.revision.clone(),
        bindings: bindings_map,
    }
}

/// How calls between jobs are authenticated in a process that serves or
/// makes them (`needed`): the environment's key, or (for `_local` with calls
/// forced over HTTP, where the process only calls itself) a key of its own.
fn authentication(placement: &Placement, needed: bool) -> Result<Authentication> {
    match Authentication::from_environment()? {
        Some(Authentication::Disabled) => {
            if needed {
                tracing::warn!(
                    "AUTHENTICATION OF CALLS BETWEEN JOBS IS OFF ({}=1): anyone who can reach this job's rpc port can call its components; for local debugging only",
                    crate::remote::auth::INSECURE_ENV
                );
            }
            Ok(Authentication::Disabled)
        }
        Some(key) => Ok(key),
        None if placement.job == LOCAL_JOB => {
            let key = ClusterKey::generate().context("making a cluster key")?;
            let key = ClusterKey::from_bytes(key.as_bytes()).context("making a cluster key")?;
            Ok(Authentication::Key(key))
        }
        None if needed => Err(KeyError::Missing.into()),
        // Nothing is called across jobs: nothing to sign or check.
        None => Ok(Authentication::Disabled),
    }
}

/// The job's memory budget: the manifest's `memory_budget_mib`, or a share
/// of what the process may use; refused when it cannot fit the machine or
/// one instance or body cannot fit it.
fn memory_budget(app: &App, placement: &Placement) -> Result<Arc<MemoryBudget>> {
    use crate::serve::budget::{available_memory, default_budget};
    let limits = app.manifest.limits;
    let available = available_memory();
    let budget = match (limits.memory_budget_bytes, available) {
        (Some(budget), Some(available)) if budget > available => anyhow::bail!(
            "[limits] memory_budget_mib = {} does not fit this machine: the process may use {} MiB (cgroup limit or MemTotal); lower memory_budget_mib",
            budget >> 20,
            available >> 20
        ),
        (Some(budget), _) => budget,
        (None, Some(available)) => default_budget(available),
        (None, None) => u64::MAX,
    };
    let mut problems = Vec::new();
    for label in &placement.members {
        let Some(component) = app.component(label) else {
            continue;
        };
        let component_limits = component.spec.limits;
        if component_limits.memory_bytes as u64 > budget {
            problems.push(format!(
                "component `{label}`: memory_mib = {} is more than the job's memory budget of {} MiB",
                component_limits.memory_bytes >> 20,
                budget >> 20
            ));
        }
        if component_limits.max_body_bytes > budget {
            problems.push(format!(
                "component `{label}`: max_body_bytes = {} is more than the job's memory budget of {} MiB",
                component_limits.max_body_bytes,
                budget >> 20
            ));
        }
    }
    if !problems.is_empty() {
        anyhow::bail!(
            "the limits cannot fit the job's memory budget: {}; raise [limits] memory_budget_mib or lower those limits",
            problems.join("; ")
        );
    }
    tracing::debug!(budget_mib = budget >> 20, "memory budget");
    Ok(MemoryBudget::new(budget))
}

/// Runs `placement` of `app` on `engine` (built for serving) until SIGINT or
/// SIGTERM, then drains; the exit status.
pub async fn run(
    engine: wasmtime::Engine,
    app: &App,
    placement: Placement,
    bindings: Option<Bindings>,
    bundle: Option<&Bundle>,
    data_dir: &std::path::Path,
) -> Result<i32> {
    if let Some(bindings) = &bindings {
        bindings.check_revision(&app.revision)?;
        bindings.check_addresses(app, &placement)?;
    }
    // Listening for signals from the start: a SIGTERM while starting drains too.
    let signals = Signals::new();
    let budget = memory_budget(app, &placement)?;
    let since_start = || crate::uptime::since_start().as_secs_f64() * 1e3;
    tracing::debug!(ms = since_start(), "app loaded");
    let mut graphs = compose_job(app, &placement, bundle)?;
    tracing::debug!(ms = since_start(), "graphs planned");
    let members_with = |binding: BindingType| -> Vec<String> {
        placement
            .members
            .iter()
            .filter(|label| {
                app.component(label)
                    .is_some_and(|c| c.spec.binding == binding)
            })
            .cloned()
            .collect()
    };

    // Listen first, so the runtime interface can report real URLs.
    let mut served = BTreeMap::new();
    let mut http_listeners = Vec::new();
    for label in members_with(BindingType::Http) {
        let (address, external) = address_of(app, bindings.as_ref(), &label)?;
        let listener = listen(address, &label).await?;
        served.insert(label.clone(), external.unwrap_or(local_url(&listener)?));
        http_listeners.push((label, listener));
    }
    // Other jobs reach this job's rpc components; components sharing an
    // address share a listener. Under `_local` nothing calls them remotely
    // unless calls are forced over HTTP.
    let mut rpc_groups: BTreeMap<SocketAddr, Vec<(String, Option<String>)>> = BTreeMap::new();
    if placement.job != LOCAL_JOB || placement.force_remote {
        for label in members_with(BindingType::Rpc) {
            let (address, external) = address_of(app, bindings.as_ref(), &label)?;
            rpc_groups
                .entry(address)
                .or_default()
                .push((label, external));
        }
    }
    let mut rpc_listeners = Vec::new();
    for (address, members) in rpc_groups {
        let labels: Vec<String> = members.iter().map(|(label, _)| label.clone()).collect();
        let listener = listen(address, &labels.join(", ")).await?;
        let local = local_url(&listener)?;
        for (label, external) in members {
            served.insert(label, external.unwrap_or_else(|| local.clone()));
        }
        tracing::info!(components = ?labels, address = %local, "serving calls from other jobs");
        rpc_listeners.push((labels, listener));
    }

    let served_rpc = crate::link::router::served_to_other_jobs(app, &placement);
    let authentication = authentication(
        &placement,
        !rpc_listeners.is_empty()
            || graphs.values().any(|g| {
                g.plan
                    .wires
                    .iter()
                    .any(|w| matches!(w.route, Route::Remote { .. }))
            }),
    )?;
    let facts = Arc::new(runtime_facts(
        app,
        &placement.job,
        bindings.as_ref(),
        &served,
    ));
    let targets = remote_targets(app, &graphs, bindings.as_ref(), &served)?;
    let keyvalue =
        crate::capabilities::keyvalue::open_for(app, &placement.members, data_dir).await?;
    let capabilities = CapabilityContext::new(
        app,
        facts,
        &placement.members,
        &SecretSource::from_environment()?,
        keyvalue,
    )?;
    let context = LinkContext {
        client: Arc::new(RemoteClient::new(
            &app.revision,
            &placement.job,
            authentication.clone(),
        )),
        capabilities: Arc::new(capabilities),
        targets,
    };
    tracing::debug!(ms = since_start(), "capabilities ready");
    let mut prepare = |label: &str| -> Result<crate::job::PreparedGraph> {
        let started = std::time::Instant::now();
        let composed = graphs
            .remove(label)
            .with_context(|| format!("no composed graph for `{label}`"))?;
        let graph = prepare_graph(&engine, app, &context, &composed)?;
        tracing::info!(
            component = %label,
            members = ?graph.plan.members,
            ms = started.elapsed().as_millis() as u64,
            "graph ready"
        );
        Ok(graph)
    };
    let drain = Drain::new();
    let threads = Arc::new(ServingThreads::per_core()?);
    let mut servers = Vec::new();
    let mut workers = Vec::new();
    for (label, listener) in http_listeners {
        let graph = prepare(&label)?;
        let settings = settings_of(app, &label, &graph, &budget);
        let component = Arc::new(HttpComponent::new(
            &label,
            graph.pre,
            settings,
            drain.clone(),
        )?);
        servers.push(tokio::spawn(crate::serve::http::serve(
            listener,
            component,
            threads.clone(),
        )));
    }
    for (labels, listener) in rpc_listeners {
        let mut components = Vec::new();
        for label in &labels {
            // A component no other job imports serves nothing: it gets no
            // instances here (its listener answers 404 for it).
            let Some(callable) = served_rpc.get(label) else {
                continue;
            };
            let graph = prepare(label)?;
            let exports = app
                .component(label)
                .map(|c| c.world.exports.clone())
                .unwrap_or_default();
            let settings = settings_of(app, label, &graph, &budget);
            let call_timeout = app
                .component(label)
                .and_then(|c| c.spec.call_timeout)
                .unwrap_or(app.manifest.call_timeout);
            components.push(RpcComponent::new(
                label,
                &graph.component,
                graph.pre,
                &exports,
                callable,
                call_timeout,
                settings,
            )?);
        }
        let server = Arc::new(RpcServer::new(
            &app.revision,
            components,
            app.manifest.limits,
            authentication.clone(),
            drain.clone(),
        ));
        servers.push(tokio::spawn(crate::serve::rpc::serve(
            listener,
            server,
            threads.clone(),
        )));
    }

    for label in members_with(BindingType::None) {
        let Some(component) = app.component(&label) else {
            continue;
        };
        let Some(run_export) = crate::serve::worker::run_export(&component.world.exports) else {
            continue;
        };
        let graph = prepare(&label)?;
        let settings = settings_of(app, &label, &graph, &budget);
        workers.push(tokio::spawn(crate::serve::worker::supervise(
            label.clone(),
            graph.component,
            graph.pre,
            run_export,
            settings,
        )));
    }

    {
        let mut out = std::io::stdout().lock();
        for label in members_with(BindingType::Http) {
            if let Some(url) = served.get(&label) {
                writeln!(out, "{label}: {url}").context("writing to stdout")?;
            }
        }
        out.flush().context("writing to stdout")?;
    }
    tracing::info!(
        app = %app.name(),
        job = %placement.job,
        revision = %app.revision,
        components = ?placement.members,
        force_remote = placement.force_remote,
        ready_ms = since_start(),
        "job running"
    );

    signals.next().await;
    let grace = shutdown_grace(app);
    tracing::info!(job = %placement.job, in_flight = drain.in_flight(), grace_ms = grace.as_millis() as u64, "draining: no new connections; requests in flight finish");
    for worker in &workers {
        worker.abort();
    }
    drain.begin();
    // The listeners close as the accept loops end.
    let drained = tokio::select! {
        () = drain.finished() => true,
        () = tokio::time::sleep(grace) => false,
        () = signals.next() => false,
    };
    for server in servers {
        server.abort();
    }
    if drained {
        tracing::info!(job = %placement.job, "stopped: every request in flight finished");
        Ok(0)
    } else {
        tracing::warn!(job = %placement.job, in_flight = drain.in_flight(), "stopped before every request in flight finished (grace period over, or a second signal)");
        Ok(EXIT_UNDRAINED)
    }
}

/// Environment variable overriding `[limits] shutdown_grace_ms`.
pub const SHUTDOWN_GRACE_ENV: &str = "AMIMONO_SHUTDOWN_GRACE_MS";

/// The drain time after SIGTERM: `AMIMONO_SHUTDOWN_GRACE_MS`, else the
/// manifest's `shutdown_grace_ms`.
fn shutdown_grace(app: &App) -> std::time::Duration {
    std::env::var(SHUTDOWN_GRACE_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(
            app.manifest.limits.shutdown_grace,
            std::time::Duration::from_millis,
        )
}

/// The store settings of the graph of entry `label`: its limits, its
/// graph's WASI grants and the job's memory budget.
fn settings_of(
    app: &App,
    label: &str,
    graph: &crate::job::PreparedGraph,
    budget: &Arc<MemoryBudget>,
) -> StoreSettings {
    StoreSettings {
        limits: app
            .component(label)
            .map_or(app.manifest.limits, |c| c.spec.limits),
        wasi: graph.wasi.clone(),
        budget: budget.clone(),
    }
}

/// Where component `label` listens, and its external URL: from the bindings
/// file, or any free loopback port (the URL is then the listener's).
fn address_of(
    app: &App,
    bindings: Option<&Bindings>,
    label: &str,
) -> Result<(SocketAddr, Option<String>)> {
    match bindings {
        Some(bindings) => {
            let entry = bindings.require(app, label)?;
            Ok((entry.internal, Some(entry.external.clone())))
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

/// Where each remote exporter of the job's graphs is reached: its
/// bindings-file `external` URL, or this process's own listener (calls forced
/// over HTTP). A remote exporter without an address is an error naming it.
fn remote_targets(
    app: &App,
    graphs: &BTreeMap<String, ComposedGraph>,
    bindings: Option<&Bindings>,
    served: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Arc<RemoteTarget>>> {
    let mut targets = BTreeMap::new();
    let mut missing = Vec::new();
    for wire in graphs.values().flat_map(|g| g.plan.wires.iter()) {
        let Route::Remote { exporter, job, .. } = &wire.route else {
            continue;
        };
        if targets.contains_key(exporter) {
            continue;
        }
        let url = bindings
            .and_then(|b| b.components.get(exporter).map(|a| a.external.clone()))
            .or_else(|| served.get(exporter).cloned());
        let Some(url) = url else {
            let line = format!(
                "`{exporter}` (job `{job}`), imported by `{}`",
                wire.importer
            );
            if !missing.contains(&line) {
                missing.push(line);
            }
            continue;
        };
        let timeout = app
            .component(exporter)
            .and_then(|c| c.spec.call_timeout)
            .unwrap_or(app.manifest.call_timeout);
        let target = RemoteTarget::new(exporter, &url, timeout).map_err(anyhow::Error::msg)?;
        targets.insert(exporter.clone(), Arc::new(target));
    }
    if !missing.is_empty() {
        anyhow::bail!(
            "no address is known for components that run in other jobs: {}; set AMIMONO_BINDINGS to a bindings file with their entries (`amimono bindings <app>` writes one)",
            missing.join("; ")
        );
    }
    Ok(targets)
}

/// SIGINT and SIGTERM, as a stream: the first one starts draining, the
/// second one stops at once.
pub struct Signals {
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
        Signals {
            #[cfg(unix)]
            terminate: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .ok()
                .map(tokio::sync::Mutex::new),
        }
    }

    /// Resolves at the next SIGINT or SIGTERM.
    pub async fn next(&self) {
        let ctrl_c = async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        let terminate = async {
            match &self.terminate {
                Some(signal) => {
                    signal.lock().await.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            () = ctrl_c => {}
            () = terminate => {}
        }
    }
}

/// Resolves at the first SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
