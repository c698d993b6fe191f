//! A disk cache of compiled components, keyed by the SHA-256 of the component
//! bytes and the engine's compatibility hash, so a restart (or the next test)
//! does not compile the same graph again. Entries are written atomically
//! (temp file + rename); a corrupt or stale entry is recompiled, never trusted
//! blindly: wasmtime checks the header and engine settings on load.

use crate::wasmtime_error::IntoAnyhow;
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where compiled artifacts live: `$AMIMONO_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/amimono`, else `~/.cache/amimono`. `None` disables the cache.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("AMIMONO_CACHE_DIR") {
        return (!dir.is_empty()).then(|| PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(dir).join("amimono"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache").join("amimono"))
}

/// Loads a component precompiled by `Component::serialize` (from a bundle),
/// or `None` when it does not fit `engine` (the caller then compiles).
pub fn load_precompiled(engine: &Engine, precompiled: &[u8], what: &str) -> Option<Component> {
    // SAFETY: the bytes come from a bundle written by `amimono build`
    // (`Component::serialize`); wasmtime checks the header and the engine's
    // compatibility and fails cleanly on a mismatch. A bundle is trusted like
    // the binary that runs it: deploy only bundles you built.
    #[allow(unsafe_code)]
    match unsafe { Component::deserialize(engine, precompiled) } {
        Ok(component) => Some(component),
        Err(e) => {
            tracing::warn!(what, error = %e, "the bundle's precompiled artifact does not fit this host's engine; compiling instead");
            None
        }
    }
}

/// Compiles `bytes` for `engine`, or loads the compiled form from the cache.
pub fn compile(engine: &Engine, bytes: &[u8], what: &str) -> Result<Component> {
    let Some(dir) = cache_dir() else {
        return Component::new(engine, bytes)
            .anyhow()
            .with_context(|| format!("compiling {what}"));
    };
    let path = dir.join(format!("{}.cwasm", cache_key(engine, bytes)));
    if path.exists() {
        // SAFETY: the file was written by `Component::serialize` of this
        // cache (its name is the hash of the source and of the engine's
        // settings) in a directory owned by the user; wasmtime further checks
        // its header and engine compatibility and fails cleanly on mismatch.
        #[allow(unsafe_code)]
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unusable cached artifact");
            }
        }
    }
    let started = std::time::Instant::now();
    let component = Component::new(engine, bytes)
        .anyhow()
        .with_context(|| format!("compiling {what}"))?;
    tracing::debug!(what, ms = started.elapsed().as_millis() as u64, "compiled");
    if let Err(e) = store(&dir, &path, &component) {
        tracing::warn!(dir = %dir.display(), error = %format!("{e:#}"), "cannot write compiled artifact to the cache");
    }
    Ok(component)
}

fn store(dir: &std::path::Path, path: &std::path::Path, component: &Component) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let bytes = component
        .serialize()
        .anyhow()
        .context("serializing the compiled component")?;
    let temp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&temp, bytes).with_context(|| format!("writing {}", temp.display()))?;
    std::fs::rename(&temp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// A hex fingerprint of the settings that make compiled code loadable by
/// `engine` (wasmtime's precompile compatibility hash, and this host's version).
pub fn engine_fingerprint(engine: &Engine) -> String {
    hex::encode(engine_hasher(engine).0.finalize())
}

struct Sha(Sha256);

impl Hasher for Sha {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn engine_hasher(engine: &Engine) -> Sha {
    let mut hasher = Sha(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.update(env!("CARGO_PKG_VERSION").as_bytes());
    hasher
}

fn cache_key(engine: &Engine, bytes: &[u8]) -> String {
    let mut hasher = engine_hasher(engine);
    hasher.0.update(Sha256::digest(bytes));
    hex::encode(hasher.0.finalize())
}
