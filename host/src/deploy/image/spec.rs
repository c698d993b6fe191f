//! The image's JSON documents, built with `oci-spec`'s types: the config
//! (user, entrypoint, environment, labels, layer digests), the manifest,
//! the OCI layout's `index.json` and Docker's `manifest.json`. Each is
//! written as canonical JSON (keys sorted at every level, no spaces), so
//! the same inputs give the same bytes: `oci-spec` keeps labels and
//! annotations in `HashMap`s, whose order is random.

use super::layers::Blob;
use crate::deploy::ImageRef;
use anyhow::{Context, Result};
use oci_spec::image::{
    ANNOTATION_REF_NAME, ANNOTATION_REVISION, ANNOTATION_TITLE, ANNOTATION_VERSION, Arch,
    ConfigBuilder, Descriptor, DescriptorBuilder, HistoryBuilder, ImageConfigurationBuilder,
    ImageIndexBuilder, ImageManifestBuilder, MediaType, Os, PlatformBuilder, RootFsBuilder,
};
use serde::Serialize;
use std::collections::HashMap;

/// containerd's annotation for the image's full name (`kind load`, `ctr
/// import` and `podman load` name the image after it).
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
/// Label holding the version of the `amimono` in the image.
pub const LABEL_AMIMONO_VERSION: &str = "io.amimono.version";
/// The OCI layout's marker file.
pub const OCI_LAYOUT: &str = "{\"imageLayoutVersion\":\"1.0.0\"}";
/// The fixed creation time: images carry no wall-clock time, so the same
/// inputs give the same digest.
const EPOCH: &str = "1970-01-01T00:00:00Z";

/// What the config says about the app and how to run it.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The app's name.
    pub app: String,
    /// The app's revision.
    pub revision: String,
    /// `User` (`uid:gid`).
    pub user: String,
    /// The entrypoint.
    pub entrypoint: Vec<String>,
    /// `Env`, each `NAME=value`.
    pub env: Vec<String>,
    /// Directories declared as volumes.
    pub volumes: Vec<String>,
}

/// The config blob's bytes, for `layers` (each with its digest and what it
/// holds, for the history).
pub fn config(run: &RunConfig, layers: &[(Blob, String)]) -> Result<Vec<u8>> {
    let labels = HashMap::from([
        (ANNOTATION_TITLE.to_string(), run.app.clone()),
        (ANNOTATION_REVISION.to_string(), run.revision.clone()),
        (ANNOTATION_VERSION.to_string(), run.revision.clone()),
        (
            LABEL_AMIMONO_VERSION.to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
    ]);
    let config = ConfigBuilder::default()
        .user(run.user.clone())
        .env(run.env.clone())
        .entrypoint(run.entrypoint.clone())
        .volumes(run.volumes.clone())
        .labels(labels)
        .stop_signal("SIGTERM")
        .build()
        .context("building the image config")?;
    let history = layers
        .iter()
        .map(|(_, comment)| {
            HistoryBuilder::default()
                .created(EPOCH)
                .created_by(format!("amimono image: {comment}"))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()
        .context("building the image history")?;
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(
            layers
                .iter()
                .map(|(b, _)| b.digest.clone())
                .collect::<Vec<_>>(),
        )
        .build()
        .context("building the image rootfs")?;
    let image = ImageConfigurationBuilder::default()
        .created(EPOCH)
        .architecture(architecture())
        .os(Os::Linux)
        .config(config)
        .rootfs(rootfs)
        .history(history)
        .build()
        .context("building the image config")?;
    canonical(&image)
}

/// The manifest blob's bytes: the config and the layers (uncompressed tars).
pub fn manifest(config: &Blob, layers: &[Blob]) -> Result<Vec<u8>> {
    let layers = layers
        .iter()
        .map(|b| descriptor(MediaType::ImageLayer, b))
        .collect::<Result<Vec<_>>>()?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(MediaType::ImageConfig, config)?)
        .layers(layers)
        .build()
        .context("building the image manifest")?;
    canonical(&manifest)
}

/// `index.json`: the manifest, named `tag` (the tag alone in
/// `org.opencontainers.image.ref.name`, as `docker save` writes it; the full
/// name in containerd's annotation).
pub fn index(manifest: &Blob, tag: &ImageRef) -> Result<Vec<u8>> {
    let mut descriptor = descriptor(MediaType::ImageManifest, manifest)?;
    descriptor.set_annotations(Some(HashMap::from([
        (ANNOTATION_CONTAINERD_NAME.to_string(), full_name(tag)),
        (
            ANNOTATION_REF_NAME.to_string(),
            tag.tag().unwrap_or("latest").to_string(),
        ),
    ])));
    descriptor.set_platform(Some(
        PlatformBuilder::default()
            .architecture(architecture())
            .os(Os::Linux)
            .build()
            .context("building the image platform")?,
    ));
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![descriptor])
        .build()
        .context("building index.json")?;
    canonical(&index)
}

/// One image of Docker's `manifest.json` (`docker save`'s format).
#[derive(Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct DockerManifest {
    /// The config blob's path.
    pub config: String,
    /// The image's names.
    pub repo_tags: Vec<String>,
    /// The layer blobs' paths, first to last.
    pub layers: Vec<String>,
}

