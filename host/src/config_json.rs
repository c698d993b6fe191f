//! `AMIMONO_JOB=_config`: the app config as JSON, for deploy tooling.
//! Shape: `{"app", "revision", "layout" (the selected named layout or null),
//! "layouts" (the named layouts), "jobs": {"<job>": {"components": {"<label>":
//! {"binding": {"type", "internal"?, "external"?}, "source", "imports",
//! "exports"}}, "replicas"}}}`; `jobs` are the selected layout's; `internal`
//! and `external` are a string, or a list of one per replica, as in the
//! bindings file.

use crate::app::App;
use crate::bindings_file::{Bindings, PerReplica};
use serde_json::{Map, Value, json};

/// The config of `app`, with addresses from `bindings` when given.
pub fn app_config(app: &App, bindings: Option<&Bindings>) -> Value {
    let mut jobs = Map::new();
    for (job, spec) in &app.manifest.jobs {
        let mut components = Map::new();
        for label in &spec.components {
            let Some(component) = app.component(label) else {
                continue;
            };
            let mut binding = Map::new();
            binding.insert("type".into(), json!(component.spec.binding.as_str()));
            if let Some(address) = bindings.and_then(|b| b.components.get(label)) {
                binding.insert("internal".into(), per_replica(&address.internal));
                binding.insert("external".into(), per_replica(&address.external));
            }
            components.insert(
                label.clone(),
                json!({
                    "binding": binding,
                    "source": component.spec.source.display().to_string(),
                    "imports": component.world.imports.iter().map(|i| i.name.clone()).collect::<Vec<_>>(),
                    "exports": component.world.exports.iter().map(|e| e.name.clone()).collect::<Vec<_>>(),
                }),
            );
        }
        jobs.insert(
            job.clone(),
            json!({ "components": components, "replicas": spec.replicas }),
        );
    }
    json!({
        "app": app.name(),
        "revision": app.revision,
        "layout": app.manifest.layout,
        "layouts": app.manifest.layouts.keys().collect::<Vec<_>>(),
        "jobs": jobs,
    })
}

/// A bindings-file value as JSON: a string, or a list of one per replica.
fn per_replica<T: ToString>(value: &PerReplica<T>) -> Value {
    match value {
        PerReplica::All(value) => json!(value.to_string()),
        PerReplica::Each(values) => {
            json!(values.iter().map(ToString::to_string).collect::<Vec<_>>())
        }
    }
}
