//! Calling a component of a job from native Rust code in the same process:
//! the native code is one more colocated caller. Each call gets a fresh
//! instance of the callee's graph (as an HTTP request does), bounded by the
//! callee's `request_timeout_ms`; no HTTP, no serialization. [`Job::call`]
//! takes [`Val`]s; [`Job::typed_call`] gives a [`TypedCall`] with Rust types
//! checked against the export once; [`TypedCall::instance`] keeps one
//! instance for many calls where per-call isolation is not wanted.
//!
//! Each call is a span (when the job exports traces) under the caller's
//! current OpenTelemetry context, so an embedder's own trace continues
//! through the component and into the calls it makes to other jobs.

use super::graphs::PreparedGraph;
use super::prepared::Job;
use crate::app::FunctionRef;
use crate::app::LoadedComponent;
use crate::host_state::{HostState, new_store};
use crate::observe::traces::{ActiveSpan, COMPONENT_ATTRIBUTE, TraceContext};
use opentelemetry::KeyValue;
use opentelemetry::trace::SpanKind;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::Store;
use wasmtime::component::{ComponentExportIndex, ComponentNamedList, Func, Lift, Lower, Type, Val};

/// Why a call from native code could not be made or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No component of the app has the label.
    #[error("app `{app}` has no component `{label}` (components: {known})")]
    UnknownComponent {
        /// The app's name.
        app: String,
        /// The label asked for.
        label: String,
        /// The labels that exist.
        known: String,
    },
    /// The component runs in another job than the one prepared.
    #[error(
        "component `{label}` runs in job `{runs_in}`, not in job `{job}`: call it from a job that runs it (or `_local`)"
    )]
    NotInJob {
        /// The component.
        label: String,
        /// The job prepared.
        job: String,
        /// The job it runs in.
        runs_in: String,
    },
    /// The component exports no function of that name.
    #[error("component `{label}` exports no function `{function}`; it exports: {available}")]
    UnknownFunction {
        /// The component.
        label: String,
        /// The function asked for.
        function: String,
        /// Its exported functions.
        available: String,
    },
    /// Several exported interfaces have a function of that name.
    #[error(
        "component `{label}` exports several functions named `{function}`: {candidates}; qualify it as `<interface>#{function}`"
    )]
    AmbiguousFunction {
        /// The component.
        label: String,
        /// The function asked for.
        function: String,
        /// The qualified candidates.
        candidates: String,
    },
    /// The arguments do not match the parameter types (count, type, or WAVE text).
    #[error("arguments for `{function}` do not match its parameters ({params}): {detail}")]
    BadArguments {
        /// The function.
        function: String,
        /// Its parameter list.
        params: String,
        /// What does not match.
        detail: String,
    },
    /// The Rust types given to [`Job::typed_call`] are not the function's.
    #[error("`{function}` of component `{label}` does not have the Rust types asked for: {detail}")]
    WrongTypes {
        /// The component.
        label: String,
        /// The function.
        function: String,
        /// wasmtime's type check.
        detail: String,
    },
    /// The graph could not be compiled or instantiated.
    #[error("cannot instantiate the graph of `{label}`: {detail}")]
    Instantiate {
        /// The component.
        label: String,
        /// Why.
        detail: String,
    },
    /// The guest trapped.
    #[error("component `{label}` trapped in `{function}`: {detail}")]
    Trap {
        /// The called component.
        label: String,
        /// The function.
        function: String,
        /// The trap, with its wasm backtrace.
        detail: String,
    },
    /// The call ran past the component's `request_timeout_ms`.
    #[error(
        "component `{label}` did not finish `{function}` within its request_timeout_ms of {ms} ms"
    )]
    TimedOut {
        /// The called component.
        label: String,
        /// The function.
        function: String,
        /// The limit.
        ms: u64,
    },
}

