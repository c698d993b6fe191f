//! Preparing a job: checking that every component of the placement links,
//! then, per entry component, composing its graph, compiling it (or loading it
//! from the cache) and pre-instantiating it against a linker that provides
//! WASI, WASI-HTTP, the runtime interface and a remote stub per remote import.

use crate::app::App;
use crate::artifact_cache;
use crate::bundle::{Bundle, GraphArtifact};
use crate::capabilities::{self, CapabilityContext, member_import_name};
use crate::host_state::{HostState, WasiGrants};
use crate::link::{GraphPlan, HostInterface, LinkError, Route, SplitRefusal, compose, plan_graph};
use crate::placement::Placement;
use crate::remote::client::{RemoteClient, RemoteTarget};
use crate::remote::stub::{self, RemoteImport};
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
    /// Where the composition comes from.
    source: GraphSource,
    /// The filesystem and socket grants of the graph's WASI.
    pub wasi: Arc<WasiGrants>,
}

/// A composition: made here, or composed and compiled by `amimono build`
/// (read from the bundle only when prepared).
#[derive(Debug, Clone)]
enum GraphSource {
    Composed(Arc<Vec<u8>>),
    Bundled(GraphArtifact),
}

impl ComposedGraph {
    /// The composition, one component.
    pub fn bytes(&self) -> Result<Arc<Vec<u8>>> {
        match &self.source {
            GraphSource::Composed(bytes) => Ok(bytes.clone()),
            GraphSource::Bundled(artifact) => artifact.composed(),
        }
    }
}

/// Plans and composes the graph of `root`.
pub fn compose_graph(
    app: &App,
    placement: &Placement,
    root: &str,
) -> Result<ComposedGraph, LinkErrors> {
    let plan = plan_graph(app, placement, root)
        .and_then(|plan| check_splittable(app, &plan).map(|()| plan))
        .map_err(LinkErrors)?;
    let wasi = shared_wasi_grants(app, &plan).map_err(|e| LinkErrors(vec![e]))?;
    let bytes = compose(app, &plan).map_err(|e| LinkErrors(vec![e]))?;
    Ok(ComposedGraph {
        plan,
        source: GraphSource::Composed(Arc::new(bytes)),
        wasi: Arc::new(wasi),
    })
}

/// Plans the graph of `root`; when `bundle` holds the composed and
/// precompiled graph for this placement, uses it instead of composing.
pub fn plan_or_compose(
    app: &App,
    placement: &Placement,
    root: &str,
    bundle: Option<&Bundle>,
) -> Result<ComposedGraph, LinkErrors> {
    let artifact = bundle.and_then(|b| b.graph(&placement.artifact_key(), root));
    let Some(artifact) = artifact else {
        return compose_graph(app, placement, root);
    };
    let plan = plan_graph(app, placement, root)
        .and_then(|plan| check_splittable(app, &plan).map(|()| plan))
        .map_err(LinkErrors)?;
    let wasi = shared_wasi_grants(app, &plan).map_err(|e| LinkErrors(vec![e]))?;
    Ok(ComposedGraph {
        plan,
        source: GraphSource::Bundled(artifact),
        wasi: Arc::new(wasi),
    })
}

