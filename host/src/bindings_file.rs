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
//!
//! [jobs.web]
//! admin = "127.0.0.1:9100"             # the job's health and readiness probes
//! ```

use crate::app::App;
use crate::manifest::{BindingType, Diagnostic, ReadTextError};
use crate::placement::Placement;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
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
    /// Admin listener addresses (`[jobs.<job>] admin`), by job.
    pub admin: BTreeMap<String, SocketAddr>,
    /// The file's text and where each `internal` value is in it, for
    /// diagnostics about the addresses.
    text: String,
    internal_spans: BTreeMap<String, Range<usize>>,
}

/// Why a bindings file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindingsError {
    /// The file could not be read. The I/O error is part of the message,
    /// not a `source`, so it is printed once.
    #[error("cannot read bindings file `{}` (AMIMONO_BINDINGS): {error}", .path.display())]
    Read {
        /// The path that was tried.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The file is malformed or does not fit the app.
    #[error("invalid bindings file (AMIMONO_BINDINGS):\n{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n\n"))]
    Invalid(Vec<Diagnostic>),
    /// Two listeners of the job this process runs were given overlapping
    /// addresses (each HTTP component has a listener of its own; the rpc
    /// components of one job at one address share one).
    #[error("bindings file (AMIMONO_BINDINGS) gives two listeners of job `{job}` one address:\n{}", .conflicts.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n\n"))]
    AddressConflict {
        /// The job.
        job: String,
        /// One diagnostic per conflict, at the later entry's `internal`.
        conflicts: Vec<Diagnostic>,
    },
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
    #[serde(default)]
    jobs: BTreeMap<Spanned<String>, Spanned<RawJobEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJobEntry {
    admin: Spanned<String>,
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
        let text = crate::manifest::read_text(path).map_err(|e| match e {
            ReadTextError::Io(error) => BindingsError::Read {
                path: path.to_path_buf(),
                error,
            },
            ReadTextError::NotUtf8(diagnostic) => BindingsError::Invalid(vec![diagnostic]),
        })?;
        Bindings::parse(path, &text, app)
    }

    /// Parses bindings `text` (read from `path`) and checks it against `app`.
    pub fn parse(path: &Path, text: &str, app: &App) -> Result<Bindings, BindingsError> {
        let diagnostic = |span, message: String| Diagnostic::new(path, text, Some(span), message);
        let raw: RawBindings =
            crate::manifest::deserialize_all(path, text).map_err(BindingsError::Invalid)?;
        let mut problems = Vec::new();
        let mut components = BTreeMap::new();
        let mut internal_spans = BTreeMap::new();
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
            internal_spans.insert(label.get_ref().clone(), entry.internal.span());
            components.insert(label.into_inner(), Address { internal, external });
        }
        let mut admin = BTreeMap::new();
        let jobs = app.manifest.job_names();
        for (job, entry) in raw.jobs {
            if !jobs.contains(&job.get_ref().as_str())
                && job.get_ref() != crate::placement::LOCAL_JOB
            {
                problems.push(diagnostic(
                    job.span(),
                    format!(
                        "app `{}` has no job `{}` (jobs: {})",
                        app.name(),
                        job.get_ref(),
                        jobs.join(", ")
                    ),
                ));
                continue;
            }
            let entry = entry.into_inner();
            match entry.admin.get_ref().parse::<SocketAddr>() {
                Ok(address) => {
                    admin.insert(job.into_inner(), address);
                }
                Err(_) => problems.push(diagnostic(
                    entry.admin.span(),
                    format!(
                        "`admin` must be an IP address and port such as `127.0.0.1:9100`, not `{}`",
                        entry.admin.get_ref()
                    ),
                )),
            }
        }
        if !problems.is_empty() {
            return Err(BindingsError::Invalid(problems));
        }
        Ok(Bindings {
            path: path.to_path_buf(),
            revision: raw.revision,
            components,
            admin,
            text: text.to_string(),
            internal_spans,
        })
    }

    /// Refuses addresses on which the job of `placement` could not listen:
    /// an HTTP component's address that overlaps another HTTP component's
    /// or an rpc listener's, or two rpc listeners that overlap. The rpc
    /// components of one job given the same address share one listener;
    /// components of other jobs run on other machines and may use the same
    /// addresses. Port 0 (any free port) never conflicts.
    pub fn check_addresses(&self, app: &App, placement: &Placement) -> Result<(), BindingsError> {
        let binding_of = |label: &str| app.component(label).map(|c| c.spec.binding);
        // The listeners `amimono run` opens, in its order: one per HTTP
        // component, then one per distinct rpc address of the rpc components
        // the router says other processes call.
        let mut listeners: Vec<(SocketAddr, Vec<&str>)> = Vec::new();
        for label in &placement.members {
            if binding_of(label.as_str()) == Some(BindingType::Http)
                && let Some(address) = self.components.get(label)
            {
                listeners.push((address.internal, vec![label.as_str()]));
            }
        }
        let mut rpc: BTreeMap<SocketAddr, Vec<&str>> = BTreeMap::new();
        let rpc_members = crate::link::router::rpc_members_called_from_outside(app, placement);
        for label in &rpc_members {
            if let Some(address) = self.components.get(label) {
                rpc.entry(address.internal)
                    .or_default()
                    .push(label.as_str());
            }
        }
        listeners.extend(rpc);
        let mut conflicts = Vec::new();
        for (i, (later, later_labels)) in listeners.iter().enumerate() {
            let Some((earlier, earlier_labels)) = listeners[..i]
                .iter()
                .find(|(earlier, _)| overlap(earlier, later))
            else {
                continue;
            };
            let describe = |labels: &[&str]| {
                labels
                    .iter()
                    .map(|label| {
                        let binding = binding_of(label).map_or("?", BindingType::as_str);
                        format!("`{label}` ({binding})")
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let same = if earlier == later {
                format!("both listen on {later}")
            } else {
                format!("listen on {earlier} and {later}, which overlap")
            };
            let message = format!(
                "components {} and {} of job `{}` {same}: give each HTTP component an address of its own (only rpc components of one job may share one)",
                describe(earlier_labels),
                describe(later_labels),
                placement.job
            );
            let span = later_labels
                .iter()
                .filter_map(|label| self.internal_spans.get(*label))
                .max_by_key(|span| span.start)
                .cloned();
            conflicts.push(Diagnostic::new(&self.path, &self.text, span, message));
        }
        if conflicts.is_empty() {
            Ok(())
        } else {
            Err(BindingsError::AddressConflict {
                job: placement.job.clone(),
                conflicts,
            })
        }
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

/// Whether listeners on `a` and `b` cannot both be bound: the same port
/// (not 0) and the same IP, or either IP unspecified (`0.0.0.0` or `[::]`,
/// which on Linux also covers IPv4 unless the socket is IPv6-only).
fn overlap(a: &SocketAddr, b: &SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip()
            || (a.ip().is_unspecified() && (a.is_ipv6() || b.is_ipv4()))
            || (b.ip().is_unspecified() && (b.is_ipv6() || a.is_ipv4())))
}

#[cfg(test)]
mod tests;
