//! Binding a composed graph's remote imports: for every function of an
//! interface whose exporter runs in another job, the linker gets an async
//! host function that forwards the call through [`RemoteClient`].

use super::client::{CallStats, RemoteClient, RemoteFunction, RemoteTarget};
use crate::app::FunctionRef;
use crate::host_state::HostState;
use crate::observe::metrics::{CallRecord, Metrics, Placement};
use crate::observe::traces::COMPONENT_ATTRIBUTE;
use crate::wasmtime_error::IntoAnyhow;
use anyhow::{Context, Result, bail};
use opentelemetry::KeyValue;
use opentelemetry::trace::SpanKind;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::Engine;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker};

/// One remote import of a graph: the import's name, the exporter's export
/// name, and where the exporter runs.
pub struct RemoteImport<'a> {
    /// The import's name in the composed component.
    pub import: &'a str,
    /// The name the exporter exports the interface under.
    pub export: &'a str,
    /// Where calls go.
    pub target: Arc<RemoteTarget>,
    /// Functions the manifest marks idempotent (`name` or `interface#name`).
    pub idempotent: &'a [String],
    /// The importing member(s), as the metrics' `caller`.
    pub caller: &'a str,
}

/// Defines every function of `remote.import` in `linker` as a remote call.
pub fn define(
    linker: &mut Linker<HostState>,
    engine: &Engine,
    component: &Component,
    remote: &RemoteImport<'_>,
    client: &Arc<RemoteClient>,
    metrics: &Metrics,
) -> Result<()> {
    let retries = metrics.remote_retries(&remote.target.label);
    let component_type = component.component_type();
    let Some(import) = component_type.get_import(engine, remote.import) else {
        bail!("the composition does not import `{}`", remote.import);
    };
    let ComponentItem::ComponentInstance(instance) = import.ty else {
        bail!(
            "`{}` is not an interface: only interfaces can be called across jobs",
            remote.import
        );
    };
    let mut functions = Vec::new();
    for (name, item) in instance.exports(engine) {
        if let ComponentItem::ComponentFunc(ty) = item.ty {
            let idempotent = remote
                .idempotent
                .iter()
                .any(|f| FunctionRef::refers_to(f, remote.export, name));
            functions.push(RemoteFunction {
                qualified: format!("{}#{name}", remote.export),
                name: name.to_string(),
                params: ty.params().map(|(_, t)| t).collect(),
                results: ty.results().collect(),
                idempotent,
            });
        }
    }
    let mut instance_linker = linker
        .instance(remote.import)
        .anyhow()
        .with_context(|| format!("defining the remote import `{}`", remote.import))?;
    for function in functions {
        let edge = metrics.method(
            remote.caller,
            &remote.target.label,
            &function.qualified,
            Placement::Remote,
        );
        let function = Arc::new(function);
        let target = remote.target.clone();
        let client = client.clone();
        let name = function.name.clone();
        let retries = retries.clone();
        let tracing = metrics.tracing.clone();
        let caller: Arc<str> = remote.caller.into();
        let service: Arc<str> = remote.export.into();
        instance_linker
            .func_new_async(&name, move |store, _ty, params, results| {
                let function = function.clone();
                let target = target.clone();
                let client = client.clone();
                let edge = edge.clone();
                let retries = retries.clone();
                let mut span = tracing.start(store.data().trace(), SpanKind::Client, || {
                    (
                        format!("{}.{}", target.label, function.name).into(),
                        vec![
                            KeyValue::new(COMPONENT_ATTRIBUTE, caller.to_string()),
                            KeyValue::new("rpc.system", "amimono"),
                            KeyValue::new("rpc.service", service.to_string()),
                            KeyValue::new("rpc.method", function.name.clone()),
                            KeyValue::new("amimono.callee", target.label.clone()),
                        ],
                    )
                });
                Box::new(async move {
                    let started = Instant::now();
                    let mut stats = CallStats::default();
                    let outcome = client
                        .call_measured(
                            &target,
                            &function,
                            params,
                            results,
                            &mut stats,
                            span.context(),
                        )
                        .await;
                    if let Err(e) = &outcome {
                        span.fail(e.to_string());
                    }
                    edge.record(&CallRecord {
                        elapsed: started.elapsed(),
                        request_bytes: stats.request_bytes,
                        reply_bytes: stats.reply_bytes,
                        failed: outcome.is_err(),
                        weight: 1,
                    });
                    if stats.attempts > 1 {
                        retries.inc_by(u64::from(stats.attempts - 1));
                    }
                    outcome.map_err(|e| wasmtime::Error::from_anyhow(anyhow::Error::from(e)))
                })
            })
            .anyhow()
            .with_context(|| format!("defining `{}#{name}`", remote.import))?;
    }
    Ok(())
}