/// Plans and composes the graph of every component of `placement` (without
/// compiling), so that every link problem, WIT mismatches included, surfaces
/// at start, not at the first request; all of them are reported together.
pub fn compose_job(
    app: &App,
    placement: &Placement,
    bundle: Option<&Bundle>,
) -> Result<BTreeMap<String, ComposedGraph>, LinkErrors> {
    let mut seen = BTreeSet::new();
    let mut errors = Vec::new();
    let mut graphs = BTreeMap::new();
    for label in &placement.members {
        match plan_or_compose(app, placement, label, bundle) {
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

/// The members of a graph share one WASI filesystem and one set of sockets:
/// every member that imports `wasi:filesystem` must be granted the same
/// `files`, every member that imports `wasi:sockets` the same `sockets`, so
/// no member gets access it was not granted. The graph's grants.
fn shared_wasi_grants(app: &App, plan: &GraphPlan) -> Result<WasiGrants, LinkError> {
    let importers = |package: &str| -> Vec<&crate::app::LoadedComponent> {
        plan.members
            .iter()
            .filter_map(|label| app.component(label))
            .filter(|c| c.world.imports.iter().any(|i| i.name.starts_with(package)))
            .collect()
    };
    let mut grants = WasiGrants::default();
    let files = importers("wasi:filesystem/");
    if let Some(first) = files.first() {
        if let Some(other) = files.iter().find(|c| c.spec.files != first.spec.files) {
            return Err(LinkError::UnsharedGrant {
                interface: "wasi:filesystem",
                key: "files",
                first: first.spec.label.clone(),
                second: other.spec.label.clone(),
                root: plan.root.clone(),
            });
        }
        grants.files = first.spec.files.clone();
    }
    let sockets = importers("wasi:sockets/");
    if let Some(first) = sockets.first() {
        if let Some(other) = sockets
            .iter()
            .find(|c| c.spec.sockets != first.spec.sockets)
        {
            return Err(LinkError::UnsharedGrant {
                interface: "wasi:sockets",
                key: "sockets",
                first: first.spec.label.clone(),
                second: other.spec.label.clone(),
                root: plan.root.clone(),
            });
        }
        grants.sockets = first.spec.sockets.clone();
    }
    Ok(grants)
}

/// An interface whose functions take or return resources, streams or
/// futures cannot be split across jobs: report each remote wire that needs one.
fn check_splittable(app: &App, plan: &GraphPlan) -> Result<(), Vec<LinkError>> {
    let mut errors = Vec::new();
    for wire in &plan.wires {
        let Route::Remote { exporter, job, .. } = &wire.route else {
            continue;
        };
        let Some(importer) = app.component(&wire.importer) else {
            continue;
        };
        let shape = importer
            .world
            .imports
            .iter()
            .find(|i| i.name == wire.import);
        if let Some((function, reason)) = shape.and_then(|s| s.local_only.first()) {
            errors.push(LinkError::NotSplittable(Box::new(SplitRefusal {
                component: wire.importer.clone(),
                job: importer.spec.job.clone(),
                import: wire.import.clone(),
                function: function.clone(),
                reason: reason.clone(),
                exporter: exporter.clone(),
                exporter_job: job.clone(),
            })));
        }
    }
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
    /// The filesystem and socket grants of the graph's WASI.
    pub wasi: Arc<WasiGrants>,
}

/// What linking a graph needs besides the graph: what each component is
/// granted, and where remote imports go.
#[derive(Clone)]
pub struct LinkContext {
    /// Runtime facts and per-component grants.
    pub capabilities: Arc<CapabilityContext>,
    /// Sends remote calls.
    pub client: Arc<RemoteClient>,
    /// Where each remote exporter is reached, by label.
    pub targets: BTreeMap<String, Arc<RemoteTarget>>,
}

impl LinkContext {
    /// A context for graphs without remote imports.
    pub fn local(capabilities: Arc<CapabilityContext>) -> LinkContext {
        let client = Arc::new(RemoteClient::new(
            &capabilities.facts.revision,
            &capabilities.facts.job,
            crate::remote::auth::Authentication::Disabled,
        ));
        LinkContext {
            capabilities,
            client,
            targets: BTreeMap::new(),
        }
    }
}

/// Compiles (or loads from the cache) and pre-instantiates a composed graph.
pub fn prepare_graph(
    engine: &Engine,
    app: &App,
    context: &LinkContext,
    graph: &ComposedGraph,
) -> Result<PreparedGraph> {
    let root = &graph.plan.root;
    let what = format!("the graph of `{root}`");
    let precompiled = match &graph.source {
        GraphSource::Bundled(artifact) => {
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
    })
}

/// A linker with WASI, WASI-HTTP, the runtime interface of each member that
/// imports it, and a remote stub for each remote import.
fn linker_for(
    engine: &Engine,
    app: &App,
    component: &Component,
    plan: &GraphPlan,
    context: &LinkContext,
) -> Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)
        .anyhow()
        .context("adding WASI to the linker")?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
        .anyhow()
        .context("adding WASI-HTTP to the linker")?;
    let mut remote_imports = BTreeSet::new();
    for wire in &plan.wires {
        match &wire.route {
            Route::Host(HostInterface::Member(capability)) => {
                capabilities::add_to_linker(
                    &mut linker,
                    *capability,
                    &member_import_name(&wire.importer, *capability),
                    &wire.importer,
                    &context.capabilities,
                )?;
            }
            Route::Remote {
                exporter, export, ..
            } => {
                if !remote_imports.insert(wire.import.as_str()) {
                    continue;
                }
                let target = context.targets.get(exporter).with_context(|| {
                    format!(
                        "component `{}` imports `{}` from `{exporter}`, which runs in another job, but no address is known for `{exporter}`: set AMIMONO_BINDINGS to a bindings file with an entry for it (`amimono bindings` writes one)",
                        wire.importer, wire.import
                    )
                })?;
                let idempotent = app
                    .component(exporter)
                    .map(|c| c.spec.idempotent.as_slice())
                    .unwrap_or_default();
                stub::define(
                    &mut linker,
                    engine,
                    component,
                    &RemoteImport {
                        import: &wire.import,
                        export,
                        target: target.clone(),
                        idempotent,
                    },
                    &context.client,
                )?;
            }
            _ => {}
        }
    }
    Ok(linker)
}
