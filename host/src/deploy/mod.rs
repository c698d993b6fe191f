//! Deploying a bundle beyond one machine: a container image of the bundle
//! and the `amimono` binary (`image`, `amimono image`), and the manifests
//! that run it on Kubernetes ([`kube`]) and Compose ([`compose`]), both
//! translated from one [`plan::DeployPlan`] (`amimono deploy kube|compose`).
//!
//! Nothing here talks to a registry, a container engine or a cluster: each
//! command writes files that the usual tools (`podman load`, `kind load`,
//! `kubectl apply`, `docker compose up`) take.

pub mod compose;
pub mod image;
pub mod kube;
pub mod plan;

use anyhow::{Context, Result};
use std::fmt;
use std::path::{Path, PathBuf};

/// Writes the Kubernetes manifests of `bundle` into `dir`; the files written.
pub fn write_kube(
    bundle: &Path,
    plan_options: &plan::PlanOptions,
    options: &kube::KubeOptions,
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    let plan = plan::DeployPlan::load(bundle, plan_options)?;
    let files = kube::manifests(&plan, options)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for (name, text) in [files.revision, files.serve] {
        let path = dir.join(name);
        write_atomically(&path, &text)?;
        written.push(path);
    }
    Ok(written)
}

/// Writes the compose file of `bundle` to `out`, and the bindings file it
/// mounts beside it; the files written.
pub fn write_compose(
    bundle: &Path,
    plan_options: &plan::PlanOptions,
    image: &ImageRef,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    let plan = plan::DeployPlan::load(bundle, plan_options)?;
    let bindings_name = format!("{}-{}.bindings.toml", plan.app, plan.short_revision());
    let files = compose::compose_file(
        &plan,
        &compose::ComposeOptions {
            image: image.clone(),
            bindings_file: bindings_name.clone(),
        },
    )?;
    let dir = out
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let bindings = dir.join(bindings_name);
    write_atomically(&bindings, &files.bindings)?;
    write_atomically(out, &files.compose)?;
    Ok(vec![out.to_path_buf(), bindings])
}

/// Writes `text` to `path` through a temporary file and a rename: a reader
/// never sees half a file.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text).with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("writing {}", path.display()))
}

/// An image reference (`[registry/]repository[:tag][@digest]`), checked
/// against the distribution spec's grammar; kept as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    text: String,
    parsed: oci_spec::distribution::Reference,
}

/// A string that is not an image reference.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "`{text}` is not an image reference ({reason}): expected `[registry/]name[:tag][@sha256:digest]` in lower case, e.g. `localhost/hello:dev` or `registry.example.com/team/hello:1.0`"
)]
pub struct InvalidImageRef {
    /// What was given.
    pub text: String,
    /// Why it is not one.
    pub reason: String,
}

impl ImageRef {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<ImageRef, InvalidImageRef> {
        let invalid = |reason: String| InvalidImageRef {
            text: text.to_string(),
            reason,
        };
        if text.trim() != text || text.is_empty() {
            return Err(invalid("empty, or blank around it".to_string()));
        }
        let parsed: oci_spec::distribution::Reference =
            text.parse().map_err(|e| invalid(format!("{e}")))?;
        Ok(ImageRef {
            text: text.to_string(),
            parsed,
        })
    }

    /// The reference as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The tag (`latest` when neither a tag nor a digest is given).
    pub fn tag(&self) -> Option<&str> {
        self.parsed.tag()
    }

    /// The digest (`sha256:…`), if one is given.
    pub fn digest(&self) -> Option<&str> {
        self.parsed.digest()
    }

    /// The fully qualified form (`docker.io/library/x:latest`).
    pub fn qualified(&self) -> String {
        self.parsed.whole()
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_are_checked_and_kept_as_written() {
        let local = ImageRef::parse("localhost/hello:dev").unwrap();
        assert_eq!(local.as_str(), "localhost/hello:dev");
        assert_eq!(
            (local.qualified().as_str(), local.tag()),
            ("localhost/hello:dev", Some("dev"))
        );
        let hub = ImageRef::parse("hello").unwrap();
        assert_eq!(hub.qualified(), "docker.io/library/hello:latest");
        for bad in [
            "",
            " hello",
            "Hello:dev",
            "hello:",
            "hello:dev:x",
            "a//b",
            "x@sha256:12",
        ] {
            let error = ImageRef::parse(bad).unwrap_err();
            assert!(
                error.to_string().contains("is not an image reference"),
                "{bad}: {error}"
            );
        }
    }
}
