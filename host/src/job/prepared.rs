//! [`Job`]: a prepared job. It hands out what serves its components — a
//! tower service per HTTP component, one for calls from other jobs — calls
//! its components from native code ([`super::native`]) and runs all of it on
//! listeners ([`super::serving`]). Graphs are compiled once and shared.

use super::graphs::{ComposedGraph, PreparedGraph, compose_graph, prepare_graph};
use super::linker::LinkContext;
use crate::app::App;
use crate::host_state::{HostState, StoreSettings, new_store};
use crate::manifest::BindingType;
use crate::observe::metrics::Metrics;
use crate::observe::tapped::{TappedGraph, Taps};
use crate::placement::Placement;
use crate::remote::auth::Authentication;
use crate::serve::admin::Readiness;
use crate::serve::budget::MemoryBudget;
use crate::serve::drain::Drain;
use crate::serve::http::HttpComponent;
use crate::serve::rpc::{RpcComponent, RpcServer};
use crate::serve::service::{HttpService, RpcService};
use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;
use wasmtime::Store;
use wasmtime::component::InstancePre;

/// A prepared job of an app: its graphs composed, compiled and
/// pre-instantiated, its capability backends open. Cheap to clone (shared).
#[derive(Clone)]
pub struct Job {
    pub(super) inner: Arc<Inner>,
}

/// What [`super::JobBuilder::prepare`] hands over.
pub(super) struct JobParts {
    pub app: Arc<App>,
    pub placement: Placement,
    pub engine: wasmtime::Engine,
    pub context: LinkContext,
    pub budget: Arc<MemoryBudget>,
    pub metrics: Arc<Metrics>,
    pub authentication: Authentication,
    pub composed: BTreeMap<String, ComposedGraph>,
    /// Exports other jobs call, by rpc component served here.
    pub served_rpc: BTreeMap<String, BTreeSet<String>>,
    pub grace: Duration,
}

pub(super) struct Inner {
    pub parts: JobParts,
    pub drain: Drain,
    pub readiness: Arc<Readiness>,
    prepared: Mutex<BTreeMap<String, Arc<PreparedGraph>>>,
    http: Mutex<BTreeMap<String, Arc<HttpComponent>>>,
    rpc: Mutex<BTreeMap<String, Arc<RpcComponent>>>,
    taps: OnceLock<Arc<Taps>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("app", &self.app().name())
            .field("job", &self.name())
            .field("revision", &self.revision())
            .finish_non_exhaustive()
    }
}

impl Job {
    pub(super) fn from_parts(parts: JobParts) -> Job {
        Job {
            inner: Arc::new(Inner {
                parts,
                drain: Drain::new(),
                readiness: Readiness::new(),
                prepared: Mutex::default(),
                http: Mutex::default(),
                rpc: Mutex::default(),
                taps: OnceLock::new(),
            }),
        }
    }

    pub(crate) fn app(&self) -> &App {
        &self.inner.parts.app
    }

    pub(crate) fn placement(&self) -> &Placement {
        &self.inner.parts.placement
    }

    /// The job's name (`_local` for every job in one process).
    pub fn name(&self) -> &str {
        &self.inner.parts.placement.job
    }

    /// The app's revision (content hash); calls from other revisions are refused.
    pub fn revision(&self) -> &str {
        &self.inner.parts.app.revision
    }

    /// The labels of the components this job runs.
    pub fn components(&self) -> Vec<String> {
        self.inner.parts.placement.members.iter().cloned().collect()
    }

    /// The labels of this job's HTTP components, each served by
    /// [`http_service`](Self::http_service).
    pub fn http_components(&self) -> Vec<String> {
        self.members_with(BindingType::Http)
    }

    /// The labels of this job's rpc components other jobs call (served by
    /// [`rpc_service`](Self::rpc_service); none under `_local` unless calls
    /// are forced over HTTP).
    pub fn rpc_components(&self) -> Vec<String> {
        self.inner.parts.served_rpc.keys().cloned().collect()
    }

