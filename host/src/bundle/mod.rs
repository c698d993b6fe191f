//! The atomic bundle: one file holding everything a deployment runs — the
//! manifest, every component, each job's composed graphs and their compiled
//! form for the host's engine — under one revision (the content hash of the
//! manifest and components). `amimono build` writes it ([`write`]); `amimono
//! run <bundle>` and `amimono inspect` read it ([`read`]).
//!
//! Layout (a tar archive):
//! ```text
//! amimono-bundle.json            index: format, app, revision, engine fingerprint, jobs → entries, digests
//! amimono.toml                   the manifest, as written
//! components/<label>.wasm        each component, as built
//! graphs/<job>/<label>.wasm      the composed graph of each entry component of each job (and `_local`)
//! precompiled/<job>/<label>.cwasm  the same, compiled (`Component::serialize`)
//! ```

mod read;
mod write;

pub use read::{Bundle, GraphArtifact, is_bundle};
pub use write::{BuildOutcome, build_components, write_bundle};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// File extension of bundles.
pub const EXTENSION: &str = "amimono";
/// Version of the bundle layout.
pub const FORMAT: u32 = 1;
/// Name of the index entry.
const INDEX: &str = "amimono-bundle.json";
/// Name of the manifest entry.
const MANIFEST: &str = "amimono.toml";

/// The bundle's index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Index {
    /// Layout version ([`FORMAT`]).
    pub format: u32,
    /// The app's name.
    pub app: String,
    /// The app's revision.
    pub revision: String,
    /// Version of the `amimono` that built the bundle.
    pub amimono_version: String,
    /// Fingerprint of the engine the graphs were precompiled for.
    pub engine: String,
    /// Per job (and `_local`): the entry components whose graphs are bundled.
    pub jobs: BTreeMap<String, Vec<String>>,
    /// SHA-256 of every graph and precompiled entry, checked on open: a
    /// damaged precompiled artifact must never reach `Component::deserialize`.
    pub digests: BTreeMap<String, String>,
}

fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn component_entry(label: &str) -> String {
    format!("components/{label}.wasm")
}

fn graph_entry(job: &str, label: &str) -> String {
    format!("graphs/{job}/{label}.wasm")
}

fn precompiled_entry(job: &str, label: &str) -> String {
    format!("precompiled/{job}/{label}.cwasm")
}
