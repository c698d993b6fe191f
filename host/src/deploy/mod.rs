//! Deploying a bundle beyond one machine: a container image of the bundle
//! and the `amimono` binary ([`image`], `amimono image`), and the manifests
//! that run it on Kubernetes and Compose (`amimono deploy kube|compose`).
//!
//! Nothing here talks to a registry, a container engine or a cluster: each
//! command writes files that the usual tools (`podman load`, `kind load`,
//! `kubectl apply`, `docker compose up`) take.

pub mod image;

use std::fmt;

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

    /// The registry (`docker.io` when none is given).
    pub fn registry(&self) -> &str {
        self.parsed.registry()
    }

    /// The repository (`library/x` for a bare `x` on Docker Hub).
    pub fn repository(&self) -> &str {
        self.parsed.repository()
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
            (local.registry(), local.repository(), local.tag()),
            ("localhost", "hello", Some("dev"))
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