    /// The components of `binding` this job runs.
    pub(crate) fn members_with(&self, binding: BindingType) -> Vec<String> {
        self.placement().members_with(self.app(), binding)
    }

    /// The wasmtime engine the job's graphs run on.
    pub fn engine(&self) -> &wasmtime::Engine {
        &self.inner.parts.engine
    }

    /// The drain time [`serve`](Self::serve) allows after shutdown.
    pub fn shutdown_grace(&self) -> Duration {
        self.inner.parts.grace
    }

    /// Requests and calls in flight, across every service of the job.
    pub fn in_flight(&self) -> usize {
        self.inner.drain.in_flight()
    }

    /// Stops taking requests (new ones get 503) and waits up to `grace` for
    /// those in flight; whether they all finished. For embedders that serve
    /// the job's services on their own listeners.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.inner.drain.begin();
        tokio::time::timeout(grace, self.inner.drain.finished())
            .await
            .is_ok()
    }

    /// Whether the job takes traffic: [`Job::serve`] runs, the jobs it
    /// calls accepted a connection at start (or the start-up wait passed),
    /// and the drain has not begun. What `GET /readyz` on the admin
    /// listener reports.
    pub fn is_ready(&self) -> bool {
        self.inner.readiness.is_ready()
    }

    /// The job's metrics in the Prometheus text format (what the admin
    /// listener's `GET /metrics` answers), for embedders serving them on a
    /// route of their own.
    pub fn metrics_text(&self) -> String {
        self.inner.parts.metrics.render()
    }

    /// Sends the spans still buffered to the OTLP endpoint, if the job
    /// exports traces (`OTEL_EXPORTER_OTLP_ENDPOINT`), and waits for that
    /// (bounded by `OTEL_EXPORTER_OTLP_TIMEOUT`); the job keeps working.
    /// Call it before your process exits: spans otherwise leave in batches.
    pub async fn export_traces(&self) {
        self.inner.parts.metrics.tracing.export_buffered().await;
    }

    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.parts.metrics
    }

    pub(crate) fn readiness(&self) -> &Arc<Readiness> {
        &self.inner.readiness
    }

    /// The components of other jobs this job calls, and where (every URL
    /// of each: its replicas, or one name for its job).
    pub(crate) fn callees(&self) -> Vec<crate::serve::admin::Callee> {
        self.inner
            .parts
            .context
            .targets
            .values()
            .map(|target| crate::serve::admin::Callee {
                label: target.label.clone(),
                authorities: target
                    .urls()
                    .iter()
                    .filter_map(|url| crate::serve::admin::authority_of(url))
                    .collect(),
            })
            .filter(|callee| !callee.authorities.is_empty())
            .collect()
    }

    /// The app's limits (`[limits]`), before any component's own.
    pub(crate) fn app_limits(&self) -> crate::limits::Limits {
        self.inner.parts.app.manifest.limits
    }

    pub(crate) fn drain_handle(&self) -> &Drain {
        &self.inner.drain
    }

    /// A tower service answering HTTP requests with component `label`: a
    /// fresh instance of its graph per request, its limits, its header and
    /// body caps, a trap answered 500 — as `amimono run` serves it.
    pub fn http_service(&self, label: &str) -> Result<HttpService> {
        Ok(HttpService::new(self.http_component(label)?))
    }

    /// A tower service answering calls from other jobs (the remote-call
    /// protocol, authenticated with the cluster key) for every rpc
    /// component of this job that another job imports.
    pub fn rpc_service(&self) -> Result<RpcService> {
        let labels = self.rpc_components();
        if labels.is_empty() {
            anyhow::bail!(
                "job `{}` serves no calls from other jobs: none of its components is imported by a component of another job{}",
                self.name(),
                if self.name() == crate::placement::LOCAL_JOB {
                    " (under `_local` every call stays in the process)"
                } else {
                    ""
                }
            );
        }
        Ok(RpcService::new(self.rpc_server(&labels)?))
    }

    /// The server for calls from other jobs to `labels` (those not served
    /// to other jobs are left out: their calls get 404).
    pub(crate) fn rpc_server(&self, labels: &[String]) -> Result<Arc<RpcServer>> {
        let mut components = Vec::new();
        for label in labels {
            if self.inner.parts.served_rpc.contains_key(label) {
                components.push(self.rpc_component(label)?);
            }
        }
        let parts = &self.inner.parts;
        Ok(Arc::new(RpcServer::new(
            &parts.app.revision,
            components,
            parts.app.manifest.limits,
            parts.authentication.clone(),
            self.inner.drain.clone(),
            parts.metrics.clone(),
        )))
    }

    /// Makes the tapped graph of every member ([`crate::observe::tapped`])
    /// when `ratio` of requests are to measure their colocated calls.
    /// Before [`prepare_served`](Self::prepare_served): the served
    /// components take their tapped variant when made.
    pub(super) fn prepare_taps(&self, ratio: f64) -> Result<()> {
        if ratio <= 0.0 {
            return Ok(());
        }
        let parts = &self.inner.parts;
        let taps = Taps::new(
            ratio,
            parts.placement.members.clone(),
            parts.metrics.clone(),
        );
        let tapped_placement = parts.placement.clone().with_force_remote(true);
        let context = LinkContext {
            taps: Some(taps.clone()),
            ..parts.context.clone()
        };
        let mut graphs = BTreeMap::new();
        for label in &parts.placement.members {
            let composed = match compose_graph(&parts.app, &tapped_placement, label) {
                Ok(composed) => composed,
                Err(e) => {
                    tracing::info!(component = %label, reason = %e, "no tapped graph: the colocated calls of this entry are not measured");
                    continue;
                }
            };
            let prepared = prepare_graph(&parts.engine, &parts.app, &context, &composed)
                .with_context(|| format!("preparing the tapped graph of `{label}`"))?;
            let settings = self.settings(label, &prepared);
            graphs.insert(
                label.clone(),
                Arc::new(TappedGraph {
                    component: prepared.component,
                    pre: prepared.pre,
                    settings,
                }),
            );
        }
        tracing::info!(
            ratio,
            graphs = graphs.len(),
            "colocated calls measured in a sampled share of requests"
        );
        taps.set_graphs(graphs);
        let _ = self.inner.taps.set(taps);
        Ok(())
    }

    /// The tapped variant of entry `label`, when colocated calls are sampled.
    pub(crate) fn tapped(&self, label: &str) -> Option<(Arc<Taps>, Arc<TappedGraph>)> {
        let taps = self.inner.taps.get()?;
        Some((taps.clone(), taps.graph(label)?))
    }

    /// Compiles the graphs of what the job serves: HTTP components, rpc
    /// components other jobs call, workers.
    pub(super) fn prepare_served(&self) -> Result<()> {
        for label in self.http_components() {
            self.http_component(&label)?;
        }
        for label in self.rpc_components() {
            self.rpc_component(&label)?;
        }
        for label in self.members_with(BindingType::None) {
            if self.worker_export(&label).is_some() {
                self.graph(&label)?;
            }
        }
        Ok(())
    }

    /// The `wasi:cli/run` export of worker `label`, if it has one.
    pub(crate) fn worker_export(&self, label: &str) -> Option<String> {
        let component = self.app().component(label)?;
        crate::serve::worker::run_export(&component.world.exports)
    }

    /// The compiled, pre-instantiated graph of entry `label` (compiled on
    /// first use).
    pub(crate) fn graph(&self, label: &str) -> Result<Arc<PreparedGraph>> {
        let mut prepared = self
            .inner
            .prepared
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(graph) = prepared.get(label) {
            return Ok(graph.clone());
        }
        let parts = &self.inner.parts;
        let composed = parts.composed.get(label).with_context(|| {
            format!(
                "job `{}` does not run component `{label}` (it runs: {})",
                self.name(),
                self.components().join(", ")
            )
        })?;
        let started = std::time::Instant::now();
        let graph = Arc::new(prepare_graph(
            &parts.engine,
            &parts.app,
            &parts.context,
            composed,
        )?);
        tracing::info!(
            component = %label,
            members = ?graph.plan.members,
            ms = started.elapsed().as_millis() as u64,
            "graph ready"
        );
        prepared.insert(label.to_string(), graph.clone());
        Ok(graph)
    }

    /// The components composed into entry `label`'s graph (it and every
    /// colocated component it reaches), in instantiation order.
    pub fn graph_components(&self, label: &str) -> Result<Vec<String>> {
        Ok(self.graph(label)?.plan.members.clone())
    }

    /// The pre-instantiated graph of entry `label` (compiled on first use),
    /// for callers that make and schedule instances themselves; each
    /// instance needs a store from [`new_store`](Self::new_store).
    pub fn instance_pre(&self, label: &str) -> Result<InstancePre<HostState>> {
        Ok(self.graph(label)?.pre.clone())
    }

    /// A store for one instance of entry `label`'s graph: the component's
    /// memory and CPU limits, its graph's WASI grants, the job's memory
    /// budget.
    pub fn new_store(&self, label: &str) -> Result<Store<HostState>> {
        let graph = self.graph(label)?;
        Ok(new_store(self.engine(), &self.settings(label, &graph)))
    }

    /// The store settings of entry `label`'s instances: its limits, its
    /// graph's WASI grants and the job's memory budget.
    pub(crate) fn settings(&self, label: &str, graph: &PreparedGraph) -> StoreSettings {
        let parts = &self.inner.parts;
        StoreSettings {
            limits: parts
                .app
                .component(label)
                .map_or(parts.app.manifest.limits, |c| c.spec.limits),
            wasi: graph.wasi.clone(),
            budget: parts.budget.clone(),
            metrics: graph.metrics.clone(),
        }
    }

    fn http_component(&self, label: &str) -> Result<Arc<HttpComponent>> {
        let binding = self.app().component(label).map(|c| c.spec.binding);
        if binding != Some(BindingType::Http) || !self.placement().runs(label) {
            anyhow::bail!(
                "job `{}` has no HTTP component `{label}` (its HTTP components: {})",
                self.name(),
                or_none(&self.http_components())
            );
        }
        // Held while the component is made: two callers must not each start
        // a pool of spare instances.
        let mut components = self.lock_http();
        if let Some(component) = components.get(label) {
            return Ok(component.clone());
        }
        let graph = self.graph(label)?;
        let component = Arc::new(HttpComponent::new(
            label,
            graph.pre.clone(),
            self.settings(label, &graph),
            self.inner.drain.clone(),
            self.tapped(label),
        )?);
        components.insert(label.to_string(), component.clone());
        Ok(component)
    }

    fn lock_http(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<HttpComponent>>> {
        self.inner
            .http
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn rpc_component(&self, label: &str) -> Result<Arc<RpcComponent>> {
        let parts = &self.inner.parts;
        let callable = parts.served_rpc.get(label).with_context(|| {
            format!(
                "job `{}` serves no calls from other jobs to `{label}`",
                self.name()
            )
        })?;
        // Held while the component is made, as for HTTP components.
        let mut components = self
            .inner
            .rpc
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(component) = components.get(label) {
            return Ok(component.clone());
        }
        let graph = self.graph(label)?;
        let spec = parts.app.component(label);
        let exports = spec.map(|c| c.world.exports.clone()).unwrap_or_default();
        let call_timeout = spec
            .and_then(|c| c.spec.call_timeout)
            .unwrap_or(parts.app.manifest.call_timeout);
        let component = Arc::new(
            RpcComponent::new(
                label,
                &graph.component,
                graph.pre.clone(),
                &exports,
                callable,
                call_timeout,
                self.settings(label, &graph),
            )?
            .with_tapped(self.tapped(label)),
        );
        components.insert(label.to_string(), component.clone());
        Ok(component)
    }
}

/// `a, b` or `none`.
pub(crate) fn or_none(labels: &[String]) -> String {
    if labels.is_empty() {
        "none".to_string()
    } else {
        labels.join(", ")
    }
}
