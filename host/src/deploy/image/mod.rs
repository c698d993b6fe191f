//! `amimono image <bundle>`: an OCI image archive of the running `amimono`
//! binary and a bundle, written by this code alone — no base image, no
//! registry, no container engine.
//!
//! The image has three layers, so a new bundle for the same binary changes
//! only the last one:
//! 1. the loader and shared libraries the binary links (it is the glibc
//!    build; [`elf`] finds them), `/data` (the declared volume for durable
//!    data, owned by the image's user) and `/tmp`, both mode 1777: a tmpfs
//!    mounted there takes the mount point's mode under runc, and another
//!    user (OpenShift's random uids) can write there too;
//! 2. the binary at `/usr/local/bin/amimono`;
//! 3. the bundle at `/app/<app>.amimono`.
//!
//! The entrypoint is `amimono run /app/<app>.amimono`: `AMIMONO_JOB` picks
//! the job, `AMIMONO_BINDINGS` the bindings file, like any `amimono run`.
//! It runs as `65532:65532` and writes nowhere but `/data`
//! (`AMIMONO_DATA_DIR`) and the compile cache under `/tmp`
//! (`AMIMONO_CACHE_DIR`; only used when a precompiled graph does not fit the
//! node's CPU, and skipped with a warning when not writable), so a read-only
//! root filesystem works.
//!
//! The archive ([`archive`]) is both an OCI image layout and a `docker save`
//! archive (`manifest.json`), so `podman load`, `docker load`, `kind load
//! image-archive` and `skopeo copy oci-archive:` take it. It is reproducible:
//! the same bundle and binary give the same bytes, hence the same manifest
//! digest ([`layers`], [`spec`]: sorted entries, mtime 0, fixed owners,
//! canonical JSON, a fixed creation time).

mod archive;
mod elf;
mod layers;
mod spec;

use crate::bundle::{Bundle, is_bundle};
use crate::deploy::ImageRef;
use anyhow::{Context, Result, bail};
use archive::{Archive, BlobContent};
use layers::{Blob, Layer, Owner, ROOT, Source};
use std::path::{Path, PathBuf};

/// Where the binary is in the image.
pub const BINARY_PATH: &str = "/usr/local/bin/amimono";
/// The directory holding the bundle.
pub const APP_DIR: &str = "/app";
/// The directory of durable data (`AMIMONO_DATA_DIR`), a volume.
pub const DATA_DIR: &str = "/data";
/// The compile cache (`AMIMONO_CACHE_DIR`).
pub const CACHE_DIR: &str = "/tmp/amimono-cache";
/// The user and group the image runs as (distroless's `nonroot`).
pub const USER: Owner = Owner {
    uid: 65532,
    gid: 65532,
};
/// `PATH` in the image.
const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// What goes into an image.
#[derive(Debug, Clone)]
pub struct ImageContents {
    /// The app's name.
    pub app: String,
    /// The app's revision.
    pub revision: String,
    /// The `amimono` binary.
    pub binary: PathBuf,
    /// Its loader and libraries.
    pub runtime: elf::Runtime,
    /// The bundle file.
    pub bundle: PathBuf,
}

/// An image archive written.
#[derive(Debug, Clone)]
pub struct WrittenImage {
    /// Where.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// The manifest's digest: the image's identity (`podman images
    /// --digests`, a registry's `@sha256:…`).
    pub manifest_digest: String,
    /// The image's full name (`localhost/hello:61a23040a4f8817b`).
    pub name: String,
}

/// Writes the image of the bundle at `bundle` to `out` (default
/// `target/amimono/<app>-image.tar`), named `tag` (default
/// `localhost/<app>:<revision>`; see [`parse_tag`]). `engine_fingerprint` is this binary's
/// serving engine's: a bundle built for another engine gets a warning (its
/// graphs would be compiled at every start of the image).
pub fn write_image(
    bundle: &Path,
    out: Option<&Path>,
    tag: Option<ImageRef>,
    engine_fingerprint: &str,
    progress: &mut dyn FnMut(String),
) -> Result<WrittenImage> {
    let opened = open_bundle(bundle)?;
    let (app, revision) = (opened.app.name().to_string(), opened.index.revision.clone());
    if opened.index.engine != engine_fingerprint {
        progress(format!(
            "warning: `{}` was built by amimono {} for another engine (version, settings or CPU features): where its precompiled graphs do not fit, the image's containers compile them at start; rebuild it with this amimono (`amimono build`) for the fast start",
            bundle.display(),
            opened.index.amimono_version
        ));
    }
    let tag = match tag {
        Some(tag) => tag,
        None => default_tag(&app, &revision)?,
    };
    let out = out.map_or_else(|| default_image_path(&app), Path::to_path_buf);
    let binary = std::env::current_exe().context("finding the running amimono binary")?;
    let runtime = elf::runtime_of(&binary)?;
    progress(format!(
        "image of `{app}` (revision {revision}): {}, loader {}, {} libraries",
        binary.display(),
        runtime
            .loader
            .as_ref()
            .map_or("none (static binary)", |l| l.image_path.as_str()),
        runtime.libraries.len(),
    ));
    let contents = ImageContents {
        app,
        revision,
        binary,
        runtime,
        bundle: bundle.to_path_buf(),
    };
    write_archive(&contents, &tag, &out)
}

