//! Link rules checked per graph after routing: an interface that cannot
//! cross processes must not be split, and the members of one graph must be
//! granted the same filesystem and sockets (they share one WASI context).
//! Each broken rule is a [`LinkError`], reported with the job's others.

use super::{GraphPlan, LinkError, Route, SplitRefusal};
use crate::app::App;
use crate::capabilities::GraphGrants;

/// The members of a graph share one WASI filesystem and one set of sockets:
/// every member that imports `wasi:filesystem` must be granted the same
/// `files`, every member that imports `wasi:sockets` the same `sockets`, so
/// no member gets access it was not granted. The graph's grants.
pub fn shared_wasi_grants(app: &App, plan: &GraphPlan) -> Result<GraphGrants, LinkError> {
    let importers = |package: &str| -> Vec<&crate::app::LoadedComponent> {
        plan.members
            .iter()
            .filter_map(|label| app.component(label))
            .filter(|c| c.world.imports.iter().any(|i| i.name.starts_with(package)))
            .collect()
    };
    let mut grants = GraphGrants::default();
    let files = importers("wasi:filesystem/");
    if let Some(first) = files.first() {
        if let Some(other) = files.iter().find(|c| c.spec.files != first.spec.files) {
            return Err(LinkError::UnsharedGrant {
                interface: "wasi:filesystem",
                key: "files",
                first: first.spec.label.clone(),
                second: other.spec.label.clone(),
                root: plan.root.clone(),
            });
        }
        grants.files = first.spec.files.clone();
    }
    let sockets = importers("wasi:sockets/");
    if let Some(first) = sockets.first() {
        if let Some(other) = sockets
            .iter()
            .find(|c| c.spec.sockets != first.spec.sockets)
        {
            return Err(LinkError::UnsharedGrant {
                interface: "wasi:sockets",
                key: "sockets",
                first: first.spec.label.clone(),
                second: other.spec.label.clone(),
                root: plan.root.clone(),
            });
        }
        grants.sockets = first.spec.sockets.clone();
    }
    Ok(grants)
}

/// An interface whose functions take or return resources, streams or
/// futures cannot be split across jobs: report each remote wire that needs one.
pub fn check_splittable(app: &App, plan: &GraphPlan) -> Result<(), Vec<LinkError>> {
    let mut errors = Vec::new();
    for wire in &plan.wires {
        let Route::Remote { exporter, job, .. } = &wire.route else {
            continue;
        };
        let Some(importer) = app.component(&wire.importer) else {
            continue;
        };
        let shape = importer
            .world
            .imports
            .iter()
            .find(|i| i.name == wire.import);
        if let Some((function, reason)) = shape.and_then(|s| s.local_only.first()) {
            errors.push(LinkError::NotSplittable(Box::new(SplitRefusal {
                component: wire.importer.clone(),
                job: importer.spec.job.clone(),
                import: wire.import.clone(),
                function: function.clone(),
                reason: reason.clone(),
                exporter: exporter.clone(),
                exporter_job: job.clone(),
            })));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
