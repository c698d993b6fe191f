//! Image layers as reproducible tar archives: entries sorted by path, every
//! parent directory present, mtime 0, fixed owners and modes, no user or
//! group names. A layer is described first ([`Layer`]) and written twice:
//! once into a hash to learn its digest and size (which name its blob in the
//! archive), once into the archive; the second write is checked against the
//! first, so a file changing in between cannot produce a blob whose name
//! lies. Files are streamed, never read whole into memory.

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// A content-addressed blob: `sha256:<hex>` and its size in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
}

impl Blob {
    /// The blob of `bytes`.
    pub fn of(bytes: &[u8]) -> Blob {
        Blob {
            digest: format!("sha256:{}", hex::encode(Sha256::digest(bytes))),
            size: bytes.len() as u64,
        }
    }

    /// The hex part of the digest.
    pub fn hex(&self) -> &str {
        self.digest.strip_prefix("sha256:").unwrap_or(&self.digest)
    }

    /// Its path in an OCI image layout: `blobs/sha256/<hex>`.
    pub fn layout_path(&self) -> String {
        format!("blobs/sha256/{}", self.hex())
    }
}

/// Owner of an entry: user and group id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u64,
    /// Group id.
    pub gid: u64,
}

/// root:root.
pub const ROOT: Owner = Owner { uid: 0, gid: 0 };

/// Where a file's bytes come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A file of the host, whose size was taken when it was added.
    Path { path: PathBuf, size: u64 },
    /// Bytes in memory.
    #[cfg_attr(not(test), allow(dead_code))]
    Bytes(Vec<u8>),
}

impl Source {
    /// The host file at `path` (its size is read now).
    pub fn path(path: &Path) -> Result<Source> {
        let metadata =
            std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
        if !metadata.is_file() {
            bail!("{} is not a regular file", path.display());
        }
        Ok(Source::Path {
            path: path.to_path_buf(),
            size: metadata.len(),
        })
    }

    fn size(&self) -> u64 {
        match self {
            Source::Path { size, .. } => *size,
            Source::Bytes(bytes) => bytes.len() as u64,
        }
    }

    fn reader(&self) -> Result<Box<dyn Read + '_>> {
        Ok(match self {
            Source::Path { path, size } => {
                let file =
                    File::open(path).with_context(|| format!("opening {}", path.display()))?;
                Box::new(Exact {
                    inner: file.take(*size),
                    remaining: *size,
                })
            }
            Source::Bytes(bytes) => Box::new(bytes.as_slice()),
        })
    }
}

#[derive(Debug, Clone)]
enum Kind {
    Dir,
    File(Source),
}

#[derive(Debug, Clone)]
struct Entry {
    kind: Kind,
    mode: u32,
    owner: Owner,
}

/// One layer: what it is for and its entries by path (relative, no `/`
/// in front).
#[derive(Debug, Clone)]
pub struct Layer {
    /// What the layer holds, for the image's history.
    pub comment: String,
    entries: BTreeMap<String, Entry>,
}

impl Layer {
    /// An empty layer.
    pub fn new(comment: impl Into<String>) -> Layer {
        Layer {
            comment: comment.into(),
            entries: BTreeMap::new(),
        }
    }

    /// Adds directory `path` (absolute in the image) and its parents.
    pub fn dir(&mut self, path: &str, mode: u32, owner: Owner) -> Result<()> {
        let key = relative(path)?;
        self.parents(&key);
        self.entries.insert(
            key,
            Entry {
                kind: Kind::Dir,
                mode,
                owner,
            },
        );
        Ok(())
    }

    /// Adds file `path` (absolute in the image), owned by root, and its
    /// parent directories (root, 0755) where not added already.
    pub fn file(&mut self, path: &str, source: Source, mode: u32) -> Result<()> {
        let key = relative(path)?;
        self.parents(&key);
        self.entries.insert(
            key,
            Entry {
                kind: Kind::File(source),
                mode,
                owner: ROOT,
            },
        );
        Ok(())
    }

    fn parents(&mut self, key: &str) {
        let mut parent = Path::new(key).parent();
        while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
            self.entries
                .entry(dir.to_string_lossy().into_owned())
                .or_insert(Entry {
                    kind: Kind::Dir,
                    mode: 0o755,
                    owner: ROOT,
                });
            parent = dir.parent();
        }
    }

    /// The layer's digest and size, without writing it anywhere.
    pub fn measure(&self) -> Result<Blob> {
        let mut sink = Hashing::new(io::sink());
        self.write(&mut sink)?;
        Ok(sink.blob())
    }

    /// Writes the layer into `out`, which must come out as `expected`
    /// (what [`Layer::measure`] said).
    pub fn write_checked(&self, out: &mut dyn Write, expected: &Blob) -> Result<()> {
        let mut hashing = Hashing::new(out);
        self.write(&mut hashing)?;
        let written = hashing.blob();
        if written != *expected {
            bail!(
                "the layer `{}` changed while the image was written (a file of it was modified): write the image again",
                self.comment
            );
        }
        Ok(())
    }

    fn write(&self, out: &mut dyn Write) -> Result<()> {
        let mut builder = tar::Builder::new(out);
        for (path, entry) in &self.entries {
            let mut header = tar::Header::new_gnu();
            header.set_mode(entry.mode);
            header.set_uid(entry.owner.uid);
            header.set_gid(entry.owner.gid);
            header.set_mtime(0);
            match &entry.kind {
                Kind::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    builder.append_data(&mut header, format!("{path}/"), io::empty())
                }
                Kind::File(source) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(source.size());
                    builder.append_data(&mut header, path, source.reader()?)
                }
            }
            .with_context(|| format!("writing `/{path}` into layer `{}`", self.comment))?;
        }
        builder
            .into_inner()
            .with_context(|| format!("finishing layer `{}`", self.comment))?;
        Ok(())
    }
}

