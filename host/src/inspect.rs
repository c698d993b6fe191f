//! `amimono inspect <bundle>`: what a bundle holds — revision, jobs, each
//! component's binding, imports and exports, and where every import of every
//! job goes (colocated, remote, host). It checks every graph's digest.

use crate::artifact_cache::engine_fingerprint;
use crate::bundle::Bundle;
use crate::job::compose_job;
use crate::link::{HostInterface, Route};
use crate::placement::every_placement;
use anyhow::Result;
use std::fmt::Write;
use wasmtime::Engine;

/// The description of `bundle`, as text; `engine` tells whether its
/// precompiled graphs fit this host.
pub fn describe(bundle: &Bundle, engine: &Engine) -> Result<String> {
    // Every graph is read and checked here, not only the ones a job uses.
    bundle.verify()?;
    let app = &bundle.app;
    let index = &bundle.index;
    let mut out = String::new();
    let fits = index.engine == engine_fingerprint(engine);
    writeln!(out, "bundle    {}", bundle.path.display())?;
    writeln!(out, "app       {}", index.app)?;
    writeln!(out, "revision  {}", index.revision)?;
    writeln!(
        out,
        "built by  amimono {}; precompiled graphs {}",
        index.amimono_version,
        if fits {
            "fit this host's engine (no compilation at start)"
        } else {
            "do NOT fit this host's engine (they will be compiled at start)"
        }
    )?;
    writeln!(out, "\ncomponents")?;
    for (label, component) in &app.components {
        writeln!(
            out,
            "  {label} (binding {}, job {}, {} KiB)",
            component.spec.binding,
            component.spec.job,
            component.bytes.len() / 1024
        )?;
        for export in &component.world.exports {
            writeln!(out, "    exports {}", export.name)?;
        }
        let (wasi, own): (Vec<_>, Vec<_>) = component
            .world
            .imports
            .iter()
            .partition(|i| i.name.starts_with("wasi:"));
        for import in own {
            writeln!(out, "    imports {}", import.name)?;
        }
        if !wasi.is_empty() {
            writeln!(out, "    imports {} WASI interfaces", wasi.len())?;
        }
    }
    writeln!(out, "\njobs and links")?;
    for (app, placement) in every_placement(app)?
        .iter()
        .flat_map(|(app, placements)| placements.iter().map(move |p| (app, p)))
    {
        let members: Vec<&str> = placement.members.iter().map(String::as_str).collect();
        writeln!(
            out,
            "  {}: {}",
            placement.artifact_key(),
            members.join(", ")
        )?;
        let graphs = compose_job(app, placement, Some(bundle as &dyn crate::job::GraphLookup))?;
        let mut seen = std::collections::BTreeSet::new();
        for wire in graphs.values().flat_map(|g| g.plan.wires.iter()) {
            let line = match &wire.route {
                Route::Colocated { exporter, .. } => {
                    format!(
                        "{} → {exporter} (colocated: linked in the graph)",
                        wire.import
                    )
                }
                Route::Remote { exporter, job, .. } => {
                    format!(
                        "{} → {exporter} (remote: job {job}, over HTTP)",
                        wire.import
                    )
                }
                Route::Host(HostInterface::Member(crate::capabilities::runtime::CONTEXT)) => {
                    format!("{} → host (runtime interface)", wire.import)
                }
                Route::Host(_) | Route::TypesOnly => continue,
            };
            if seen.insert((wire.importer.clone(), line.clone())) {
                writeln!(out, "    {}: {line}", wire.importer)?;
            }
        }
    }
    Ok(out)
}
