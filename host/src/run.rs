//! `amimono run`: loading the app, selecting the job, binding addresses,
//! preparing each entry component's graph and serving until told to stop.

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
use crate::remote::client::{RemoteClient, RemoteTarget};
use crate::serve::http::HttpComponent;
use crate::serve::rpc::{RpcComponent, RpcServer};
use crate::serve::threads::ServingThreads;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

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

/// Runs `placement` of `app` on `engine` (built for serving) until SIGINT or SIGTERM.
pub async fn run(
    engine: wasmtime::Engine,
    app: &App,
    placement: Placement,
    bindings: Option<Bindings>,
    bundle: Option<&Bundle>,
    data_dir: &std::path::Path,
) -> Result<()> {
    if let Some(bindings) = &bindings {
        bindings.check_revision(&app.revision)?;
    }
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
        client: Arc::new(RemoteClient::new(&app.revision, &placement.job)),
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
    let gate = Arc::new(Semaphore::new(app.manifest.limits.max_instances));
    let threads = Arc::new(ServingThreads::per_core()?);
    let mut servers = Vec::new();
    for (label, listener) in http_listeners {
        let graph = prepare(&label)?;
        let settings = settings_of(app, &label, &graph);
        let component = Arc::new(HttpComponent::new(
            &label,
            graph.pre,
            settings,
            gate.clone(),
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
            let graph = prepare(label)?;
            let exports = app
                .component(label)
                .map(|c| c.world.exports.clone())
                .unwrap_or_default();
            let settings = settings_of(app, label, &graph);
            components.push(RpcComponent::new(
                label,
                &graph.component,
                graph.pre,
                &exports,
                settings,
                gate.clone(),
            )?);
        }
        let server = Arc::new(RpcServer::new(
            &app.revision,
            components,
            app.manifest.limits,
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
        let settings = settings_of(app, &label, &graph);
        servers.push(tokio::spawn(crate::serve::worker::supervise(
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

    shutdown_signal().await;
    tracing::info!(job = %placement.job, "stopping");
    for server in servers {
        server.abort();
    }
    Ok(())
}

/// The store settings of the graph of entry `label`: its limits and its
/// graph's WASI grants.
fn settings_of(app: &App, label: &str, graph: &crate::job::PreparedGraph) -> StoreSettings {
    StoreSettings {
        limits: app
            .component(label)
            .map_or(app.manifest.limits, |c| c.spec.limits),
        wasi: graph.wasi.clone(),
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