/// `path` without its leading `/`, refused unless it is absolute and plain.
fn relative(path: &str) -> Result<String> {
    match path.strip_prefix('/') {
        Some(rest) if rest.split('/').all(|c| !matches!(c, "" | "." | "..")) => {
            Ok(rest.to_string())
        }
        _ => bail!("`{path}` is not a plain absolute path for the image"),
    }
}

/// A writer that hashes and counts what passes through it.
pub struct Hashing<W> {
    inner: W,
    sha: Sha256,
    size: u64,
}

impl<W: Write> Hashing<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Hashing<W> {
        Hashing {
            inner,
            sha: Sha256::new(),
            size: 0,
        }
    }

    /// What was written so far.
    pub fn blob(&self) -> Blob {
        Blob {
            digest: format!("sha256:{}", hex::encode(self.sha.clone().finalize())),
            size: self.size,
        }
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader of exactly `remaining` bytes: a file that shrank since its size
/// was taken is an error, not a short entry that would corrupt the tar.
struct Exact<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.remaining > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was being written",
            ));
        }
        self.remaining = self.remaining.saturating_sub(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Path, type, mode, uid, gid, mtime and content of a tar's entry.
    type Listed = (String, tar::EntryType, u32, u64, u64, u64, Vec<u8>);

    fn entries(bytes: &[u8]) -> Vec<Listed> {
        let mut archive = tar::Archive::new(bytes);
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let header = entry.header().clone();
                let mut content = Vec::new();
                entry.read_to_end(&mut content).unwrap();
                (
                    entry.path().unwrap().to_string_lossy().into_owned(),
                    header.entry_type(),
                    header.mode().unwrap(),
                    header.uid().unwrap(),
                    header.gid().unwrap(),
                    header.mtime().unwrap(),
                    content,
                )
            })
            .collect()
    }

    #[test]
    fn a_layer_is_sorted_with_parents_fixed_metadata_and_its_measured_digest() {
        let mut layer = Layer::new("test");
        layer
            .file("/usr/local/bin/tool", Source::Bytes(b"#!x".to_vec()), 0o755)
            .unwrap();
        layer.dir("/data", 0o755, Owner { uid: 7, gid: 8 }).unwrap();
        layer.dir("/tmp", 0o1777, ROOT).unwrap();
        let blob = layer.measure().unwrap();
        let mut bytes = Vec::new();
        layer.write_checked(&mut bytes, &blob).unwrap();
        assert_eq!(Blob::of(&bytes), blob);
        let listed = entries(&bytes);
        let names: Vec<_> = listed.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "data/",
                "tmp/",
                "usr/",
                "usr/local/",
                "usr/local/bin/",
                "usr/local/bin/tool"
            ]
        );
        assert_eq!(listed[0].2, 0o755);
        assert_eq!((listed[0].3, listed[0].4), (7, 8));
        assert_eq!(listed[1].2, 0o1777);
        let tool = &listed[5];
        assert_eq!(tool.1, tar::EntryType::Regular);
        assert_eq!((tool.2, tool.3, tool.4, tool.5), (0o755, 0, 0, 0));
        assert_eq!(tool.6, b"#!x");
        assert!(listed.iter().all(|e| e.5 == 0));
    }

    #[test]
    fn a_file_changed_between_measuring_and_writing_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"before").unwrap();
        let mut layer = Layer::new("changing");
        layer
            .file("/f", Source::path(&path).unwrap(), 0o644)
            .unwrap();
        let blob = layer.measure().unwrap();
        std::fs::write(&path, b"after!").unwrap();
        let error = layer.write_checked(&mut Vec::new(), &blob).unwrap_err();
        assert!(error.to_string().contains("changed while"), "{error:#}");
        std::fs::write(&path, b"short").unwrap();
        let error = layer.write_checked(&mut Vec::new(), &blob).unwrap_err();
        assert!(format!("{error:#}").contains("shrank"), "{error:#}");
    }

    #[test]
    fn image_paths_must_be_plain_and_absolute() {
        assert_eq!(relative("/app/x.amimono").unwrap(), "app/x.amimono");
        for bad in ["", "/", "app", "/a/../b", "/a/./b", "/a/", "//a"] {
            assert!(relative(bad).is_err(), "{bad}");
        }
    }
}
