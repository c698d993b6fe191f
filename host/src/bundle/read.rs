//! Opening a bundle: reading the archive's table of entries, its index, the
//! manifest and the components, rebuilding the [`App`] and verifying that the
//! revision matches the content. Graph blobs stay on disk until a job asks for
//! one; each is read once and checked against its digest before use.

use super::{
    FORMAT, GraphBlobs, INDEX, Index, MANIFEST, component_entry, digest, graph_entry,
    precompiled_entry,
};
use crate::app::App;
use crate::manifest::Manifest;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where an entry's bytes are in the archive.
#[derive(Debug, Clone, Copy)]
struct Span {
    offset: u64,
    size: u64,
}

/// The archive's blobs, read on demand.
#[derive(Debug)]
struct Blobs {
    path: PathBuf,
    spans: BTreeMap<String, Span>,
}

impl Blobs {
    /// The bytes of entry `name`, which must hash to `expected`; `what` says
    /// what the entry is for, in errors.
    fn get(&self, name: &str, expected: &str, what: &str) -> Result<Arc<Vec<u8>>> {
        let bundle = || format!("bundle `{}`", self.path.display());
        let span = self
            .spans
            .get(name)
            .with_context(|| format!("{} lacks `{name}` ({what})", bundle()))?;
        let mut file = File::open(&self.path).with_context(|| format!("opening {}", bundle()))?;
        file.seek(SeekFrom::Start(span.offset))
            .with_context(|| format!("reading `{name}` from {}", bundle()))?;
        let mut bytes = Vec::with_capacity(usize::try_from(span.size).unwrap_or(0));
        file.take(span.size)
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading `{name}` from {}", bundle()))?;
        if u64::try_from(bytes.len()).ok() != Some(span.size) || digest(&bytes) != expected {
            bail!(
                "{} is corrupt: `{name}` ({what}) does not match its digest",
                bundle()
            );
        }
        Ok(Arc::new(bytes))
    }
}

/// One bundled graph, composed and compiled, read from the bundle when asked.
#[derive(Debug, Clone)]
pub struct GraphArtifact {
    blobs: Arc<Blobs>,
    entry: GraphBlobs,
    what: String,
}

impl GraphArtifact {
    /// The composition (for hosts whose engine must compile it again).
    pub fn composed(&self) -> Result<Arc<Vec<u8>>> {
        self.blobs.get(
            &graph_entry(&self.entry.composed),
            &self.entry.composed,
            &self.what,
        )
    }

    /// `Component::serialize` of the composition.
    pub fn precompiled(&self) -> Result<Arc<Vec<u8>>> {
        self.blobs.get(
            &precompiled_entry(&self.entry.precompiled),
            &self.entry.precompiled,
            &format!("{}, compiled", self.what),
        )
    }
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
    blobs: Arc<Blobs>,
}

/// Whether `path` names a bundle file (rather than an app directory or manifest).
pub fn is_bundle(path: &Path) -> bool {
    path.is_file() && path.extension().is_some_and(|e| e == super::EXTENSION)
}

impl Bundle {
    /// Reads the bundle at `path`: its index, manifest and components (the
    /// revision is checked against them); graphs are read when used.
    pub fn open(path: &Path) -> Result<Bundle> {
        let what = || format!("bundle `{}`", path.display());
        let mut spans = BTreeMap::new();
        let mut eager: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let file = File::open(path).with_context(|| format!("opening {}", what()))?;
        let mut archive = tar::Archive::new(file);
        for entry in archive
            .entries_with_seek()
            .with_context(|| format!("reading {}", what()))?
        {
            let mut entry = entry.with_context(|| format!("reading {}", what()))?;
            let name = entry
                .path()
                .with_context(|| format!("reading {}", what()))?
                .to_string_lossy()
                .into_owned();
            if name.starts_with("graphs/") || name.starts_with("precompiled/") {
                spans.insert(
                    name,
                    Span {
                        offset: entry.raw_file_position(),
                        size: entry.size(),
                    },
                );
                continue;
            }
            let mut bytes = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
            entry
                .read_to_end(&mut bytes)
                .with_context(|| format!("reading `{name}` from {}", what()))?;
            eager.insert(name, bytes);
        }
        let index: Index = serde_json::from_slice(
            eager
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
            eager
                .remove(MANIFEST)
                .with_context(|| format!("{} has no `{MANIFEST}`", what()))?,
        )
        .with_context(|| format!("{}: `{MANIFEST}` is not UTF-8", what()))?;
        let manifest = Manifest::parse(&path.join(MANIFEST), manifest_text)?;
        let mut components = BTreeMap::new();
        for label in manifest.components.keys() {
            let bytes = eager
                .remove(&component_entry(label))
                .with_context(|| format!("{} holds no component `{label}`", what()))?;
            components.insert(label.clone(), bytes);
        }
        let app = App::from_parts(manifest, components, &index.worlds)?;
        if app.revision != index.revision {
            bail!(
                "{} is corrupt: its index says revision {}, its content hashes to {}",
                what(),
                index.revision,
                app.revision
            );
        }
        Ok(Bundle {
            path: path.to_path_buf(),
            index,
            app,
            blobs: Arc::new(Blobs {
                path: path.to_path_buf(),
                spans,
            }),
        })
    }

    /// The bundled graph of entry `label` in job `job` (an artifact key such
    /// as `_local` or `grouped:web`), if any. Nothing is read yet.
    pub fn graph(&self, job: &str, label: &str) -> Option<GraphArtifact> {
        let entry = self.index.jobs.get(job)?.get(label)?;
        Some(GraphArtifact {
            blobs: self.blobs.clone(),
            entry: entry.clone(),
            what: format!("the graph of `{label}` in job `{job}`"),
        })
    }

    /// Reads every graph of the bundle and checks it against its digest
    /// (what `amimono inspect` does).
    pub fn verify(&self) -> Result<()> {
        for (job, entries) in &self.index.jobs {
            for label in entries.keys() {
                if let Some(graph) = self.graph(job, label) {
                    graph.composed()?;
                    graph.precompiled()?;
                }
            }
        }
        Ok(())
    }
}

impl crate::job::PrecompiledGraph for GraphArtifact {
    fn composed(&self) -> Result<Arc<Vec<u8>>> {
        GraphArtifact::composed(self)
    }

    fn precompiled(&self) -> Result<Arc<Vec<u8>>> {
        GraphArtifact::precompiled(self)
    }
}

/// A job finds the bundle's graphs through this lookup (the job module
/// does not know bundles).
impl crate::job::GraphLookup for Bundle {
    fn graph(&self, key: &str, root: &str) -> Option<Arc<dyn crate::job::PrecompiledGraph>> {
        Bundle::graph(self, key, root).map(|g| Arc::new(g) as Arc<dyn crate::job::PrecompiledGraph>)
    }
}