/// `--tag`'s value as an image name: a reference with a tag, not a digest.
pub fn parse_tag(text: &str) -> Result<ImageRef> {
    let tag = ImageRef::parse(text)?;
    if tag.digest().is_some() {
        bail!(
            "`{text}` names a digest: an image being written has no digest yet; give `--tag` a name and tag, e.g. `localhost/hello:dev`"
        );
    }
    Ok(tag)
}

/// `localhost/<app>:<revision>`.
fn default_tag(app: &str, revision: &str) -> Result<ImageRef> {
    Ok(ImageRef::parse(&format!("localhost/{app}:{revision}"))?)
}

/// `target/amimono/<app>-image.tar`.
pub fn default_image_path(app: &str) -> PathBuf {
    Path::new("target")
        .join("amimono")
        .join(format!("{app}-image.tar"))
}

/// Opens and checks the bundle (every graph against its digest): an image
/// of a damaged bundle would fail only when deployed.
fn open_bundle(path: &Path) -> Result<Bundle> {
    let rebuild = "build one with `amimono build <app>`";
    if !is_bundle(path) {
        bail!(
            "`{}` is not a bundle file (`.{}`): {rebuild}",
            path.display(),
            crate::bundle::EXTENSION
        );
    }
    let unusable = || format!("`{}` is not a usable bundle: {rebuild}", path.display());
    let bundle = Bundle::open(path).with_context(unusable)?;
    bundle.verify().with_context(unusable)?;
    Ok(bundle)
}

/// Writes the image of `contents` named `tag` to `out`.
pub fn write_archive(contents: &ImageContents, tag: &ImageRef, out: &Path) -> Result<WrittenImage> {
    let layers = image_layers(contents)?;
    let measured = layers
        .iter()
        .map(|layer| Ok((layer.measure()?, layer.comment.clone())))
        .collect::<Result<Vec<_>>>()?;
    let blobs: Vec<Blob> = measured.iter().map(|(b, _)| b.clone()).collect();
    let config = spec::config(&run_config(contents), &measured)?;
    let config_blob = Blob::of(&config);
    let manifest = spec::manifest(&config_blob, &blobs)?;
    let manifest_blob = Blob::of(&manifest);

    let mut archive = Archive::default();
    archive.blob(&config_blob, BlobContent::Json(config));
    archive.blob(&manifest_blob, BlobContent::Json(manifest));
    for (layer, blob) in layers.iter().zip(&blobs) {
        archive.blob(blob, BlobContent::Layer(layer));
    }
    archive.file("oci-layout", spec::OCI_LAYOUT.as_bytes().to_vec());
    archive.file("index.json", spec::index(&manifest_blob, tag)?);
    archive.file(
        "manifest.json",
        spec::docker_manifest(&config_blob, &blobs, tag)?,
    );
    let bytes = archive.write(out)?;
    Ok(WrittenImage {
        path: out.to_path_buf(),
        bytes,
        manifest_digest: manifest_blob.digest,
        name: spec::full_name(tag),
    })
}

/// The bundle's path in the image.
fn bundle_in_image(app: &str) -> String {
    format!("{APP_DIR}/{app}.{}", crate::bundle::EXTENSION)
}

fn image_layers(contents: &ImageContents) -> Result<Vec<Layer>> {
    let mut system = Layer::new("the loader and libraries of amimono, /data and /tmp");
    system.dir(DATA_DIR, 0o1777, USER)?;
    system.dir("/tmp", 0o1777, ROOT)?;
    let runtime = &contents.runtime;
    for file in runtime.loader.iter().chain(&runtime.libraries) {
        system.file(&file.image_path, Source::path(&file.source)?, 0o755)?;
    }
    let mut binary = Layer::new(format!("amimono {}", env!("CARGO_PKG_VERSION")));
    binary.file(BINARY_PATH, Source::path(&contents.binary)?, 0o755)?;
    let mut app = Layer::new(format!(
        "the bundle of `{}` at revision {}",
        contents.app, contents.revision
    ));
    app.file(
        &bundle_in_image(&contents.app),
        Source::path(&contents.bundle)?,
        0o644,
    )?;
    Ok(vec![system, binary, app])
}

fn run_config(contents: &ImageContents) -> spec::RunConfig {
    let mut env = vec![
        format!("PATH={PATH}"),
        format!("{}={DATA_DIR}", crate::cli::DATA_DIR_ENV),
        format!("AMIMONO_CACHE_DIR={CACHE_DIR}"),
    ];
    if !contents.runtime.extra_library_dirs.is_empty() {
        env.push(format!(
            "LD_LIBRARY_PATH={}",
            contents.runtime.extra_library_dirs.join(":")
        ));
    }
    spec::RunConfig {
        app: contents.app.clone(),
        revision: contents.revision.clone(),
        user: format!("{}:{}", USER.uid, USER.gid),
        entrypoint: vec![
            BINARY_PATH.to_string(),
            "run".to_string(),
            bundle_in_image(&contents.app),
        ],
        env,
        volumes: vec![DATA_DIR.to_string()],
    }
}

#[cfg(test)]
mod tests;
