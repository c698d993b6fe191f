//! Opening a bundle: reading the archive, checking its index, rebuilding the
//! [`App`] from the stored manifest and components, and verifying that the
//! revision matches the content.

use super::{
    FORMAT, INDEX, Index, MANIFEST, component_entry, digest, graph_entry, precompiled_entry,
};
use crate::app::App;
use crate::manifest::Manifest;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One bundled graph: composed, and compiled.
#[derive(Debug, Clone)]
pub struct GraphArtifact {
    /// The composition (for hosts whose engine needs to compile it again).
    pub composed: Arc<Vec<u8>>,
    /// `Component::serialize` of the composition.
    pub precompiled: Arc<Vec<u8>>,
}

/// An opened bundle.
#[derive(Debug)]
pub struct Bundle {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its index.
    pub index: Index,
    /// The app it holds.
    pub app: App,
    graphs: BTreeMap<(String, String), GraphArtifact>,
}

/// Whether `path` names a bundle file (rather than an app directory or manifest).
pub fn is_bundle(path: &Path) -> bool {
    path.is_file() && path.extension().is_some_and(|e| e == super::EXTENSION)
}

impl Bundle {
    /// Reads and checks the bundle at `path`.
    pub fn open(path: &Path) -> Result<Bundle> {
        let file = std::fs::File::open(path)
            .with_context(|| format!("opening bundle `{}`", path.display()))?;
        let mut entries: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut archive = tar::Archive::new(std::io::BufReader::new(file));
        for entry in archive
            .entries()
            .with_context(|| format!("reading bundle `{}`", path.display()))?
        {
            let mut entry =
                entry.with_context(|| format!("reading bundle `{}`", path.display()))?;
            let name = entry
                .path()
                .with_context(|| format!("reading bundle `{}`", path.display()))?
                .to_string_lossy()
                .into_owned();
            let mut bytes = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
            entry
                .read_to_end(&mut bytes)
                .with_context(|| format!("reading `{name}` from bundle `{}`", path.display()))?;
            entries.insert(name, bytes);
        }
        let what = || format!("bundle `{}`", path.display());
        let index: Index = serde_json::from_slice(
            entries
                .get(INDEX)
                .with_context(|| format!("{} has no `{INDEX}`: not an amimono bundle", what()))?,
        )
        .with_context(|| format!("{}: malformed `{INDEX}`", what()))?;
        if index.format != FORMAT {
            bail!(
                "{} has layout version {}, this amimono reads version {FORMAT}: rebuild it with `amimono build`",
                what(),
                index.format
            );
        }
        let manifest_text = String::from_utf8(
            entries
                .remove(MANIFEST)
                .with_context(|| format!("{} has no `{MANIFEST}`", what()))?,
        )
        .with_context(|| format!("{}: `{MANIFEST}` is not UTF-8", what()))?;
        let manifest = Manifest::parse(&path.join(MANIFEST), manifest_text)?;
        let mut components = BTreeMap::new();
        for label in manifest.components.keys() {
            let bytes = entries
                .remove(&component_entry(label))
                .with_context(|| format!("{} holds no component `{label}`", what()))?;
            components.insert(label.clone(), bytes);
        }
        let app = App::from_parts(manifest, components)?;
        if app.revision != index.revision {
            bail!(
                "{} is corrupt: its index says revision {}, its content hashes to {}",
                what(),
                index.revision,
                app.revision
            );
        }
        let mut take = |name: String| -> Result<Vec<u8>> {
            let bytes = entries
                .remove(&name)
                .with_context(|| format!("{} lacks `{name}`", what()))?;
            match index.digests.get(&name) {
                Some(expected) if *expected == digest(&bytes) => Ok(bytes),
                Some(_) => bail!("{} is corrupt: `{name}` does not match its digest", what()),
                None => bail!("{} is corrupt: `{name}` has no digest", what()),
            }
        };
        let mut graphs = BTreeMap::new();
        for (job, labels) in &index.jobs {
            for label in labels {
                let composed = take(graph_entry(job, label))?;
                let precompiled = take(precompiled_entry(job, label))?;
                graphs.insert(
                    (job.clone(), label.clone()),
                    GraphArtifact {
                        composed: Arc::new(composed),
                        precompiled: Arc::new(precompiled),
                    },
                );
            }
        }
        Ok(Bundle {
            path: path.to_path_buf(),
            index,
            app,
            graphs,
        })
    }

    /// The bundled graph of entry `label` in job `job`, if any.
    pub fn graph(&self, job: &str, label: &str) -> Option<&GraphArtifact> {
        self.graphs.get(&(job.to_string(), label.to_string()))
    }
}
