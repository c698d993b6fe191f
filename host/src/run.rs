//! `amimono run`: loading the app, selecting the job, binding addresses,
//! preparing each entry component's graph and serving until told to stop.

use crate::app::App;
use crate::bindings_file::Bindings;
use crate::engine::{EngineUse, new_engine};
use crate::job::{compose_job, prepare_graph};
use crate::manifest::BindingType;
use crate::placement::Placement;
use crate::runtime_interface::{BindingFact, RuntimeFacts};
use crate::serve::http::{HttpComponent, serve};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use tokio::net::TcpListener;

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

/// Runs `placement` of `app` until SIGINT or SIGTERM.
pub async fn run(app: App, placement: Placement, bindings: Option<Bindings>) -> Result<()> {
    let mut graphs = compose_job(&app, &placement)?;

    // Listen first, so the runtime interface can report real URLs.
    let mut listeners = Vec::new();
    let mut served = BTreeMap::new();
    for label in &placement.members {
        let Some(component) = app.component(label) else {
            continue;
        };
        if component.spec.binding != BindingType::Http {
            continue;
        }
        let (address, external) = match &bindings {
            Some(bindings) => {
                let entry = bindings.require(&app, label)?;
                (entry.internal, Some(entry.external.clone()))
            }
            None => (std::net::SocketAddr::from(([127, 0, 0, 1], 0)), None),
        };
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("listening on {address} for component `{label}`"))?;
        let local = listener
            .local_addr()
            .context("reading the listener's address")?;
        let url = external.unwrap_or_else(|| format!("http://{local}"));
        served.insert(label.clone(), url);
        listeners.push((label.clone(), listener));
    }

    let facts = Arc::new(runtime_facts(
        &app,
        &placement.job,
        bindings.as_ref(),
        &served,
    ));
    let engine = new_engine(EngineUse::Serving)?;
    let mut servers = Vec::new();
    for (label, listener) in listeners {
        let started = std::time::Instant::now();
        let composed = graphs
            .remove(&label)
            .with_context(|| format!("no composed graph for `{label}`"))?;
        let graph = prepare_graph(&engine, &facts, &composed)?;
        tracing::info!(
            component = %label,
            members = ?graph.plan.members,
            ms = started.elapsed().as_millis() as u64,
            "graph ready"
        );
        let component = Arc::new(HttpComponent::new(&label, graph.pre)?);
        servers.push(tokio::spawn(serve(listener, component)));
    }

    {
        let mut out = std::io::stdout().lock();
        for (label, url) in &served {
            writeln!(out, "{label}: {url}").context("writing to stdout")?;
        }
        out.flush().context("writing to stdout")?;
    }
    tracing::info!(
        app = %app.name(),
        job = %placement.job,
        revision = %app.revision,
        components = ?placement.members,
        "job running"
    );

    shutdown_signal().await;
    tracing::info!(job = %placement.job, "stopping");
    for server in servers {
        server.abort();
    }
    Ok(())
}

async fn shutdown_signal() {
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
