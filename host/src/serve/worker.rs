//! Workers: components with binding `none` that export `wasi:cli/run`. Each
//! is started when its job starts (a fresh instance of its graph per run),
//! its exit is logged, and a failed run (an `err` result or a trap) is
//! restarted with exponential backoff (100 ms doubling to 30 s; back to 100 ms
//! after a run that lasted a minute). A run that succeeds is not restarted.
//! CPU time is not limited for workers (they are meant to run long); memory is.

use crate::host_state::{HostState, StoreSettings, new_store};
use crate::limits::Limits;
use crate::wasmtime_error::IntoAnyhow;
use anyhow::{Context, Result};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, InstancePre};

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// The `wasi:cli/run` export of a component's world, if it has one.
pub fn run_export(exports: &[crate::app::ItemShape]) -> Option<String> {
    exports
        .iter()
        .find(|e| e.name.starts_with("wasi:cli/run@0.2"))
        .map(|e| e.name.clone())
}

/// Runs the worker `label` forever (restarting failed runs).
pub async fn supervise(
    label: String,
    component: Component,
    pre: InstancePre<HostState>,
    run_export: String,
    settings: StoreSettings,
) {
    let settings = StoreSettings {
        limits: Limits {
            cpu_time: Duration::MAX,
            ..settings.limits
        },
        ..settings
    };
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1u64.. {
        let started = Instant::now();
        tracing::info!(component = %label, attempt, "worker starting");
        match run_once(&component, &pre, &run_export, &settings).await {
            Ok(true) => {
                tracing::info!(component = %label, attempt, ms = started.elapsed().as_millis() as u64, "worker finished");
                return;
            }
            Ok(false) => {
                tracing::error!(component = %label, attempt, "worker failed: `run` returned an error");
            }
            Err(e) => {
                tracing::error!(component = %label, attempt, error = %format!("{e:#}"), "worker failed");
            }
        }
        if started.elapsed() >= HEALTHY_RUN {
            backoff = FIRST_BACKOFF;
        }
        tracing::info!(component = %label, ms = backoff.as_millis() as u64, "restarting the worker after a pause");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One run in a fresh instance: whether `run` returned `ok`.
async fn run_once(
    component: &Component,
    pre: &InstancePre<HostState>,
    run_export: &str,
    settings: &StoreSettings,
) -> Result<bool> {
    let interface = component
        .get_export_index(None, run_export)
        .with_context(|| format!("the graph does not export `{run_export}`"))?;
    let run = component
        .get_export_index(Some(&interface), "run")
        .with_context(|| format!("`{run_export}` has no `run`"))?;
    let mut store = new_store(pre.engine(), settings);
    let instance = pre.instantiate_async(&mut store).await.anyhow()?;
    let run = instance
        .get_typed_func::<(), (Result<(), ()>,)>(&mut store, &run)
        .anyhow()
        .context("typing `run`")?;
    let (outcome,) = run.call_async(&mut store, ()).await.anyhow()?;
    Ok(outcome.is_ok())
}