/// Finds the exported function `spec` of `component`: `name`, or
/// `interface#name` where `interface` is the full export name, the name
/// without version, or the bare interface name.
pub fn resolve_function(component: &LoadedComponent, spec: &str) -> Result<FunctionRef, CallError> {
    let (interface, function) = FunctionRef::parse(spec);
    let mut candidates = Vec::new();
    let mut available = Vec::new();
    for export in &component.world.exports {
        let name = crate::app::InterfaceName::parse(&export.name);
        let interface_matches =
            interface.is_none_or(|i| i == export.name || i == name.path || i == name.interface());
        if export.is_interface {
            for f in &export.functions {
                let candidate = FunctionRef {
                    interface: Some(export.name.clone()),
                    function: f.clone(),
                };
                if interface_matches && f == function {
                    candidates.push(candidate.clone());
                }
                available.push(candidate.qualified());
            }
        } else if interface.is_none() && export.name == function {
            candidates.push(FunctionRef {
                interface: None,
                function: function.to_string(),
            });
        }
    }
    match candidates.len() {
        1 => Ok(candidates.remove(0)),
        0 => Err(CallError::UnknownFunction {
            label: component.label().to_string(),
            function: spec.to_string(),
            available: if available.is_empty() {
                "no functions".to_string()
            } else {
                available.join(", ")
            },
        }),
        _ => Err(CallError::AmbiguousFunction {
            label: component.label().to_string(),
            function: function.to_string(),
            candidates: candidates
                .iter()
                .map(FunctionRef::qualified)
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// An exported function of a component of a job, resolved.
#[derive(Clone)]
pub struct Callee {
    job: Job,
    label: Arc<str>,
    target: FunctionRef,
    graph: Arc<PreparedGraph>,
    index: ComponentExportIndex,
    timeout: Duration,
}

impl Callee {
    /// The function, `interface#name`.
    pub fn qualified(&self) -> String {
        self.target.qualified()
    }

    /// The parameters' names and types.
    pub fn params(&self) -> Vec<(String, Type)> {
        self.func_type()
            .map(|ty| ty.params().map(|(n, t)| (n.to_string(), t)).collect())
            .unwrap_or_default()
    }

    /// The results' types.
    pub fn results(&self) -> Vec<Type> {
        self.func_type()
            .map(|ty| ty.results().collect())
            .unwrap_or_default()
    }

    fn func_type(&self) -> Option<wasmtime::component::types::ComponentFunc> {
        let component = &self.graph.component;
        let (item, _) = match &self.target.interface {
            Some(interface) => {
                let (_, instance) = component.get_export(None, interface)?;
                component.get_export(Some(&instance), &self.target.function)?
            }
            None => component.get_export(None, &self.target.function)?,
        };
        match item {
            wasmtime::component::types::ComponentItem::ComponentFunc(ty) => Some(ty),
            _ => None,
        }
    }

    /// A fresh instance of the callee's graph and the function in it.
    async fn instantiate(&self) -> Result<(Store<HostState>, Func), CallError> {
        let failed = |detail: String| CallError::Instantiate {
            label: self.label.to_string(),
            detail,
        };
        let settings = self.job.settings(&self.label, &self.graph);
        let mut store = new_store(self.job.engine(), &settings);
        let instance = self
            .graph
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| failed(format!("{e:#}")))?;
        let func = instance
            .get_func(&mut store, self.index)
            .ok_or_else(|| failed(format!("`{}` is not a function", self.qualified())))?;
        Ok((store, func))
    }

    /// Starts the span of one call in `store`'s instance, under the calling
    /// code's current trace context, and has the instance carry it (into
    /// its remote calls, outgoing HTTP and log lines).
    fn start_span(&self, store: &mut Store<HostState>) -> ActiveSpan {
        let span =
            self.graph
                .metrics
                .tracing
                .start(&TraceContext::current(), SpanKind::Internal, || {
                    (
                        format!("{}.{}", self.label, self.target.function).into(),
                        vec![
                            KeyValue::new(COMPONENT_ATTRIBUTE, self.label.to_string()),
                            KeyValue::new("rpc.system", "amimono"),
                            KeyValue::new(
                                "rpc.service",
                                self.target.interface.clone().unwrap_or_default(),
                            ),
                            KeyValue::new("rpc.method", self.target.function.clone()),
                            KeyValue::new("amimono.caller", "native"),
                        ],
                    )
                });
        store.data_mut().set_trace(span.context().clone());
        span
    }

    /// Runs `call` in `store`'s instance under the callee's request timeout
    /// and a span of its own, mapping a trap.
    async fn bounded<T>(
        &self,
        store: &mut Store<HostState>,
        call: impl AsyncFnOnce(&mut Store<HostState>) -> wasmtime::Result<T>,
    ) -> Result<T, CallError> {
        let mut span = self.start_span(store);
        let outcome = match tokio::time::timeout(self.timeout, call(store)).await {
            Ok(outcome) => outcome.map_err(|e| CallError::Trap {
                label: self.label.to_string(),
                function: self.qualified(),
                detail: format!("{e:#}"),
            }),
            Err(_) => Err(CallError::TimedOut {
                label: self.label.to_string(),
                function: self.qualified(),
                ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
            }),
        };
        if let Err(e) = &outcome {
            span.fail(e.to_string());
        }
        outcome
    }

    /// Calls the function with `args` in a fresh instance; its results.
    pub async fn call(&self, args: &[Val]) -> Result<Vec<Val>, CallError> {
        let (mut store, func) = self.instantiate().await?;
        let expected = func.ty(&store).params().len();
        if args.len() != expected {
            return Err(CallError::BadArguments {
                function: self.qualified(),
                params: self.params_text(),
                detail: format!("{} arguments given, {expected} expected", args.len()),
            });
        }
        let mut results = vec![Val::Bool(false); func.ty(&store).results().len()];
        self.bounded(&mut store, async |store| {
            func.call_async(store, args, &mut results).await
        })
        .await?;
        Ok(results)
    }

    /// `name: type, …` of the parameters.
    pub fn params_text(&self) -> String {
        self.params()
            .iter()
            .map(|(name, t)| {
                format!(
                    "{name}: {}",
                    wasmtime::component::wasm_wave::wasm::DisplayType(t)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Job {
    /// Resolves `function` (`name`, or `interface#name`) of component
    /// `label`, compiling its graph if this is its first use.
    pub fn callee(&self, label: &str, function: &str) -> Result<Callee, CallError> {
        let app = self.app();
        let component = app
            .component(label)
            .ok_or_else(|| CallError::UnknownComponent {
                app: app.name().to_string(),
                label: label.to_string(),
                known: app
                    .components
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        if !self.placement().runs(label) {
            return Err(CallError::NotInJob {
                label: label.to_string(),
                job: self.name().to_string(),
                runs_in: component.spec.job.clone(),
            });
        }
        let target = resolve_function(component, function)?;
        let graph = self.graph(label).map_err(|e| CallError::Instantiate {
            label: label.to_string(),
            detail: format!("{e:#}"),
        })?;
        let missing = || CallError::Instantiate {
            label: label.to_string(),
            detail: format!("the graph does not export `{}`", target.qualified()),
        };
        let index = match &target.interface {
            Some(interface) => {
                let interface_index = graph
                    .component
                    .get_export_index(None, interface)
                    .ok_or_else(missing)?;
                graph
                    .component
                    .get_export_index(Some(&interface_index), &target.function)
            }
            None => graph.component.get_export_index(None, &target.function),
        }
        .ok_or_else(missing)?;
        Ok(Callee {
            job: self.clone(),
            label: Arc::from(label),
            target,
            graph,
            index,
            timeout: component.spec.limits.request_timeout,
        })
    }

    /// Calls `function` of component `label` with `args`, in a fresh
    /// instance of its graph; its results.
    pub async fn call(
        &self,
        label: &str,
        function: &str,
        args: &[Val],
    ) -> Result<Vec<Val>, CallError> {
        self.callee(label, function)?.call(args).await
    }

    /// `function` of component `label` as a Rust function from `Params` to
    /// `Results` (tuples of Rust types matching the WIT, e.g.
    /// `(String,)`); the types are checked here, once.
    pub async fn typed_call<Params, Results>(
        &self,
        label: &str,
        function: &str,
    ) -> Result<TypedCall<Params, Results>, CallError>
    where
        Params: ComponentNamedList + Lower + Send + Sync + 'static,
        Results: ComponentNamedList + Lift + Send + Sync + 'static,
    {
        let callee = self.callee(label, function)?;
        let (store, func) = callee.instantiate().await?;
        func.typed::<Params, Results>(&store)
            .map_err(|e| CallError::WrongTypes {
                label: label.to_string(),
                function: callee.qualified(),
                detail: format!("{e:#}"),
            })?;
        Ok(TypedCall {
            callee,
            types: PhantomData,
        })
    }
}

/// A typed function of a component, from [`Job::typed_call`]. Cheap to clone.
pub struct TypedCall<Params, Results> {
    callee: Callee,
    types: PhantomData<fn(Params) -> Results>,
}

impl<Params, Results> Clone for TypedCall<Params, Results> {
    fn clone(&self) -> Self {
        TypedCall {
            callee: self.callee.clone(),
            types: PhantomData,
        }
    }
}

impl<Params, Results> TypedCall<Params, Results>
where
    Params: ComponentNamedList + Lower + Send + Sync + 'static,
    Results: ComponentNamedList + Lift + Send + Sync + 'static,
{
    /// Calls the function in a fresh instance of the component's graph.
    pub async fn call(&self, params: Params) -> Result<Results, CallError> {
        let mut instance = self.instance().await?;
        instance.call(params).await
    }

    /// One instance of the component's graph kept for many calls: no
    /// instantiation per call, but state (memory, globals) carries over from
    /// one call to the next, and a trap poisons it (make another).
    pub async fn instance(&self) -> Result<TypedInstance<Params, Results>, CallError> {
        let (store, func) = self.callee.instantiate().await?;
        let func = func
            .typed::<Params, Results>(&store)
            .map_err(|e| CallError::WrongTypes {
                label: self.callee.label.to_string(),
                function: self.callee.qualified(),
                detail: format!("{e:#}"),
            })?;
        Ok(TypedInstance {
            callee: self.callee.clone(),
            store,
            func,
        })
    }
}

/// An instance of a component's graph with one typed function, for many
/// calls (see [`TypedCall::instance`]).
pub struct TypedInstance<Params, Results> {
    callee: Callee,
    store: Store<HostState>,
    func: wasmtime::component::TypedFunc<Params, Results>,
}

impl<Params, Results> TypedInstance<Params, Results>
where
    Params: ComponentNamedList + Lower + Send + Sync + 'static,
    Results: ComponentNamedList + Lift + Send + Sync + 'static,
{
    /// Calls the function in this instance.
    pub async fn call(&mut self, params: Params) -> Result<Results, CallError> {
        let func = self.func;
        self.callee
            .bounded(&mut self.store, async move |store| {
                func.call_async(store, params).await
            })
            .await
    }
}
