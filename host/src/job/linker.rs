//! The linker of one graph: WASI and WASI-HTTP, each member's host
//! capabilities under its own import names, and a remote stub per import
//! whose exporter runs in another job.

use crate::app::App;
use crate::capabilities::{JobCapabilities, member_import_name};
use crate::host_state::HostState;
use crate::link::{GraphPlan, HostInterface, Route};
use crate::observe::metrics::{JobIdentity, Metrics};
use crate::observe::tapped::{Tap, Taps};
use crate::remote::client::{RemoteClient, RemoteTarget};
use crate::remote::stub::{self, RemoteImport};
use crate::wasmtime_error::IntoAnyhow;
use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

/// What linking a graph needs besides the graph: what each component is
/// granted, and where remote imports go.
#[derive(Clone)]
pub struct LinkContext {
    /// The job's opened capabilities.
    pub capabilities: Arc<JobCapabilities>,
    /// Sends remote calls.
    pub client: Arc<RemoteClient>,
    /// Where each remote exporter is reached, by label.
    pub targets: BTreeMap<String, Arc<RemoteTarget>>,
    /// The job's metrics (remote calls are recorded per edge).
    pub metrics: Arc<Metrics>,
    /// For tapped graphs: colocated imports become taps
    /// ([`crate::observe::tapped`]); `None` for the graphs that serve.
    pub taps: Option<Arc<Taps>>,
}

impl LinkContext {
    /// A context for graphs without remote imports.
    pub fn local(capabilities: Arc<JobCapabilities>) -> LinkContext {
        let facts = capabilities.facts();
        let metrics = Arc::new(Metrics::new(&JobIdentity {
            app: &facts.app,
            job: &facts.job,
            revision: &facts.revision,
            replica: 0,
        }));
        let client = Arc::new(RemoteClient::new(
            &capabilities.facts().revision,
            &capabilities.facts().job,
            crate::remote::auth::Authentication::Disabled,
        ));
        LinkContext {
            capabilities,
            client,
            targets: BTreeMap::new(),
            metrics,
            taps: None,
        }
    }
}

/// A linker with WASI, WASI-HTTP, the runtime interface of each member that
/// imports it, and a remote stub for each remote import.
pub(super) fn linker_for(
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
            Route::Host(HostInterface::Member(interface)) => {
                context.capabilities.add_to_linker(
                    &mut linker,
                    *interface,
                    &member_import_name(&wire.importer, *interface),
                    &wire.importer,
                )?;
            }
            Route::Remote {
                exporter, export, ..
            } => {
                if !remote_imports.insert(wire.import.as_str()) {
                    continue;
                }
                if let Some(taps) = context.taps.as_ref().filter(|t| t.taps(exporter)) {
                    taps.define(
                        &mut linker,
                        engine,
                        component,
                        &wire.import,
                        &Tap {
                            caller: &wire.importer,
                            exporter,
                            export,
                        },
                    )?;
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
                // The caller: every member importing it (the composition
                // imports it once).
                let callers: Vec<&str> = plan
                    .wires
                    .iter()
                    .filter(|w| w.import == wire.import)
                    .map(|w| w.importer.as_str())
                    .collect();
                stub::define(
                    &mut linker,
                    engine,
                    component,
                    &RemoteImport {
                        import: &wire.import,
                        export,
                        target: target.clone(),
                        idempotent,
                        caller: &callers.join(","),
                    },
                    &context.client,
                    &context.metrics,
                )?;
            }
            _ => {}
        }
    }
    Ok(linker)
}
