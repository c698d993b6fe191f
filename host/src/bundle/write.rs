//! `amimono build`: running each component's build command, then composing
//! every graph of every job, compiling it for the host's engine and writing
//! the bundle atomically (temp file + rename).

use super::{
    FORMAT, GraphBlobs, INDEX, Index, MANIFEST, component_entry, digest, graph_entry,
    precompiled_entry,
};
use crate::app::App;
use crate::artifact_cache;
use crate::job::compose_job;
use crate::manifest::Manifest;
use crate::placement::every_placement;
use crate::wasmtime_error::IntoAnyhow;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use wasmtime::Engine;

/// What `amimono build` produced.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    /// The bundle file.
    pub path: PathBuf,
    /// The app revision.
    pub revision: String,
    /// Size of the bundle in bytes.
    pub bytes: u64,
}

/// Runs the `build` command of every component of `manifest` that has one,
/// in the manifest's directory, reporting each through `progress`.
/// Identical commands run once.
pub fn build_components(manifest: &Manifest, progress: &mut dyn FnMut(String)) -> Result<()> {
    let mut done: Vec<&str> = Vec::new();
    for (label, spec) in &manifest.components {
        let Some(command) = spec.build.as_deref() else {
            progress(format!(
                "component `{label}`: no build command, using {}",
                spec.source.display()
            ));
            continue;
        };
        if done.contains(&command) {
            continue;
        }
        progress(format!("building `{label}`: {command}"));
        let started = Instant::now();
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(&manifest.dir)
            .status()
            .with_context(|| format!("running the build command of `{label}`: {command}"))?;
        if !status.success() {
            bail!(
                "the build command of component `{label}` failed ({status}): {command} (in {})",
                manifest.dir.display()
            );
        }
        progress(format!(
            "built `{label}` in {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        done.push(command);
    }
    Ok(())
}

/// Composes and compiles every graph of `app` (each job, and `_local`) for
/// `engine` and writes the bundle to `out`.
pub fn write_bundle(
    app: &App,
    engine: &Engine,
    out: &Path,
    progress: &mut dyn FnMut(String),
) -> Result<BuildOutcome> {
    let groups = every_placement(app)?;

    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |name: &str, bytes: &[u8]| -> Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, name, bytes)
            .with_context(|| format!("adding `{name}` to the bundle"))
    };
    add(MANIFEST, app.manifest.text.as_bytes())?;
    for (label, component) in &app.components {
        add(&component_entry(label), &component.bytes)?;
    }
    let mut jobs = BTreeMap::new();
    // Composed digest → precompiled digest: each distinct graph is compiled
    // and stored once, however many jobs and layouts use it.
    let mut stored: BTreeMap<String, String> = BTreeMap::new();
    for (app, placements) in &groups {
        for placement in placements {
            let started = Instant::now();
            let key = placement.artifact_key();
            let graphs = compose_job(app, placement, None)?;
            let mut entries = BTreeMap::new();
            for (label, graph) in &graphs {
                let composed_bytes = graph.bytes()?;
                let composed = digest(&composed_bytes);
                let precompiled = match stored.get(&composed) {
                    Some(precompiled) => precompiled.clone(),
                    None => {
                        let what = format!("the graph of `{label}` in job `{key}`");
                        let component = artifact_cache::compile(engine, &composed_bytes, &what)?;
                        let bytes = component
                            .serialize()
                            .anyhow()
                            .with_context(|| format!("serializing {what}"))?;
                        let precompiled = digest(&bytes);
                        add(&graph_entry(&composed), &composed_bytes)?;
                        add(&precompiled_entry(&precompiled), &bytes)?;
                        stored.insert(composed.clone(), precompiled.clone());
                        precompiled
                    }
                };
                entries.insert(
                    label.clone(),
                    GraphBlobs {
                        composed,
                        precompiled,
                    },
                );
            }
            progress(format!(
                "job `{key}`: composed and compiled {} graph{} in {:.2} s",
                graphs.len(),
                if graphs.len() == 1 { "" } else { "s" },
                started.elapsed().as_secs_f64()
            ));
            jobs.insert(key, entries);
        }
    }
    let index = Index {
        format: FORMAT,
        app: app.name().to_string(),
        revision: app.revision.clone(),
        amimono_version: env!("CARGO_PKG_VERSION").to_string(),
        engine: artifact_cache::engine_fingerprint(engine),
        jobs,
        worlds: app
            .components
            .iter()
            .map(|(label, c)| (label.clone(), c.world.clone()))
            .collect(),
    };
    add(
        INDEX,
        &serde_json::to_vec_pretty(&index).context("encoding the bundle index")?,
    )?;
    let bytes = builder
        .into_inner()
        .context("finishing the bundle archive")?;

    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let temp = out.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&temp, &bytes).with_context(|| format!("writing {}", temp.display()))?;
    std::fs::rename(&temp, out)
        .with_context(|| format!("renaming {} to {}", temp.display(), out.display()))?;
    Ok(BuildOutcome {
        path: out.to_path_buf(),
        revision: app.revision.clone(),
        bytes: bytes.len() as u64,
    })
}
