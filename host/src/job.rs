//! Preparing a job: checking that every component of the placement links,
//! then, per entry component, composing its graph, compiling it (or loading it
//! from the cache) and pre-instantiating it against a linker that provides
//! WASI, WASI-HTTP and the runtime interface.

use crate::app::App;
use crate::artifact_cache;
use crate::host_state::HostState;
use crate::link::compose::runtime_import_name;
use crate::link::{GraphPlan, HostInterface, LinkError, Route, compose, plan_graph};
use crate::placement::Placement;
use crate::runtime_interface::{self, RuntimeFacts};
use crate::wasmtime_error::IntoAnyhow;
use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use wasmtime::Engine;
use wasmtime::component::{Component, InstancePre, Linker};

/// Every link problem of a job, reported together.
#[derive(Debug, Clone, thiserror::Error)]
pub struct LinkErrors(pub Vec<LinkError>);

impl fmt::Display for LinkErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} link problems:", many.len())?;
                for e in many {
                    write!(f, "\n  - {e}")?;
                }
                Ok(())
            }
        }
    }
}

/// The composed graph of one entry component.
#[derive(Debug, Clone)]
pub struct ComposedGraph {
    /// The plan it was built from.
    pub plan: GraphPlan,
    /// The composition, one component.
    pub bytes: Vec<u8>,
}

/// Plans and composes the graph of `root`.
pub fn compose_graph(
    app: &App,
    placement: &Placement,
    root: &str,
) -> Result<ComposedGraph, LinkErrors> {
    let plan = plan_graph(app, placement, root)
        .and_then(|plan| reject_remote(app, placement, &plan).map(|()| plan))
        .map_err(LinkErrors)?;
    let bytes = compose(app, &plan).map_err(|e| LinkErrors(vec![e]))?;
    Ok(ComposedGraph { plan, bytes })
}

/// Plans and composes the graph of every component of `placement` (without
/// compiling), so that every link problem, WIT mismatches included, surfaces
/// at start, not at the first request; all of them are reported together.
pub fn compose_job(
    app: &App,
    placement: &Placement,
) -> Result<BTreeMap<String, ComposedGraph>, LinkErrors> {
    let mut seen = BTreeSet::new();
    let mut errors = Vec::new();
    let mut graphs = BTreeMap::new();
    for label in &placement.members {
        match compose_graph(app, placement, label) {
            Ok(graph) => {
                graphs.insert(label.clone(), graph);
            }
            Err(LinkErrors(found)) => {
                for e in found {
                    if seen.insert(e.to_string()) {
                        errors.push(e);
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(graphs)
    } else {
        Err(LinkErrors(errors))
    }
}

/// Calls between jobs are not served yet: a remote route is an error.
fn reject_remote(app: &App, placement: &Placement, plan: &GraphPlan) -> Result<(), Vec<LinkError>> {
    let errors: Vec<LinkError> = plan
        .wires
        .iter()
        .filter_map(|wire| match &wire.route {
            Route::Remote { exporter, job, .. } => Some(LinkError::CrossJob {
                component: wire.importer.clone(),
                job: app
                    .component(&wire.importer)
                    .map(|c| c.spec.job.clone())
                    .unwrap_or_else(|| placement.job.clone()),
                import: wire.import.clone(),
                exporter: exporter.clone(),
                exporter_job: job.clone(),
            }),
            _ => None,
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The graph of one entry component, compiled and pre-instantiated.
pub struct PreparedGraph {
    /// The entry component.
    pub root: String,
    /// The plan it was built from.
    pub plan: GraphPlan,
    /// The compiled composition.
    pub component: Component,
    /// Pre-instantiated: imports resolved, ready to instantiate per request.
    pub pre: InstancePre<HostState>,
}

/// Compiles (or loads from the cache) and pre-instantiates a composed graph.
pub fn prepare_graph(
    engine: &Engine,
    facts: &Arc<RuntimeFacts>,
    graph: &ComposedGraph,
) -> Result<PreparedGraph> {
    let root = &graph.plan.root;
    let component =
        artifact_cache::compile(engine, &graph.bytes, &format!("the graph of `{root}`"))?;
    let linker = linker_for(engine, &graph.plan, facts)?;
    let pre = linker
        .instantiate_pre(&component)
        .anyhow()
        .with_context(|| format!("resolving the imports of the graph of `{root}`"))?;
    Ok(PreparedGraph {
        root: root.clone(),
        plan: graph.plan.clone(),
        component,
        pre,
    })
}

/// A linker with WASI, WASI-HTTP, and the runtime interface of each member
/// that imports it.
fn linker_for(
    engine: &Engine,
    plan: &GraphPlan,
    facts: &Arc<RuntimeFacts>,
) -> Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)
        .anyhow()
        .context("adding WASI to the linker")?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
        .anyhow()
        .context("adding WASI-HTTP to the linker")?;
    for wire in &plan.wires {
        if wire.route == Route::Host(HostInterface::Runtime) {
            runtime_interface::add_to_linker(
                &mut linker,
                &runtime_import_name(&wire.importer),
                &wire.importer,
                facts,
            )?;
        }
    }
    Ok(linker)
}
