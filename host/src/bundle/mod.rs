//! The atomic bundle: one file holding everything a deployment runs — the
//! manifest, every component, each job's composed graphs and their compiled
//! form for the host's engine — under one revision (the content hash of the
//! manifest and components). `amimono build` writes it ([`write`]); `amimono
//! run <bundle>` and `amimono inspect` read it ([`read`]).
//!
//! Layout (a tar archive):
//! ```text
//! amimono-bundle.json          index: format, app, revision, engine fingerprint, job → entry → blobs
//! amimono.toml                 the manifest, as written
//! components/<label>.wasm      each component, as built
//! graphs/<blake3>.wasm         each composed graph (of every entry of every job, `_local` and layout)
//! precompiled/<blake3>.cwasm   each graph compiled (`Component::serialize`)
//! ```
//! Graphs are stored once per content (the same graph often appears in
//! several layouts) and named by their BLAKE3 digest. Opening a bundle reads
//! the index, the manifest and the components; a graph is read and checked
//! against its digest only when a job uses it, so a job starts without
//! reading or hashing the graphs of other jobs.

mod read;
mod write;

pub use read::{Bundle, is_bundle};
pub use write::{build_components, write_bundle};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// File extension of bundles.
pub const EXTENSION: &str = "amimono";
/// Version of the bundle layout.
pub const FORMAT: u32 = 2;
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
    /// Per job (`_local`, and `<layout>:<job>` for named layouts): each
    /// entry component's bundled graph.
    pub jobs: BTreeMap<String, BTreeMap<String, GraphBlobs>>,
    /// Each component's imports and exports, read at build time so that
    /// opening the bundle does not parse every component again.
    pub worlds: BTreeMap<String, crate::app::WorldShape>,
}

/// The blobs of one bundled graph, by digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphBlobs {
    /// BLAKE3 of the composed graph (`graphs/<digest>.wasm`).
    pub composed: String,
    /// BLAKE3 of the compiled graph (`precompiled/<digest>.cwasm`).
    pub precompiled: String,
}

/// The digest that names a blob and checks it: BLAKE3, hex. A damaged
/// precompiled artifact must never reach `Component::deserialize`.
fn digest(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

fn component_entry(label: &str) -> String {
    format!("components/{label}.wasm")
}

fn graph_entry(digest: &str) -> String {
    format!("graphs/{digest}.wasm")
}

fn precompiled_entry(digest: &str) -> String {
    format!("precompiled/{digest}.cwasm")
}
