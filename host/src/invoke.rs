//! `amimono call`: one exported function of a component called with
//! arguments typed as WAVE, the result printed as WAVE. The call goes
//! through the job's native-call path ([`crate::Job::callee`]), so the
//! component runs in its graph with every other component colocated.

use crate::job::{CallError, Job};
use anyhow::{Context, Result};
use wasmtime::component::{Type, Val, wasm_wave};

/// What a call returned.
#[derive(Debug, Clone)]
pub struct CallOutcome {
    /// The results, as WAVE text.
    pub wave: String,
    /// Whether the function returned a `result` that is `err`.
    pub is_err: bool,
}

/// Calls `function` of component `label` of `job` with `args` (WAVE, one
/// per parameter, or all of them in one string separated by commas).
pub async fn call(job: &Job, label: &str, function: &str, args: &[String]) -> Result<CallOutcome> {
    let callee = job.callee(label, function)?;
    let param_types: Vec<Type> = callee.params().into_iter().map(|(_, t)| t).collect();
    let (_, name) = crate::app::FunctionRef::parse(function);
    let source = format!("{name}({})", args.join(", "));
    let params: Vec<Val> = wasm_wave::untyped::UntypedFuncCall::parse(&source)
        .and_then(|call| call.to_wasm_params::<Val>(param_types.iter()))
        .map_err(|e| CallError::BadArguments {
            function: callee.qualified(),
            params: callee.params_text(),
            detail: e.to_string(),
        })?;
    let results = callee.call(&params).await?;
    let rendered: Vec<String> = results
        .iter()
        .map(|v| wasm_wave::to_string(v).context("rendering the result as WAVE"))
        .collect::<Result<_>>()?;
    Ok(CallOutcome {
        wave: rendered.join(", "),
        is_err: results.iter().any(|v| matches!(v, Val::Result(Err(_)))),
    })
}
