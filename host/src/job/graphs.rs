//! The graphs of a job: per entry component, its plan composed into one
//! component (or taken from precompiled graphs, e.g. a bundle's), then
//! compiled and pre-instantiated against the job's linker.

use super::linker::{LinkContext, linker_for};
use crate::app::App;
use crate::artifact_cache;
use crate::capabilities::GraphGrants;
use crate::host_state::HostState;
use crate::link::rules::{check_splittable, shared_wasi_grants};
use crate::link::{GraphPlan, LinkErrors, compose, plan_graph};
use crate::observe::metrics::ComponentMetrics;
use crate::placement::Placement;
use crate::wasmtime_error::IntoAnyhow;
use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use wasmtime::Engine;
use wasmtime::component::{Component, InstancePre};

/// A graph composed and compiled ahead of time (by `amimono build`), read
/// only when a job uses it.
pub trait PrecompiledGraph: Send + Sync + std::fmt::Debug {
    /// The composition (for hosts whose engine must compile it again).
    fn composed(&self) -> Result<Arc<Vec<u8>>>;
    /// The composition compiled for the engine it was built with.
    fn precompiled(&self) -> Result<Arc<Vec<u8>>>;
}

/// Where a job finds graphs composed ahead of time: by placement key
/// ([`Placement::artifact_key`]) and entry label. A bundle is one.
pub trait GraphLookup: Send + Sync {
    /// The graph of `root` under placement `key`, if held.
    fn graph(&self, key: &str, root: &str) -> Option<Arc<dyn PrecompiledGraph>>;
}

/// The composed graph of one entry component.
#[derive(Debug, Clone)]
pub struct ComposedGraph {
    /// The plan it was built from.
    pub plan: GraphPlan,
    /// Where the composition comes from.
    source: GraphSource,
    /// The filesystem and socket grants of the graph's WASI.
    pub wasi: Arc<GraphGrants>,
}

/// A composition: made here, or composed and compiled ahead of time.
#[derive(Debug, Clone)]
enum GraphSource {
    Composed(Arc<Vec<u8>>),
    Precompiled(Arc<dyn PrecompiledGraph>),
}

impl ComposedGraph {
    /// The composition, one component.
    pub fn bytes(&self) -> Result<Arc<Vec<u8>>> {
        match &self.source {
            GraphSource::Composed(bytes) => Ok(bytes.clone()),
            GraphSource::Precompiled(graph) => graph.composed(),
        }
    }
}

/// Plans `root`'s graph and checks the rules that do not need composing.
fn checked_plan(
    app: &App,
    placement: &Placement,
    root: &str,
) -> Result<(GraphPlan, GraphGrants), LinkErrors> {
    let plan = plan_graph(app, placement, root)
        .and_then(|plan| check_splittable(app, &plan).map(|()| plan))
        .map_err(LinkErrors)?;
    let wasi = shared_wasi_grants(app, &plan).map_err(|e| LinkErrors(vec![e]))?;
    Ok((plan, wasi))
}

/// Plans and composes the graph of `root`.
pub fn compose_graph(
    app: &App,
    placement: &Placement,
    root: &str,
) -> Result<ComposedGraph, LinkErrors> {
    let (plan, wasi) = checked_plan(app, placement, root)?;
    let bytes = compose(app, &plan).map_err(|e| LinkErrors(vec![e]))?;
    Ok(ComposedGraph {
        plan,
        source: GraphSource::Composed(Arc::new(bytes)),
        wasi: Arc::new(wasi),
    })
}

/// Plans the graph of `root`; when `precompiled` holds the graph for this
/// placement, uses it instead of composing.
pub fn plan_or_compose(
    app: &App,
    placement: &Placement,
    root: &str,
    precompiled: Option<&dyn GraphLookup>,
) -> Result<ComposedGraph, LinkErrors> {
    let Some(graph) = precompiled.and_then(|p| p.graph(&placement.artifact_key(), root)) else {
        return compose_graph(app, placement, root);
    };
    let (plan, wasi) = checked_plan(app, placement, root)?;
    Ok(ComposedGraph {
        plan,
        source: GraphSource::Precompiled(graph),
        wasi: Arc::new(wasi),
    })
}

/// Plans and composes the graph of every component of `placement` (without
/// compiling), so that every link problem, WIT mismatches included, surfaces
/// at start, not at the first request; all of them are reported together.
pub fn compose_job(
    app: &App,
    placement: &Placement,
    precompiled: Option<&dyn GraphLookup>,
) -> Result<BTreeMap<String, ComposedGraph>, LinkErrors> {
    let mut seen = BTreeSet::new();
    let mut errors = Vec::new();
    let mut graphs = BTreeMap::new();
    for label in &placement.members {
        match plan_or_compose(app, placement, label, precompiled) {
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
    /// The filesystem and socket grants of the graph's WASI.
    pub wasi: Arc<GraphGrants>,
    /// Where its instances are counted (resolved once, not per instance).
    pub metrics: ComponentMetrics,
}

/// Compiles (or loads the precompiled form, or the cache's) and
/// pre-instantiates a composed graph.
pub fn prepare_graph(
    engine: &Engine,
    app: &App,
    context: &LinkContext,
    graph: &ComposedGraph,
) -> Result<PreparedGraph> {
    let root = &graph.plan.root;
    let what = format!("the graph of `{root}`");
    let precompiled = match &graph.source {
        GraphSource::Precompiled(artifact) => {
            artifact_cache::load_precompiled(engine, &artifact.precompiled()?, &what)
        }
        GraphSource::Composed(_) => None,
    };
    let component = match precompiled {
        Some(component) => component,
        None => artifact_cache::compile(engine, &graph.bytes()?, &what)?,
    };
    let linker = linker_for(engine, app, &component, &graph.plan, context)?;
    let pre = linker
        .instantiate_pre(&component)
        .anyhow()
        .with_context(|| format!("resolving the imports of the graph of `{root}`"))?;
    Ok(PreparedGraph {
        root: root.clone(),
        plan: graph.plan.clone(),
        component,
        pre,
        wasi: graph.wasi.clone(),
        metrics: context.metrics.component(root),
    })
}
