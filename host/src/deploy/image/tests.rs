//! The image archive read back: reproducible bytes, the OCI layout's chain
//! (index → manifest → config and layers) against the blobs, the config,
//! Docker's `manifest.json`, and bad input.

use super::elf::{Runtime, RuntimeFile};
use super::*;
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use std::collections::BTreeMap;
use std::io::Read;

/// Contents made of small files: a fake binary, loader, libc and bundle.
fn contents(dir: &Path) -> ImageContents {
    let file = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    ImageContents {
        app: "hello".to_string(),
        revision: "0123456789abcdef".to_string(),
        binary: file("amimono", b"\x7fELF the binary"),
        runtime: Runtime {
            loader: Some(RuntimeFile {
                image_path: "/lib64/ld-linux-x86-64.so.2".to_string(),
                source: file("ld.so", b"the loader"),
            }),
            libraries: vec![RuntimeFile {
                image_path: "/usr/lib/x86_64-linux-gnu/libc.so.6".to_string(),
                source: file("libc.so.6", b"libc"),
            }],
            extra_library_dirs: Vec::new(),
        },
        bundle: file("hello.amimono", &[7; 3000]),
    }
}

fn tag() -> ImageRef {
    parse_tag("localhost/hello:dev").unwrap()
}

/// Every regular file of a tar, by path.
fn files(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(bytes);
    let mut files = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        assert_eq!(entry.header().mtime().unwrap(), 0, "{path}");
        assert_eq!(entry.header().uid().unwrap(), 0, "{path}");
        if entry.header().entry_type() == tar::EntryType::Regular {
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            files.insert(path, content);
        }
    }
    files
}

/// The blob `digest` names, checked against its size.
fn blob<'a>(files: &'a BTreeMap<String, Vec<u8>>, digest: &str, size: u64) -> &'a [u8] {
    let hex = digest.strip_prefix("sha256:").unwrap();
    let bytes = files
        .get(&format!("blobs/sha256/{hex}"))
        .unwrap_or_else(|| panic!("no blob {digest}"));
    assert_eq!(Blob::of(bytes).digest, digest);
    assert_eq!(bytes.len() as u64, size, "{digest}");
    bytes
}

