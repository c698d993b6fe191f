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
//! [components.greeter]                 # its job has `replicas = 2`
//! type = "rpc"
//! internal = ["127.0.0.1:9000", "127.0.0.1:9001"]   # replica i listens on entry i
//!
//! [jobs.web]
//! admin = "127.0.0.1:9100"             # the job's health and readiness probes
//! ```
//!
//! `internal`, `external` and `admin` each take one value or a list
//! ([`PerReplica`]): one value serves every replica of the job (each on its
//! own machine or IP, as on Kubernetes or Compose), a list gives replica *i*
//! entry *i* (replicas side by side on one machine) and must have one entry
//! per replica. `external` as a list is every replica's URL; callers spread
//! their calls over all of them.

use crate::app::App;
use crate::manifest::{BindingType, Diagnostic, ReadTextError};
use crate::placement::Placement;
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// A value of the bindings file given once for every replica of a job, or
/// once per replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PerReplica<T> {
    /// One value for every replica (each replica runs on its own machine or
    /// IP, as on Kubernetes or Compose).
    All(T),
    /// Entry `i` for replica `i` (replicas side by side on one machine).
    Each(Vec<T>),
}

impl<T> PerReplica<T> {
    /// The value of replica `replica`, if the list has an entry for it.
    pub fn get(&self, replica: u32) -> Option<&T> {
        match self {
            PerReplica::All(value) => Some(value),
            PerReplica::Each(values) => values.get(usize::try_from(replica).ok()?),
        }
    }

    /// Every value given: the one value, or the list.
    pub fn values(&self) -> &[T] {
        match self {
            PerReplica::All(value) => std::slice::from_ref(value),
            PerReplica::Each(values) => values,
        }
    }

    fn map<U>(&self, f: impl Fn(&T) -> U) -> PerReplica<U> {
        match self {
            PerReplica::All(value) => PerReplica::All(f(value)),
            PerReplica::Each(values) => PerReplica::Each(values.iter().map(f).collect()),
        }
    }
}

/// One component's addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Where the component's job listens for it, per replica.
    pub internal: PerReplica<SocketAddr>,
    /// The base URL others reach it at: one for the whole job (a name that
    /// may resolve to every replica's address), or each replica's.
    pub external: PerReplica<String>,
}

impl Address {
    /// Where replica `replica` of the component's job listens for it.
    pub fn internal_of(&self, replica: u32) -> Option<SocketAddr> {
        self.internal.get(replica).copied()
    }

    /// The URL replica `replica` of the component's job is reached at.
    pub fn external_of(&self, replica: u32) -> Option<&str> {
        self.external.get(replica).map(String::as_str)
    }

    /// Every URL the component is reached at: callers spread their calls
    /// over them (and over every address each name resolves to).
    pub fn urls(&self) -> &[String] {
        self.external.values()
    }
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
    pub admin: BTreeMap<String, PerReplica<SocketAddr>>,
    /// The file's text and where each `internal` value is in it, for
    /// diagnostics about the addresses.
    text: String,
    internal_spans: BTreeMap<String, PerReplica<Range<usize>>>,
    /// Every list of the file, for diagnostics about replicas.
    lists: Vec<ListSpan>,
}

/// Where a list value is, whose it is and how long it is.
#[derive(Debug, Clone)]
struct ListSpan {
    /// The component (`internal`, `external`) or the job (`admin`).
    owner: String,
    key: &'static str,
    span: Range<usize>,
    len: usize,
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
    /// Lists of the file have no entry for the replica this process runs
    /// (`--replica`, `AMIMONO_REPLICA`).
    #[error("bindings file (AMIMONO_BINDINGS) has no address for replica {replica} of job `{job}` (--replica, AMIMONO_REPLICA):\n{}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n\n"))]
    NoReplicaEntry {
        /// The job.
        job: String,
        /// The replica asked for.
        replica: u32,
        /// One diagnostic per list without an entry for it.
        problems: Vec<Diagnostic>,
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
    admin: Spanned<OneOrList>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    #[serde(rename = "type")]
    kind: Spanned<BindingType>,
    internal: Spanned<OneOrList>,
    #[serde(default)]
    external: Option<Spanned<OneOrList>>,
}

/// A string, or a list of strings (each with its span).
enum OneOrList {
    One(String),
    List(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for OneOrList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrListVisitor;
        impl<'de> Visitor<'de> for OneOrListVisitor {
            type Value = OneOrList;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, or a list of strings with one per replica")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<OneOrList, E> {
                Ok(OneOrList::One(value.to_string()))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrList, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<String>>()? {
                    items.push(item);
                }
                Ok(OneOrList::List(items))
            }
        }
        deserializer.deserialize_any(OneOrListVisitor)
    }
}

