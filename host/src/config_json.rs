//! `AMIMONO_JOB=_config`: the app config as JSON, for deploy tooling.
//! Shape: `{"app", "revision", "layout" (the selected named layout or null),
//! "layouts" (the named layouts), "jobs": {"<job>": {"components": {"<label>":
//! {"binding": {"type", "internal"?, "external"?}, "source", "imports",
//! "exports"}}}}}`; `jobs` are the selected layout's.

use crate::app::App;
use crate::bindings_file::Bindings;
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
                binding.insert("internal".into(), json!(address.internal.to_string()));
                binding.insert("external".into(), json!(address.external));
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
        jobs.insert(job.clone(), json!({ "components": components }));
    }
    json!({
        "app": app.name(),
        "revision": app.revision,
        "layout": app.manifest.layout,
        "layouts": app.manifest.layouts.keys().collect::<Vec<_>>(),
        "jobs": jobs,
    })
}
