//! Tapped graphs: how colocated calls are measured without slowing them.
//!
//! A colocated call is a plain call inside one composed component: the
//! host never sees it, and that is the point (a few nanoseconds against
//! hundreds for a host function). So the graphs that serve requests stay
//! untouched, and each entry gets a second, *tapped* variant: the entry
//! composed alone, each of its colocated imports bound to a host function
//! that runs the exporter's own tapped graph in a fresh store of this
//! process, timing and counting the call (`placement="local"`). A sampled
//! share of requests and calls from other jobs (`AMIMONO_LOCAL_SAMPLE_RATIO`,
//! or [`crate::JobBuilder::local_sample_ratio`]) runs the tapped variant;
//! its counts are scaled by the inverse of the ratio, which
//! `amimono_local_sample_ratio` exports. With the ratio 0 (the default) no
//! tapped graph is made and nothing changes.
//!
//! A tapped caller instance keeps one instance of each callee for its life,
//! as the composed graph does (state a callee keeps between two calls of one
//! request behaves the same); values are copied between the two stores, as
//! between jobs. An edge whose interface has resources cannot be split, so
//! an entry with such an edge gets no tapped variant and its colocated calls
//! are not measured.

use super::metrics::{CallRecord, MethodMetrics, Metrics, Placement};
use crate::host_state::{HostState, StoreSettings, TappedCallee, new_store};
use crate::observe::traces::{COMPONENT_ATTRIBUTE, TraceContext};
use crate::remote::codec;
use crate::wasmtime_error::IntoAnyhow;
use anyhow::{Context, Result, bail};
use opentelemetry::KeyValue;
use opentelemetry::trace::SpanKind;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, InstancePre, Linker, Type, Val};
use wasmtime::{AsContextMut, Engine, Store};

/// Environment variable: the share of requests whose colocated calls are
/// measured (0 to 1; default 0, off).
pub const SAMPLE_RATIO_ENV: &str = "AMIMONO_LOCAL_SAMPLE_RATIO";

/// The ratio `AMIMONO_LOCAL_SAMPLE_RATIO` asks for (0 when unset).
pub fn ratio_from_environment() -> Result<f64> {
    match std::env::var(SAMPLE_RATIO_ENV) {
        Err(_) => Ok(0.0),
        Ok(text) => match text.trim().parse::<f64>() {
            Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
            _ => bail!(
                "{SAMPLE_RATIO_ENV}={text:?} is not a share between 0 and 1 (e.g. 0.01: one request in a hundred measures its colocated calls)"
            ),
        },
    }
}

/// A tapped graph of one entry, ready to instantiate.
pub struct TappedGraph {
    /// The compiled composition (the entry alone).
    pub component: Component,
    /// Pre-instantiated against a linker whose colocated imports are taps.
    pub pre: InstancePre<HostState>,
    /// How to make its stores.
    pub settings: StoreSettings,
}

/// The tapped graphs of a job and when to use them.
pub struct Taps {
    ratio: f64,
    weight: u64,
    runs_here: BTreeSet<String>,
    graphs: OnceLock<BTreeMap<String, Arc<TappedGraph>>>,
    metrics: Arc<Metrics>,
}

impl Taps {
    /// Taps for the components `runs_here`, used for `ratio` of requests.
    pub fn new(ratio: f64, runs_here: BTreeSet<String>, metrics: Arc<Metrics>) -> Arc<Taps> {
        metrics.set_local_sample_ratio(ratio);
        Arc::new(Taps {
            ratio,
            weight: (1.0 / ratio).round().max(1.0) as u64,
            runs_here,
            graphs: OnceLock::new(),
            metrics,
        })
    }

    /// Whether a call to `exporter` is a colocated call (tapped here).
    pub fn taps(&self, exporter: &str) -> bool {
        self.runs_here.contains(exporter)
    }

    /// Hands over the prepared tapped graphs (once, after all are made:
    /// each graph's taps call the others').
    pub fn set_graphs(&self, graphs: BTreeMap<String, Arc<TappedGraph>>) {
        let _ = self.graphs.set(graphs);
    }

    /// The tapped graph of `label`, if it has one.
    pub fn graph(&self, label: &str) -> Option<Arc<TappedGraph>> {
        self.graphs.get()?.get(label).cloned()
    }

    /// Whether this request (or call) runs the tapped variant.
    pub fn sample(&self) -> bool {
        self.ratio >= 1.0 || (self.ratio > 0.0 && fastrand::f64() < self.ratio)
    }