#[test]
fn the_same_inputs_give_the_same_bytes_and_digest() {
    let dir = tempfile::tempdir().unwrap();
    let contents = contents(dir.path());
    let first = write_archive(&contents, &tag(), &dir.path().join("a/image.tar")).unwrap();
    // Files touched later (new mtimes) change nothing.
    std::fs::write(&contents.bundle, [7; 3000]).unwrap();
    let second = write_archive(&contents, &tag(), &dir.path().join("b.tar")).unwrap();
    assert_eq!(first.manifest_digest, second.manifest_digest);
    assert_eq!(first.bytes, second.bytes);
    let (a, b) = (
        std::fs::read(&first.path).unwrap(),
        std::fs::read(&second.path).unwrap(),
    );
    assert!(a == b, "two writes differ");
    assert_eq!(a.len() as u64, first.bytes);
    // Nothing but the archive is left in the directory (the temp file was renamed).
    let names: Vec<_> = std::fs::read_dir(dir.path().join("a"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["image.tar"]);

    // Another tag names the same image: only index.json and manifest.json change.
    let other = parse_tag("registry.example.com/team/hello:1.0").unwrap();
    let third = write_archive(&contents, &other, &dir.path().join("c.tar")).unwrap();
    assert_eq!(third.manifest_digest, first.manifest_digest);
    assert_eq!(third.name, "registry.example.com/team/hello:1.0");

    // Another bundle is another image.
    std::fs::write(&contents.bundle, [8; 3000]).unwrap();
    let fourth = write_archive(&contents, &tag(), &dir.path().join("d.tar")).unwrap();
    assert_ne!(fourth.manifest_digest, first.manifest_digest);
}

#[test]
fn the_layout_chains_index_manifest_config_and_layers_through_their_digests() {
    let dir = tempfile::tempdir().unwrap();
    let contents = contents(dir.path());
    let written = write_archive(&contents, &tag(), &dir.path().join("image.tar")).unwrap();
    assert_eq!(written.name, "localhost/hello:dev");
    let files = files(&std::fs::read(&written.path).unwrap());
    assert_eq!(
        files["oci-layout"],
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()
    );

    let index: ImageIndex = serde_json::from_slice(&files["index.json"]).unwrap();
    assert_eq!(index.schema_version(), 2);
    let [descriptor] = index.manifests().as_slice() else {
        panic!("one manifest expected: {index:?}");
    };
    assert_eq!(descriptor.digest().to_string(), written.manifest_digest);
    let annotations = descriptor.annotations().as_ref().unwrap();
    assert_eq!(
        annotations["io.containerd.image.name"],
        "localhost/hello:dev"
    );
    assert_eq!(annotations["org.opencontainers.image.ref.name"], "dev");
    let manifest_bytes = blob(&files, &written.manifest_digest, descriptor.size());
    let manifest: ImageManifest = serde_json::from_slice(manifest_bytes).unwrap();
    assert_eq!(
        manifest.media_type().as_ref().unwrap().to_string(),
        "application/vnd.oci.image.manifest.v1+json"
    );

    let config_bytes = blob(
        &files,
        manifest.config().digest().as_ref(),
        manifest.config().size(),
    );
    let config: ImageConfiguration = serde_json::from_slice(config_bytes).unwrap();
    let run = config.config().as_ref().unwrap();
    assert_eq!(run.user().as_deref(), Some("65532:65532"));
    assert_eq!(
        run.entrypoint().as_ref().unwrap(),
        &["/usr/local/bin/amimono", "run", "/app/hello.amimono"]
    );
    let env = run.env().as_ref().unwrap();
    for variable in [
        "PATH=/usr/local/bin:/usr/bin:/bin",
        "AMIMONO_DATA_DIR=/data",
        "AMIMONO_CACHE_DIR=/tmp/amimono-cache",
    ] {
        assert!(env.iter().any(|e| e == variable), "{variable}: {env:?}");
    }
    assert!(!env.iter().any(|e| e.starts_with("LD_LIBRARY_PATH=")));
    assert_eq!(run.volumes().as_ref().unwrap(), &["/data"]);
    let labels = run.labels().as_ref().unwrap();
    assert_eq!(labels["org.opencontainers.image.title"], "hello");
    assert_eq!(
        labels["org.opencontainers.image.revision"],
        "0123456789abcdef"
    );
    assert!(!labels.contains_key("org.opencontainers.image.created"));
    assert_eq!(config.created().as_deref(), Some("1970-01-01T00:00:00Z"));
    assert_eq!(config.os().to_string(), "linux");
    assert_eq!(config.history().as_ref().unwrap().len(), 3);

    // The layers, in order: runtime, binary, bundle; their digests are the
    // config's diff ids (uncompressed).
    let layer_descriptors = manifest.layers();
    let diff_ids: Vec<String> = layer_descriptors
        .iter()
        .map(|d| d.digest().to_string())
        .collect();
    assert_eq!(config.rootfs().diff_ids(), &diff_ids);
    let layers: Vec<BTreeMap<String, Vec<u8>>> = layer_descriptors
        .iter()
        .map(|d| {
            assert_eq!(
                d.media_type().to_string(),
                "application/vnd.oci.image.layer.v1.tar"
            );
            files_with_dirs(blob(&files, d.digest().as_ref(), d.size()))
        })
        .collect();
    assert_eq!(layers[0]["lib64/ld-linux-x86-64.so.2"], b"the loader");
    assert_eq!(layers[0]["usr/lib/x86_64-linux-gnu/libc.so.6"], b"libc");
    assert!(layers[0].contains_key("data/") && layers[0].contains_key("tmp/"));
    assert_eq!(layers[1]["usr/local/bin/amimono"], b"\x7fELF the binary");
    assert_eq!(layers[2]["app/hello.amimono"], vec![7; 3000]);

    // Docker's manifest.json points at the same blobs.
    let docker: Vec<spec::DockerManifest> =
        serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(
        docker,
        [spec::DockerManifest {
            config: format!("blobs/sha256/{}", manifest.config().digest().digest()),
            repo_tags: vec!["localhost/hello:dev".to_string()],
            layers: diff_ids
                .iter()
                .map(|d| format!("blobs/sha256/{}", d.strip_prefix("sha256:").unwrap()))
                .collect(),
        }]
    );
    // Nothing else is in the archive.
    assert_eq!(files.len(), 3 + 2 + 3, "{:?}", files.keys());
}

/// A layer's entries, directories included (with their owner and mode in
/// place of content), by path.
fn files_with_dirs(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(bytes);
    let mut entries = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let header = entry.header().clone();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        if header.entry_type() == tar::EntryType::Directory {
            let (uid, mode) = (header.uid().unwrap(), header.mode().unwrap());
            content = format!("{uid} {mode:o}").into_bytes();
            entries.insert(format!("{path}/").replace("//", "/"), content);
        } else {
            entries.insert(path, content);
        }
    }
    entries
}