/// What a value's list must fit: the key, and the job whose replicas the
/// entries stand for.
struct ListOf<'a> {
    key: &'static str,
    owner: &'a str,
    job: &'a str,
    replicas: u32,
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
        let raw: RawBindings =
            crate::manifest::deserialize_all(path, text).map_err(BindingsError::Invalid)?;
        let mut problems: Vec<(Range<usize>, String)> = Vec::new();
        let mut lists = Vec::new();
        let mut components = BTreeMap::new();
        let mut internal_spans = BTreeMap::new();
        let replicas_of = |job: &str| app.manifest.jobs.get(job).map_or(1, |j| j.replicas);
        for (label, entry) in raw.components {
            let entry = entry.into_inner();
            let Some(component) = app.component(label.get_ref()) else {
                problems.push((
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
                problems.push((
                    entry.kind.span(),
                    format!(
                        "component `{}` has binding `{}` in the manifest, not `{}`",
                        label.get_ref(),
                        component.spec.binding,
                        entry.kind.get_ref()
                    ),
                ));
            }
            let job = component.spec.job.as_str();
            let of = |key| ListOf {
                key,
                owner: label.get_ref(),
                job,
                replicas: replicas_of(job),
            };
            let internal = per_replica(
                &entry.internal,
                &of("internal"),
                parse_socket_address("internal", "127.0.0.1:8080"),
                &mut problems,
                &mut lists,
            );
            if let Some((internal, spans)) = &internal {
                distinct_per_replica(internal, spans, job, &mut problems);
            }
            let external = entry.external.as_ref().map(|external| {
                per_replica(
                    external,
                    &of("external"),
                    parse_url,
                    &mut problems,
                    &mut lists,
                )
            });
            let Some((internal, spans)) = internal else {
                continue;
            };
            let external = match external {
                Some(Some((external, _))) => external,
                Some(None) => continue,
                None => internal.map(|address| format!("http://{address}")),
            };
            internal_spans.insert(label.get_ref().clone(), spans);
            components.insert(label.into_inner(), Address { internal, external });
        }
        let mut admin = BTreeMap::new();
        let jobs = app.manifest.job_names();
        for (job, entry) in raw.jobs {
            if !jobs.contains(&job.get_ref().as_str())
                && job.get_ref() != crate::placement::LOCAL_JOB
            {
                problems.push((
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
            let of = ListOf {
                key: "admin",
                owner: job.get_ref(),
                job: job.get_ref(),
                replicas: replicas_of(job.get_ref()),
            };
            if let Some((address, spans)) = per_replica(
                &entry.admin,
                &of,
                parse_socket_address("admin", "127.0.0.1:9100"),
                &mut problems,
                &mut lists,
            ) {
                distinct_per_replica(&address, &spans, job.get_ref(), &mut problems);
                admin.insert(job.into_inner(), address);
            }
        }
        if !problems.is_empty() {
            problems.sort_by_key(|(span, _)| (span.start, span.end));
            return Err(BindingsError::Invalid(
                problems
                    .into_iter()
                    .map(|(span, message)| Diagnostic::new(path, text, Some(span), message))
                    .collect(),
            ));
        }
        Ok(Bindings {
            path: path.to_path_buf(),
            revision: raw.revision,
            components,
            admin,
            text: text.to_string(),
            internal_spans,
            lists,
        })
    }

    /// Refuses replica `replica` of the job of `placement` when a list of
    /// the file has no entry for it: the `internal` or `external` of one of
    /// the job's components, or the job's `admin`. Every such list is named
    /// at its line and column.
    pub fn check_replica(&self, placement: &Placement, replica: u32) -> Result<(), BindingsError> {
        let index = usize::try_from(replica).unwrap_or(usize::MAX);
        let mut missing: Vec<&ListSpan> = self
            .lists
            .iter()
            .filter(|list| {
                let ours = if list.key == "admin" {
                    list.owner == placement.job
                } else {
                    placement.members.contains(&list.owner)
                };
                ours && list.len <= index
            })
            .collect();
        missing.sort_by_key(|list| list.span.start);
        let problems: Vec<Diagnostic> = missing
            .into_iter()
            .map(|list| {
                let whose = if list.key == "admin" {
                    format!("job `{}`", list.owner)
                } else {
                    format!("`{}`", list.owner)
                };
                let message = format!(
                    "`{}` of {whose} lists {} (replicas 0–{}), none for replica {replica}",
                    list.key,
                    entries(list.len),
                    list.len.saturating_sub(1)
                );
                Diagnostic::new(&self.path, &self.text, Some(list.span.clone()), message)
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(BindingsError::NoReplicaEntry {
                job: placement.job.clone(),
                replica,
                problems,
            })
        }
    }

    /// Refuses addresses on which replica `replica` of the job of
    /// `placement` could not listen: an HTTP component's address that
    /// overlaps another HTTP component's or an rpc listener's, or two rpc
    /// listeners that overlap. The rpc components of one job given the same
    /// address share one listener; components of other jobs run on other
    /// machines and may use the same addresses. Port 0 (any free port)
    /// never conflicts.
    pub fn check_addresses(
        &self,
        app: &App,
        placement: &Placement,
        replica: u32,
    ) -> Result<(), BindingsError> {
        let binding_of = |label: &str| app.component(label).map(|c| c.spec.binding);
        let internal_of = |label: &str| {
            self.components
                .get(label)
                .and_then(|address| address.internal_of(replica))
        };
        // The listeners `amimono run` opens, in its order: one per HTTP
        // component, then one per distinct rpc address of the rpc components
        // the router says other processes call.
        let mut listeners: Vec<(SocketAddr, Vec<&str>)> = Vec::new();
        for label in &placement.members {
            if binding_of(label.as_str()) == Some(BindingType::Http)
                && let Some(address) = internal_of(label)
            {
                listeners.push((address, vec![label.as_str()]));
            }
        }
        let mut rpc: BTreeMap<SocketAddr, Vec<&str>> = BTreeMap::new();
        let rpc_members = crate::link::router::rpc_members_called_from_outside(app, placement);
        for label in &rpc_members {
            if let Some(address) = internal_of(label) {
                rpc.entry(address).or_default().push(label.as_str());
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
                .filter_map(|label| self.internal_spans.get(*label)?.get(replica))
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

/// Checks a value given once or as a list: each entry with `parse` (a
/// problem at the entry when it fails), a list against the job's replicas
/// (exactly one entry per replica). The values and their spans, or `None`
/// when anything is wrong.
fn per_replica<T>(
    value: &Spanned<OneOrList>,
    of: &ListOf<'_>,
    parse: impl Fn(&str) -> Result<T, String>,
    problems: &mut Vec<(Range<usize>, String)>,
    lists: &mut Vec<ListSpan>,
) -> Option<(PerReplica<T>, PerReplica<Range<usize>>)> {
    let items = match value.get_ref() {
        OneOrList::One(text) => {
            return match parse(text) {
                Ok(parsed) => Some((PerReplica::All(parsed), PerReplica::All(value.span()))),
                Err(message) => {
                    problems.push((value.span(), message));
                    None
                }
            };
        }
        OneOrList::List(items) => items,
    };
    lists.push(ListSpan {
        owner: of.owner.to_string(),
        key: of.key,
        span: value.span(),
        len: items.len(),
    });
    let replicas = usize::try_from(of.replicas).unwrap_or(usize::MAX);
    let mut fits = items.len() == replicas;
    if !fits {
        problems.push((
            value.span(),
            format!(
                "`{}` lists {}, but job `{}` has {}: give one entry per replica, or a single value for every replica",
                of.key,
                entries(items.len()),
                of.job,
                if replicas == 1 {
                    "1 replica".to_string()
                } else {
                    format!("{replicas} replicas")
                },
            ),
        ));
    }
    let mut values = Vec::with_capacity(items.len());
    let mut spans = Vec::with_capacity(items.len());
    for item in items {
        match parse(item.get_ref()) {
            Ok(parsed) => {
                values.push(parsed);
                spans.push(item.span());
            }
            Err(message) => {
                fits = false;
                problems.push((item.span(), message));
            }
        }
    }
    fits.then_some((PerReplica::Each(values), PerReplica::Each(spans)))
}

/// A parser of `key`'s socket addresses, its message quoting `example`.
fn parse_socket_address(
    key: &'static str,
    example: &'static str,
) -> impl Fn(&str) -> Result<SocketAddr, String> {
    move |text| {
        text.parse::<SocketAddr>().map_err(|_| {
            format!("`{key}` must be an IP address and port such as `{example}`, not `{text}`")
        })
    }
}

/// An `external` URL, without a trailing `/`.
fn parse_url(text: &str) -> Result<String, String> {
    let url = text.trim_end_matches('/');
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url.to_string())
    } else {
        Err(format!(
            "`external` must be a URL such as `http://127.0.0.1:8080`, not `{text}`"
        ))
    }
}

/// Refuses a list giving two replicas of `job` overlapping addresses: a
/// list is for replicas side by side on one machine.
fn distinct_per_replica(
    addresses: &PerReplica<SocketAddr>,
    spans: &PerReplica<Range<usize>>,
    job: &str,
    problems: &mut Vec<(Range<usize>, String)>,
) {
    let (PerReplica::Each(addresses), PerReplica::Each(spans)) = (addresses, spans) else {
        return;
    };
    for (later, address) in addresses.iter().enumerate() {
        let Some(earlier) = addresses[..later]
            .iter()
            .position(|other| overlap(other, address))
        else {
            continue;
        };
        if let Some(span) = spans.get(later) {
            problems.push((
                span.clone(),
                format!(
                    "replicas {earlier} and {later} of job `{job}` would both listen on {address}: a list gives each replica an address of its own (a single value serves every replica, each on its own machine)"
                ),
            ));
        }
    }
}

/// `1 entry`, `3 entries`.
fn entries(count: usize) -> String {
    if count == 1 {
        "1 entry".to_string()
    } else {
        format!("{count} entries")
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
