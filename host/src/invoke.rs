//! `amimono call`: invoking one exported function of a component, with
//! arguments typed as WAVE and the result printed as WAVE. The component runs
//! in its graph with every other component colocated, as under `_local`.

use crate::app::{App, LoadedComponent};
use crate::capabilities::CapabilityContext;
use crate::engine::{EngineUse, new_engine};
use crate::host_state::{StoreSettings, new_store};
use crate::job::{LinkContext, compose_graph, prepare_graph};
use crate::placement::Placement;
use crate::wasmtime_error::IntoAnyhow;
use anyhow::{Context, Result};
use std::sync::Arc;
use wasmtime::component::{Type, Val, wasm_wave};

/// Why a call could not be made or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No component has the label.
    #[error("app `{app}` has no component `{label}` (components: {known})")]
    UnknownComponent {
        /// The app's name.
        app: String,
        /// The label asked for.
        label: String,
        /// The labels that exist.
        known: String,
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
    /// The arguments do not parse as WAVE values of the parameter types.
    #[error("arguments for `{function}` do not match its parameters ({params}): {detail}")]
    BadArguments {
        /// The function.
        function: String,
        /// Its parameter list.
        params: String,
        /// The WAVE parser's message.
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

/// A resolved function: the interface export holding it (or `None` for a
/// function exported at the top level) and the function's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRef {
    /// The exported interface.
    pub interface: Option<String>,
    /// The function name.
    pub function: String,
}

impl FunctionRef {
    /// `interface#function`, or `function`.
    pub fn qualified(&self) -> String {
        match &self.interface {
            Some(interface) => format!("{interface}#{}", self.function),
            None => self.function.clone(),
        }
    }
}

/// Finds the exported function `spec` of `component`: `name`, or
/// `interface#name` where `interface` is the full export name, the name
/// without version, or the bare interface name.
pub fn resolve_function(component: &LoadedComponent, spec: &str) -> Result<FunctionRef, CallError> {
    let (interface, function) = match spec.rsplit_once('#') {
        Some((interface, function)) => (Some(interface), function),
        None => (None, spec),
    };
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

/// What a call returned.
#[derive(Debug, Clone)]
pub struct CallOutcome {
    /// The results, as WAVE text.
    pub wave: String,
    /// Whether the function returned a `result` that is `err`.
    pub is_err: bool,
}

/// Calls `function` of component `label` with `args` (WAVE, one per
/// parameter, or all of them in one string separated by commas).
pub async fn call(
    app: &App,
    capabilities: Arc<CapabilityContext>,
    label: &str,
    function: &str,
    args: &[String],
) -> Result<CallOutcome> {
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
    let target = resolve_function(component, function)?;
    let engine = new_engine(EngineUse::OneShot)?;
    let placement = Placement::local(app);
    let composed = compose_graph(app, &placement, label)?;
    let graph = prepare_graph(&engine, app, &LinkContext::local(capabilities), &composed)?;
    let settings = StoreSettings {
        limits: component.spec.limits,
        wasi: graph.wasi.clone(),
        ..StoreSettings::default()
    };
    let mut store = new_store(&engine, &settings);
    let instance = graph
        .pre
        .instantiate_async(&mut store)
        .await
        .anyhow()
        .with_context(|| format!("instantiating the graph of `{label}`"))?;
    let func_index = match &target.interface {
        Some(interface) => {
            let interface_index = graph
                .component
                .get_export_index(None, interface)
                .with_context(|| format!("the graph of `{label}` does not export `{interface}`"))?;
            graph
                .component
                .get_export_index(Some(&interface_index), &target.function)
        }
        None => graph.component.get_export_index(None, &target.function),
    }
    .with_context(|| {
        format!(
            "the graph of `{label}` does not export `{}`",
            target.qualified()
        )
    })?;
    let func = instance
        .get_func(&mut store, func_index)
        .with_context(|| format!("`{}` is not a function", target.qualified()))?;
    let ty = func.ty(&store);
    let param_types: Vec<Type> = ty.params().map(|(_, t)| t).collect();
    let params_text = ty
        .params()
        .map(|(name, t)| format!("{name}: {}", type_name(&t)))
        .collect::<Vec<_>>()
        .join(", ");
    let source = format!("{}({})", target.function, args.join(", "));
    let params: Vec<Val> = wasm_wave::untyped::UntypedFuncCall::parse(&source)
        .and_then(|call| call.to_wasm_params::<Val>(param_types.iter()))
        .map_err(|e| CallError::BadArguments {
            function: target.qualified(),
            params: params_text.clone(),
            detail: e.to_string(),
        })?;
    let mut results = vec![Val::Bool(false); ty.results().len()];
    // Bounded like a served request: `request_timeout_ms` of wall-clock time.
    let timeout = component.spec.limits.request_timeout;
    match tokio::time::timeout(timeout, func.call_async(&mut store, &params, &mut results)).await {
        Ok(outcome) => outcome.map_err(|e| CallError::Trap {
            label: label.to_string(),
            function: target.qualified(),
            detail: format!("{e:#}"),
        })?,
        Err(_) => {
            return Err(CallError::TimedOut {
                label: label.to_string(),
                function: target.qualified(),
                ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            }
            .into());
        }
    }
    let rendered: Vec<String> = results
        .iter()
        .map(|v| wasm_wave::to_string(v).context("rendering the result as WAVE"))
        .collect::<Result<_>>()?;
    Ok(CallOutcome {
        wave: rendered.join(", "),
        is_err: results.iter().any(|v| matches!(v, Val::Result(Err(_)))),
    })
}

fn type_name(ty: &Type) -> String {
    wasm_wave::wasm::DisplayType(ty).to_string()
}
