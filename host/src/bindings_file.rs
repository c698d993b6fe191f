//! The bindings file named by `AMIMONO_BINDINGS`: where each component's job
//! listens (`internal`) and how others reach it (`external`). One file
//! describes the whole app. Without a file, HTTP components listen on free
//! loopback ports.
//!
//! ```toml
//! [components.frontend]
//! type = "http"
//! internal = "127.0.0.1:8080"          # where this host listens
//! external = "http://127.0.0.1:8080"   # how others reach it
//! ```

use crate::app::App;
use crate::manifest::{BindingType, Diagnostic};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// One component's addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Where the component's job listens for it.
    pub internal: SocketAddr,
    /// The base URL others reach it at.
    pub external: String,
}

/// A checked bindings file.
#[derive(Debug, Clone)]
pub struct Bindings {
    /// The file it was read from.
    pub path: PathBuf,
    /// A revision the file is pinned to, if any.
    pub revision: Option<String>,
    /// Addresses by component label.
    pub components: BTreeMap<String, Address>,
}

/// Why a bindings file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindingsError {
    /// The file could not be read.
    #[error("cannot read bindings file `{path}` (AMIMONO_BINDINGS): {source}")]
    Read {
        /// The path that was tried.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is malformed or does not fit the app.
    #[error("invalid bindings file (AMIMONO_BINDINGS):\n{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n\n"))]
    Invalid(Vec<Diagnostic>),
    /// The file is pinned to another revision than the app's.
    #[error(
        "bindings file `{path}` is pinned to revision {pinned}, but this app is revision {revision}: refusing to start (deploy the bundle of revision {pinned}, or regenerate the bindings file)"
    )]
    RevisionPinned {
        /// The bindings file.
        path: PathBuf,
        /// The revision it is pinned to.
        pinned: String,
        /// The app's revision.
        revision: String,
    },
    /// A component this process serves has no entry.
    #[error(
        "bindings file `{path}` has no entry for component `{label}` (binding `{binding}`, job `{job}`); add:\n[components.{label}]\ntype = \"{binding}\"\ninternal = \"127.0.0.1:<port>\"\nexternal = \"http://127.0.0.1:<port>\""
    )]
    MissingEntry {
        /// The bindings file.
        path: PathBuf,
        /// The component without an entry.
        label: String,
        /// Its binding type.
        binding: BindingType,
        /// Its job.
        job: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBindings {
    #[serde(default)]
    revision: Option<String>,
    #[serde(default)]
    components: BTreeMap<Spanned<String>, Spanned<RawEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    #[serde(rename = "type")]
    kind: Spanned<BindingType>,
    internal: Spanned<String>,
    #[serde(default)]
    external: Option<Spanned<String>>,
}

impl Bindings {
    /// Reads the bindings file at `path` and checks it against `app`.
    pub fn load(path: &Path, app: &App) -> Result<Bindings, BindingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| BindingsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Bindings::parse(path, &text, app)
    }

    /// Parses bindings `text` (read from `path`) and checks it against `app`.
    pub fn parse(path: &Path, text: &str, app: &App) -> Result<Bindings, BindingsError> {
        let diagnostic = |span, message: String| Diagnostic::new(path, text, Some(span), message);
        let raw: RawBindings = toml::from_str(text).map_err(|e| {
            BindingsError::Invalid(vec![Diagnostic::new(
                path,
                text,
                e.span(),
                e.message().trim_end().to_string(),
            )])
        })?;
        let mut problems = Vec::new();
        let mut components = BTreeMap::new();
        for (label, entry) in raw.components {
            let entry = entry.into_inner();
            let Some(component) = app.component(label.get_ref()) else {
                problems.push(diagnostic(
                    label.span(),
                    format!(
                        "app `{}` has no component `{}` (components: {})",
                        app.name(),
                        label.get_ref(),
                        app.components
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
                continue;
            };
            if *entry.kind.get_ref() != component.spec.binding {
                problems.push(diagnostic(
                    entry.kind.span(),
                    format!(
                        "component `{}` has binding `{}` in the manifest, not `{}`",
                        label.get_ref(),
                        component.spec.binding,
                        entry.kind.get_ref()
                    ),
                ));
            }
            let internal = match entry.internal.get_ref().parse::<SocketAddr>() {
                Ok(addr) => addr,
                Err(_) => {
                    problems.push(diagnostic(
                        entry.internal.span(),
                        format!(
                            "`internal` must be an IP address and port such as `127.0.0.1:8080`, not `{}`",
                            entry.internal.get_ref()
                        ),
                    ));
                    continue;
                }
            };
            let external = match entry.external {
                Some(external) => {
                    let url = external.get_ref().trim_end_matches('/').to_string();
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        problems.push(diagnostic(
                            external.span(),
                            format!(
                                "`external` must be a URL such as `http://127.0.0.1:8080`, not `{}`",
                                external.get_ref()
                            ),
                        ));
                    }
                    url
                }
                None => format!("http://{internal}"),
            };
            components.insert(label.into_inner(), Address { internal, external });
        }
        if !problems.is_empty() {
            return Err(BindingsError::Invalid(problems));
        }
        Ok(Bindings {
            path: path.to_path_buf(),
            revision: raw.revision,
            components,
        })
    }

    /// Refuses to run a host whose app revision differs from the one this
    /// file is pinned to.
    pub fn check_revision(&self, revision: &str) -> Result<(), BindingsError> {
        match &self.revision {
            Some(pinned) if pinned != revision => Err(BindingsError::RevisionPinned {
                path: self.path.clone(),
                pinned: pinned.clone(),
                revision: revision.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// The entry of `label`, which this process must serve.
    pub fn require(&self, app: &App, label: &str) -> Result<&Address, BindingsError> {
        self.components
            .get(label)
            .ok_or_else(|| BindingsError::MissingEntry {
                path: self.path.clone(),
                label: label.to_string(),
                binding: app
                    .component(label)
                    .map_or(BindingType::None, |c| c.spec.binding),
                job: app
                    .component(label)
                    .map(|c| c.spec.job.clone())
                    .unwrap_or_default(),
            })
    }
}