/// Docker's `manifest.json`, pointing at the same blobs as `index.json`.
pub fn docker_manifest(config: &Blob, layers: &[Blob], tag: &ImageRef) -> Result<Vec<u8>> {
    canonical(&[DockerManifest {
        config: config.layout_path(),
        repo_tags: vec![full_name(tag)],
        layers: layers.iter().map(Blob::layout_path).collect(),
    }])
}

/// The fully qualified name, tag included (`localhost/hello:dev`,
/// `docker.io/library/hello:latest`).
pub fn full_name(tag: &ImageRef) -> String {
    match tag.tag() {
        Some(_) => tag.qualified(),
        None => format!("{}:latest", tag.qualified()),
    }
}

fn descriptor(media_type: MediaType, blob: &Blob) -> Result<Descriptor> {
    DescriptorBuilder::default()
        .media_type(media_type)
        .digest(
            blob.digest
                .parse::<oci_spec::image::Digest>()
                .with_context(|| format!("digest `{}`", blob.digest))?,
        )
        .size(blob.size)
        .build()
        .context("building a descriptor")
}

/// The image's architecture: the running binary's, in Go's names.
pub fn architecture() -> Arch {
    match std::env::consts::ARCH {
        "x86_64" => Arch::Amd64,
        "aarch64" => Arch::ARM64,
        "riscv64" => Arch::RISCV64,
        "s390x" => Arch::s390x,
        "powerpc64" if cfg!(target_endian = "little") => Arch::PowerPC64le,
        other => Arch::from(other),
    }
}

/// `value` as JSON with the keys of every object sorted.
pub fn canonical(value: &impl Serialize) -> Result<Vec<u8>> {
    let value = serde_json::to_value(value).context("encoding JSON")?;
    serde_json::to_vec(&sorted(value)).context("encoding JSON")
}

fn sorted(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let value = serde_json::json!({"b": 1, "a": {"d": [{"z": 0, "y": 1}], "c": 2}});
        assert_eq!(
            String::from_utf8(canonical(&value).unwrap()).unwrap(),
            r#"{"a":{"c":2,"d":[{"y":1,"z":0}]},"b":1}"#
        );
    }

    #[test]
    fn full_names_carry_registry_repository_and_tag() {
        let name = |s: &str| full_name(&ImageRef::parse(s).unwrap());
        assert_eq!(name("localhost/hello:dev"), "localhost/hello:dev");
        assert_eq!(name("hello"), "docker.io/library/hello:latest");
        assert_eq!(
            name("registry.example.com:5000/team/hello:1.0"),
            "registry.example.com:5000/team/hello:1.0"
        );
    }
}
