//! Composing a planned graph into one component with wac-graph. Colocated
//! imports are wired straight to the exporter's instance (wasmtime then fuses
//! the adapters: a call costs a few nanoseconds). Each member's imports of
//! per-component host capabilities are renamed per member
//! ([`member_import_name`]), so the host can tell members apart; shared WASI
//! and remote imports stay imports of the composition.

use super::LinkError;
use super::plan::GraphPlan;
use super::router::{HostInterface, Route};
use crate::app::App;
use crate::capabilities::member_import_name;
use std::collections::BTreeMap;
use wac_graph::types::Package;
use wac_graph::{
    CompositionGraph, EncodeOptions, InstantiationArgumentError, NodeId, PackageId, Processor,
};

/// Encodes the graph of `plan` as one component exporting everything the
/// plan's root exports, under the same names.
pub fn compose(app: &App, plan: &GraphPlan) -> Result<Vec<u8>, LinkError> {
    let fail = |detail: String| LinkError::Compose {
        root: plan.root.clone(),
        detail,
    };
    let mut graph = CompositionGraph::new();
    let mut nodes: BTreeMap<&str, (PackageId, NodeId)> = BTreeMap::new();
    for label in &plan.members {
        let component = app
            .component(label)
            .ok_or_else(|| LinkError::UnknownComponent(label.clone()))?;
        let package = Package::from_bytes(
            &format!("amimono-component:{label}"),
            None,
            component.bytes.as_slice(),
            graph.types_mut(),
        )
        .map_err(|e| fail(format!("reading component `{label}`: {e:#}")))?;
        let package = graph
            .register_package(package)
            .map_err(|e| fail(e.to_string()))?;
        let node = graph.instantiate(package);
        nodes.insert(label.as_str(), (package, node));
    }

    let mut aliases: BTreeMap<(&str, &str), NodeId> = BTreeMap::new();
    for wire in &plan.wires {
        let (package, node) = nodes[wire.importer.as_str()];
        let argument = match &wire.route {
            Route::Colocated { exporter, export } => {
                let key = (exporter.as_str(), export.as_str());
                match aliases.get(&key) {
                    Some(alias) => *alias,
                    None => {
                        let (_, exporter_node) = nodes[exporter.as_str()];
                        let alias = graph
                            .alias_instance_export(exporter_node, export)
                            .map_err(|e| fail(e.to_string()))?;
                        aliases.insert(key, alias);
                        alias
                    }
                }
            }
            Route::Host(HostInterface::Member(interface)) => {
                let world = graph.types()[graph[package].ty()].clone();
                let kind = world.imports[&wire.import];
                graph
                    .import(member_import_name(&wire.importer, *interface), kind)
                    .map_err(|e| fail(e.to_string()))?
            }
            Route::Host(HostInterface::Wasi) | Route::Remote { .. } | Route::TypesOnly => continue,
        };
        graph
            .set_instantiation_argument(node, &wire.import, argument)
            .map_err(|e| match (e, &wire.route) {
                (
                    InstantiationArgumentError::ArgumentTypeMismatch { source, .. },
                    Route::Colocated { exporter, .. },
                ) => LinkError::WitMismatch {
                    component: wire.importer.clone(),
                    import: wire.import.clone(),
                    exporter: exporter.clone(),
                    detail: format!("{source:#}"),
                },
                (e, _) => fail(format!("{e:#}")),
            })?;
    }

    let (_, root) = nodes[plan.root.as_str()];
    let root_component = app
        .component(&plan.root)
        .ok_or_else(|| LinkError::UnknownComponent(plan.root.clone()))?;
    for export in &root_component.world.exports {
        let alias = graph
            .alias_instance_export(root, &export.name)
            .map_err(|e| fail(e.to_string()))?;
        graph
            .export(alias, export.name.clone())
            .map_err(|e| fail(e.to_string()))?;
    }

    graph
        .encode(EncodeOptions {
            define_components: true,
            validate: false,
            processor: Some(Processor {
                name: "amimono",
                version: env!("CARGO_PKG_VERSION"),
            }),
        })
        .map_err(|e| fail(format!("{e:#}")))
}