    /// Defines every function of the colocated import `import` (exported as
    /// `export` by `exporter`) in `linker` as a tap.
    pub fn define(
        self: &Arc<Self>,
        linker: &mut Linker<HostState>,
        engine: &Engine,
        component: &Component,
        import: &str,
        tap: &Tap<'_>,
    ) -> Result<()> {
        let component_type = component.component_type();
        let Some(item) = component_type.get_import(engine, import) else {
            bail!("the tapped composition does not import `{import}`");
        };
        let ComponentItem::ComponentInstance(instance) = item.ty else {
            bail!("`{import}` is not an interface");
        };
        let names: Vec<String> = instance
            .exports(engine)
            .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentFunc(_)))
            .map(|(name, _)| name.to_string())
            .collect();
        let mut instance_linker = linker
            .instance(import)
            .anyhow()
            .with_context(|| format!("defining the tapped import `{import}`"))?;
        for name in names {
            let call = Arc::new(TappedCall {
                taps: self.clone(),
                exporter: tap.exporter.to_string(),
                export: tap.export.to_string(),
                function: name.clone(),
                caller: tap.caller.to_string(),
                edge: self.metrics.method(
                    tap.caller,
                    tap.exporter,
                    &format!("{}#{name}", tap.export),
                    Placement::Local,
                ),
            });
            instance_linker
                .func_new_async(&name, move |mut caller, ty, params, results| {
                    let call = call.clone();
                    Box::new(async move {
                        let params_types: Vec<Type> = ty.params().map(|(_, t)| t).collect();
                        let results_types: Vec<Type> = ty.results().collect();
                        // The callee's instance lives in the caller's store
                        // data between calls; taken out while it runs.
                        let kept = caller.data_mut().tapped_callees.remove(&call.exporter);
                        let trace = caller.data().trace().clone();
                        let (outcome, callee) = call
                            .run(kept, &trace, params, &params_types, results, &results_types)
                            .await;
                        if let Some(callee) = callee {
                            caller
                                .data_mut()
                                .tapped_callees
                                .insert(call.exporter.clone(), callee);
                        }
                        outcome.map_err(wasmtime::Error::from_anyhow)
                    })
                })
                .anyhow()
                .with_context(|| format!("defining the tap `{import}#{name}`"))?;
        }
        Ok(())
    }
}

/// One colocated edge to tap.
pub struct Tap<'a> {
    /// The importing member.
    pub caller: &'a str,
    /// The exporting component (runs in this process).
    pub exporter: &'a str,
    /// The exporter's export name.
    pub export: &'a str,
}

/// One tapped function.
struct TappedCall {
    taps: Arc<Taps>,
    exporter: String,
    export: String,
    function: String,
    /// The importing member.
    caller: String,
    edge: MethodMetrics,
}

impl TappedCall {
    /// Runs the call in `kept` (the callee's instance from an earlier call
    /// of the same caller instance) or a new one, recording it; gives the
    /// instance back unless the call failed (a trapped instance is not
    /// used again).
    async fn run(
        &self,
        kept: Option<TappedCallee>,
        trace: &TraceContext,
        params: &[Val],
        params_types: &[Type],
        results: &mut [Val],
        results_types: &[Type],
    ) -> (anyhow::Result<()>, Option<TappedCallee>) {
        let started = Instant::now();
        let mut span = self
            .taps
            .metrics
            .tracing
            .start(trace, SpanKind::Internal, || {
                (
                    format!("{}.{}", self.exporter, self.function).into(),
                    vec![
                        KeyValue::new(COMPONENT_ATTRIBUTE, self.exporter.clone()),
                        KeyValue::new("amimono.caller", self.caller.clone()),
                        KeyValue::new("amimono.placement", "local"),
                        KeyValue::new("rpc.service", self.export.clone()),
                        KeyValue::new("rpc.method", self.function.clone()),
                    ],
                )
            });
        let callee = match kept {
            Some(callee) => Ok(callee),
            None => self.instantiate().await,
        };
        let (outcome, callee) = match callee {
            Ok((mut store, instance)) => {
                store.data_mut().set_trace(span.context().clone());
                let outcome = self.call(&mut store, &instance, params, results).await;
                let keep = outcome.is_ok().then_some((store, instance));
                (outcome, keep)
            }
            Err(e) => (Err(e), None),
        };
        if outcome.is_err() {
            span.fail("the call failed");
        }
        let size = |values: &[Val], types: &[Type]| {
            let mut bytes = Vec::new();
            codec::encode_values(values, types, &mut bytes).map_or(0, |()| bytes.len())
        };
        self.edge.record(&CallRecord {
            elapsed: started.elapsed(),
            request_bytes: size(params, params_types),
            reply_bytes: if outcome.is_ok() {
                size(results, results_types)
            } else {
                0
            },
            failed: outcome.is_err(),
            weight: self.taps.weight,
        });
        (outcome, callee)
    }

    /// A new instance of the exporter's tapped graph.
    async fn instantiate(&self) -> anyhow::Result<TappedCallee> {
        let graph = self
            .taps
            .graph(&self.exporter)
            .with_context(|| format!("component `{}` has no tapped graph", self.exporter))?;
        let mut store = new_store(graph.pre.engine(), &graph.settings);
        let instance = graph
            .pre
            .instantiate_async(&mut store)
            .await
            .anyhow()
            .with_context(|| format!("instantiating the tapped graph of `{}`", self.exporter))?;
        Ok((store, instance))
    }

    async fn call(
        &self,
        store: &mut Store<HostState>,
        instance: &wasmtime::component::Instance,
        params: &[Val],
        results: &mut [Val],
    ) -> anyhow::Result<()> {
        let func = lookup(&mut *store, instance, &self.export, &self.function)?;
        func.call_async(&mut *store, params, results)
            .await
            .anyhow()
            .with_context(|| format!("`{}` failed in `{}`", self.exporter, self.function))
    }
}

/// Function `function` of export `export` of `instance`.
pub fn lookup(
    mut store: impl AsContextMut,
    instance: &wasmtime::component::Instance,
    export: &str,
    function: &str,
) -> Result<wasmtime::component::Func> {
    let interface = instance
        .get_export_index(store.as_context_mut(), None, export)
        .with_context(|| format!("the tapped graph does not export `{export}`"))?;
    let index = instance
        .get_export_index(store.as_context_mut(), Some(&interface), function)
        .with_context(|| format!("`{export}` has no function `{function}`"))?;
    instance
        .get_func(store, index)
        .with_context(|| format!("`{export}#{function}` is not a function"))
}