#[test]
fn data_belongs_to_the_image_user_and_both_data_and_tmp_are_sticky() {
    let dir = tempfile::tempdir().unwrap();
    let layers = image_layers(&contents(dir.path())).unwrap();
    let mut bytes = Vec::new();
    let blob = layers[0].measure().unwrap();
    layers[0].write_checked(&mut bytes, &blob).unwrap();
    let entries = files_with_dirs(&bytes);
    assert_eq!(entries["data/"], b"65532 1777");
    assert_eq!(entries["tmp/"], b"0 1777");
    assert_eq!(entries["usr/"], b"0 755");
}

#[test]
fn libraries_outside_the_default_dirs_get_ld_library_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut contents = contents(dir.path());
    contents.runtime.extra_library_dirs = vec!["/opt/gcc/lib".to_string()];
    let config = run_config(&contents);
    assert!(
        config
            .env
            .contains(&"LD_LIBRARY_PATH=/opt/gcc/lib".to_string())
    );
}

#[test]
fn tags_are_image_references_without_a_digest() {
    assert_eq!(
        parse_tag("localhost/hello:dev").unwrap().as_str(),
        "localhost/hello:dev"
    );
    let error = parse_tag("Hello:Dev").unwrap_err();
    assert!(
        error
            .to_string()
            .contains("`Hello:Dev` is not an image reference"),
        "{error}"
    );
    let digest = format!("localhost/hello@sha256:{}", "a".repeat(64));
    let error = parse_tag(&digest).unwrap_err();
    assert!(error.to_string().contains("names a digest"), "{error}");
    assert_eq!(
        default_tag("hello", "0123456789abcdef").unwrap().as_str(),
        "localhost/hello:0123456789abcdef"
    );
    assert_eq!(
        default_image_path("hello"),
        Path::new("target/amimono/hello-image.tar")
    );
}

#[test]
fn what_is_not_a_bundle_is_refused_naming_it_and_amimono_build() {
    let dir = tempfile::tempdir().unwrap();
    let damaged = dir.path().join("damaged.amimono");
    std::fs::write(&damaged, b"not a tar at all, just text").unwrap();
    for path in [
        dir.path().to_path_buf(),
        dir.path().join("missing.amimono"),
        damaged,
    ] {
        let error = format!("{:#}", open_bundle(&path).unwrap_err());
        assert!(error.contains(&format!("`{}`", path.display())), "{error}");
        assert!(error.contains("amimono build"), "{error}");
    }
}
