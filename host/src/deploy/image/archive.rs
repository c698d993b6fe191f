//! The image archive: one tar holding the OCI image layout (`oci-layout`,
//! `index.json`, `blobs/sha256/<hex>`) and, beside it, Docker's
//! `manifest.json` pointing at the same blobs, as `docker save` writes it
//! since Docker 25. Entries are sorted, with mtime 0 and root owners; the
//! file is written beside its destination and renamed into place.

use super::layers::{Blob, Layer};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// What one blob of the archive holds.
pub enum BlobContent<'a> {
    /// JSON (config, manifest), in memory.
    Json(Vec<u8>),
    /// A layer, written from its description.
    Layer(&'a Layer),
}

/// The archive's contents: blobs by digest, and the top-level files.
#[derive(Default)]
pub struct Archive<'a> {
    blobs: BTreeMap<String, (Blob, BlobContent<'a>)>,
    files: BTreeMap<String, Vec<u8>>,
}

impl<'a> Archive<'a> {
    /// Adds a blob (once per digest).
    pub fn blob(&mut self, blob: &Blob, content: BlobContent<'a>) {
        self.blobs
            .entry(blob.digest.clone())
            .or_insert((blob.clone(), content));
    }

    /// Adds a top-level file (`index.json`, `manifest.json`, `oci-layout`).
    pub fn file(&mut self, name: &str, bytes: Vec<u8>) {
        self.files.insert(name.to_string(), bytes);
    }

    /// Writes the archive to `out` atomically; returns its size in bytes.
    pub fn write(&self, out: &Path) -> Result<u64> {
        let dir = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let name = out
            .file_name()
            .with_context(|| format!("`{}` names no file", out.display()))?;
        let temp = dir.join(format!(
            ".{}.tmp{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let written = self.write_file(&temp).and_then(|size| {
            std::fs::rename(&temp, out)
                .with_context(|| format!("renaming {} to {}", temp.display(), out.display()))?;
            Ok(size)
        });
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written
    }

    fn write_file(&self, path: &Path) -> Result<u64> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut builder = tar::Builder::new(BufWriter::new(file));
        let writing = || format!("writing {}", path.display());
        for dir in ["blobs/", "blobs/sha256/"] {
            let mut header = header(tar::EntryType::Directory, 0o755, 0);
            builder
                .append_data(&mut header, dir, std::io::empty())
                .with_context(writing)?;
        }
        for (blob, content) in self.blobs.values() {
            let mut header = header(tar::EntryType::Regular, 0o644, blob.size);
            match content {
                BlobContent::Json(bytes) => {
                    if Blob::of(bytes) != *blob {
                        bail!("internal error: a JSON blob does not match its digest");
                    }
                    builder
                        .append_data(&mut header, blob.layout_path(), bytes.as_slice())
                        .with_context(writing)?;
                }
                BlobContent::Layer(layer) => {
                    // The header first, then the layer streamed into the
                    // archive, then the padding to the next 512-byte block.
                    header.set_path(blob.layout_path()).with_context(writing)?;
                    header.set_cksum();
                    let out = builder.get_mut();
                    out.write_all(header.as_bytes()).with_context(writing)?;
                    layer.write_checked(out, blob)?;
                    let padding = (512 - blob.size % 512) % 512;
                    out.write_all(&vec![0; padding as usize])
                        .with_context(writing)?;
                }
            }
        }
        for (name, bytes) in &self.files {
            let mut header = header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
            builder
                .append_data(&mut header, name, bytes.as_slice())
                .with_context(writing)?;
        }
        let file = builder
            .into_inner()
            .with_context(writing)?
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(writing)?;
        file.sync_all().with_context(writing)?;
        Ok(file.metadata().with_context(writing)?.len())
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header
}
