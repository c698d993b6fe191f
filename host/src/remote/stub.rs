//! Binding a composed graph's remote imports: for every function of an
//! interface whose exporter runs in another job, the linker gets an async
//! host function that forwards the call through [`RemoteClient`].

use super::client::{RemoteClient, RemoteFunction, RemoteTarget};
use crate::app::FunctionRef;
use crate::host_state::HostState;
use crate::wasmtime_error::IntoAnyhow;
use anyhow::{Context, Result, bail};
use std::sync::Arc;
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
}

/// Defines every function of `remote.import` in `linker` as a remote call.
pub fn define(
    linker: &mut Linker<HostState>,
    engine: &Engine,
    component: &Component,
    remote: &RemoteImport<'_>,
    client: &Arc<RemoteClient>,
) -> Result<()> {
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
        let function = Arc::new(function);
        let target = remote.target.clone();
        let client = client.clone();
        let name = function.name.clone();
        instance_linker
            .func_new_async(&name, move |_store, _ty, params, results| {
                let function = function.clone();
                let target = target.clone();
                let client = client.clone();
                Box::new(async move {
                    client
                        .call(&target, &function, params, results)
                        .await
                        .map_err(|e| wasmtime::Error::from_anyhow(anyhow::Error::from(e)))
                })
            })
            .anyhow()
            .with_context(|| format!("defining `{}#{name}`", remote.import))?;
    }
    Ok(())
}
