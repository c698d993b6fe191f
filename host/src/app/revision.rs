//! The app revision: a content hash of the manifest and every component's
//! bytes. Two hosts with the same revision run the same code.

use super::LoadedComponent;
use crate::manifest::Manifest;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Hex digits kept from the SHA-256 digest.
const REVISION_LEN: usize = 16;

/// Hashes the manifest text and each component (label and bytes, in label order).
pub fn compute(manifest: &Manifest, components: &BTreeMap<String, LoadedComponent>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"amimono-revision-v1\0");
    hasher.update((manifest.text.len() as u64).to_le_bytes());
    hasher.update(manifest.text.as_bytes());
    for (label, component) in components {
        hasher.update((label.len() as u64).to_le_bytes());
        hasher.update(label.as_bytes());
        hasher.update(Sha256::digest(component.bytes.as_slice()));
    }
    let mut hex = hex::encode(hasher.finalize());
    hex.truncate(REVISION_LEN);
    hex
}
