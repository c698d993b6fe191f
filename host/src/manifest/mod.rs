//! The app manifest (`amimono.toml`): its schema, parsing with spans, and the
//! checks that make a manifest valid. Every error names the file, line and
//! column and says what was expected. The format is documented in
//! `docs/manifest.md`.

mod diagnostic;
mod names;
mod schema;

pub use diagnostic::{Diagnostic, ReadTextError, read_text};
pub use names::{KEBAB_RULE, is_kebab_name};
pub use schema::deserialize_all;

use crate::limits::{LimitOverrides, Limits};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Deadline of calls between jobs when the manifest sets none.
pub const DEFAULT_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The file name `amimono run <dir>` looks for.
pub const MANIFEST_FILE: &str = "amimono.toml";

/// How a component is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BindingType {
    /// Serves `wasi:http/incoming-handler` on its own address.
    Http,
    /// Exports interfaces that other components import.
    Rpc,
    /// A worker: nothing reaches it from outside.
    None,
}

impl BindingType {
    /// The name used in manifests, bindings files and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            BindingType::Http => "http",
            BindingType::Rpc => "rpc",
            BindingType::None => "none",
        }
    }
}

impl fmt::Display for BindingType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which key-value backend the app uses (`[keyvalue] backend`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyValueBackend {
    /// One SQLite file per app (durable; the default).
    #[default]
    Sqlite,
    /// In memory, per process.
    Memory,
    /// A Redis server (`url`), shared by replicas.
    Redis,
}

/// The `[keyvalue]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyValueSection {
    /// The backend.
    #[serde(default)]
    pub backend: KeyValueBackend,
    /// Redis URL, for `backend = "redis"`.
    #[serde(default)]
    pub url: Option<String>,
    /// SQLite file, relative to the manifest, for `backend = "sqlite"`.
    #[serde(default)]
    pub path: Option<String>,
}

/// A directory a component may open (`files = [{ host, guest, mode }]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileGrant {
    /// The directory on the host, resolved against the manifest's directory.
    pub host: PathBuf,
    /// Where the guest sees it.
    pub guest: String,
    /// Whether the guest may write (`mode = "rw"`); read-only otherwise.
    pub writable: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFileGrant {
    host: String,
    guest: String,
    #[serde(default)]
    mode: Option<Spanned<String>>,
}

/// A manifest that parsed and passed every check.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Where the manifest was read from.
    pub path: PathBuf,
    /// The directory relative paths in the manifest are resolved against.
    pub dir: PathBuf,
    /// The manifest's text, kept for diagnostics and the revision.
    pub text: String,
    /// The app's name.
    pub app: String,
    /// Deadline of a call between jobs, unless the callee sets its own.
    pub call_timeout: std::time::Duration,
    /// The app's limits (`[limits]` over the defaults).
    pub limits: Limits,
    /// The key-value backend (`[keyvalue]`).
    pub keyvalue: KeyValueSection,
    /// Components by label.
    pub components: BTreeMap<String, ComponentSpec>,
    /// Jobs by name, in the selected layout (`[jobs]` unless
    /// [`Manifest::select_layout`] chose a named one).
    pub jobs: BTreeMap<String, JobSpec>,
    /// The selected named layout, or `None` for the default (`[jobs]`).
    pub layout: Option<String>,
    /// Every named layout (`[layouts.<name>.<job>]`): its jobs by name.
    pub layouts: BTreeMap<String, BTreeMap<String, JobSpec>>,
}

/// The layout asked for (`AMIMONO_LAYOUT` or `--layout`) does not exist.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "unknown layout `{layout}`: app `{app}` {}",
    if known.is_empty() {
        "defines no `[layouts.<name>.<job>]`: its only layout is `[jobs]`".to_string()
    } else {
        format!("has the layouts {} (besides the default, `[jobs]`)", known.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", "))
    }
)]
pub struct UnknownLayout {
    /// The name asked for.
    pub layout: String,
    /// The app's name.
    pub app: String,
    /// The named layouts that exist.
    pub known: Vec<String>,
}

/// One component of the app as the manifest describes it.
#[derive(Debug, Clone)]
pub struct ComponentSpec {
    /// Globally unique label.
    pub label: String,
    /// The component's `.wasm` file, resolved against the manifest's directory.
    pub source: PathBuf,
    /// The `source` value as written, with its span.
    pub source_span: Range<usize>,
    /// The shell command that builds `source`, run in the manifest's directory.
    pub build: Option<String>,
    /// How the component is reached.
    pub binding: BindingType,
    /// Explicit links: interface name (with or without `@version`) → exporter label.
    pub links: BTreeMap<String, String>,
    /// The job the component is placed in.
    pub job: String,
    /// Deadline of calls to this component from other jobs, if it overrides the app's.
    pub call_timeout: Option<std::time::Duration>,
    /// Exported functions that are safe to retry after a transport failure
    /// (`name` or `interface#name`).
    pub idempotent: Vec<String>,
    /// Limits of the graphs this component is the entry of.
    pub limits: Limits,
    /// Configuration values (`wasi:config`).
    pub config: BTreeMap<String, String>,
    /// Names of secrets, resolved at run time and read through `wasi:config`.
    pub secrets: Vec<String>,
    /// Environment variables (`wasi:cli/environment`).
    pub env: BTreeMap<String, String>,
    /// Key-value stores it may open (`wasi:keyvalue`).
    pub keyvalue: Vec<String>,
    /// Hosts it may send HTTP requests to (`wasi:http/outgoing-handler`).
    pub allowed_outbound_hosts: Vec<String>,
    /// Directories it may open (`wasi:filesystem`).
    pub files: Vec<FileGrant>,
    /// Addresses it may connect or bind sockets to (`wasi:sockets`).
    pub sockets: Vec<std::net::SocketAddr>,
    /// Span of the component's table header key.
    pub label_span: Range<usize>,
}

/// A job: a set of components run in one process.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// The job's name.
    pub name: String,
    /// Labels of the job's components, in manifest order.
    pub components: Vec<String>,
    /// Processes that run the job side by side (`replicas`, default 1).
    pub replicas: u32,
}

/// Most replicas a job may ask for.
pub const MAX_REPLICAS: u32 = 100;

/// Why a manifest could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The file could not be read. The I/O error is part of the message,
    /// not a `source`, so it is printed once.
    #[error("cannot read manifest `{}`: {error}", .path.display())]
    Read {
        /// The path that was tried.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The manifest is not valid TOML or breaks a rule; one diagnostic per problem.
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
}

fn render(diagnostics: &[Diagnostic]) -> String {
    let mut out = format!(
        "invalid manifest ({} problem{})",
        diagnostics.len(),
        if diagnostics.len() == 1 { "" } else { "s" }
    );
    for d in diagnostics {
        out.push_str("\n\n");
        out.push_str(&d.to_string());
    }
    out
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    app: Spanned<RawApp>,
    #[serde(default)]
    limits: Option<Spanned<LimitOverrides>>,
    #[serde(default)]
    keyvalue: Option<Spanned<KeyValueSection>>,
    #[serde(default)]
    components: BTreeMap<Spanned<String>, Spanned<RawComponent>>,
    #[serde(default)]
    jobs: BTreeMap<Spanned<String>, Spanned<RawJob>>,
    #[serde(default)]
    layouts: BTreeMap<Spanned<String>, BTreeMap<Spanned<String>, Spanned<RawJob>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    name: Spanned<String>,
    #[serde(default)]
    call_timeout_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    source: Spanned<String>,
    #[serde(default)]
    build: Option<Spanned<String>>,
    #[serde(default)]
    binding: Option<Spanned<BindingType>>,
    #[serde(default)]
    links: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    call_timeout_ms: Option<Spanned<u64>>,
    #[serde(default)]
    idempotent: Vec<Spanned<String>>,
    #[serde(default)]
    limits: Option<Spanned<LimitOverrides>>,
    #[serde(default)]
    config: BTreeMap<String, String>,
    #[serde(default)]
    secrets: Vec<Spanned<String>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    keyvalue: Vec<Spanned<String>>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<Spanned<String>>,
    #[serde(default)]
    files: Vec<Spanned<RawFileGrant>>,
    #[serde(default)]
    sockets: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    components: Vec<Spanned<String>>,
    #[serde(default)]
    replicas: Option<Spanned<u32>>,
}

impl Manifest {
    /// Loads the manifest at `path`: a manifest file, or a directory holding
    /// `amimono.toml`.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let file = if path.is_dir() {
            path.join(MANIFEST_FILE)
        } else {
            path.to_path_buf()
        };
        let text = read_text(&file).map_err(|e| match e {
            ReadTextError::Io(error) => ManifestError::Read {
                path: file.clone(),
                error,
            },
            ReadTextError::NotUtf8(diagnostic) => ManifestError::Invalid(vec![diagnostic]),
        })?;
        Manifest::parse(&file, text)
    }

    /// Parses and checks manifest `text`, read from `file`.
    pub fn parse(file: &Path, text: String) -> Result<Manifest, ManifestError> {
        let raw: RawManifest =
            schema::deserialize_all(file, &text).map_err(ManifestError::Invalid)?;
        let dir = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let mut check = Checker {
            file,
            text: &text,
            problems: Vec::new(),
        };
        let manifest = check.build(raw, &dir);
        if check.problems.is_empty() {
            Ok(Manifest {
                path: file.to_path_buf(),
                dir,
                text,
                ..manifest
            })
        } else {
            Err(ManifestError::Invalid(check.problems))
        }
    }

    /// A diagnostic pointing into this manifest.
    pub fn diagnostic(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(&self.path, &self.text, Some(span), message.into())
    }

    /// The job names, in order.
    pub fn job_names(&self) -> Vec<&str> {
        self.jobs.keys().map(String::as_str).collect()
    }

    /// Makes the named layout's jobs the manifest's jobs (and each
    /// component's job). The default layout, `[jobs]`, is never renamed.
    pub fn select_layout(&mut self, layout: &str) -> Result<(), UnknownLayout> {
        let jobs = self
            .layouts
            .get(layout)
            .cloned()
            .ok_or_else(|| UnknownLayout {
                layout: layout.to_string(),
                app: self.app.clone(),
                known: self.layouts.keys().cloned().collect(),
            })?;
        for (job, spec) in &jobs {
            for label in &spec.components {
                if let Some(component) = self.components.get_mut(label) {
                    component.job = job.clone();
                }
            }
        }
        self.jobs = jobs;
        self.layout = Some(layout.to_string());
        Ok(())
    }
}

/// Where each component was placed: label → (job, span of the listing).
type Placed = BTreeMap<String, (String, Range<usize>)>;

/// Collects every problem of a raw manifest while building the checked one.
struct Checker<'a> {
    file: &'a Path,
    text: &'a str,
    problems: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn problem(&mut self, span: Range<usize>, message: String) {
        self.problems
            .push(Diagnostic::new(self.file, self.text, Some(span), message));
    }

    /// Limits are positive; app-wide ones are not set per component.
    fn check_limits(&mut self, limits: &Spanned<LimitOverrides>, what: &str, per_component: bool) {
        for key in limits.get_ref().zero_keys() {
            self.problem(limits.span(), format!("{what}: `{key}` must be at least 1"));
        }
        if per_component {
            for key in limits.get_ref().app_only_keys() {
                self.problem(
                    limits.span(),
                    format!("{what}: `{key}` applies to the whole job: set it in the app's `[limits]` table"),
                );
            }
        }
    }

    /// A `call_timeout_ms` value: positive, at most a day.
    fn timeout(&mut self, ms: Option<&Spanned<u64>>) -> Option<std::time::Duration> {
        let ms = ms?;
        if *ms.get_ref() == 0 || *ms.get_ref() > 86_400_000 {
            self.problem(
                ms.span(),
                format!(
                    "`call_timeout_ms` must be between 1 and 86400000 (a day), not {}",
                    ms.get_ref()
                ),
            );
            return None;
        }
        Some(std::time::Duration::from_millis(*ms.get_ref()))
    }

    fn check_name(&mut self, what: &str, name: &Spanned<String>) {
        if !is_kebab_name(name.get_ref()) {
            self.problem(
                name.span(),
                format!("invalid {what} `{}`: {KEBAB_RULE}", name.get_ref()),
            );
        }
    }

    fn build(&mut self, raw: RawManifest, dir: &Path) -> Manifest {
        let app = raw.app.into_inner();
        self.check_name("app name", &app.name);
        let call_timeout = self
            .timeout(app.call_timeout_ms.as_ref())
            .unwrap_or(DEFAULT_CALL_TIMEOUT);
        let keyvalue = raw.keyvalue.as_ref().map(|section| {
            if section.get_ref().backend == KeyValueBackend::Redis
                && section.get_ref().url.is_none()
            {
                self.problem(
                    section.span(),
                    "`backend = \"redis\"` needs `url = \"redis://host:port\"`".into(),
                );
            }
            section.get_ref().clone()
        });
        let app_limits = match &raw.limits {
            Some(limits) => {
                self.check_limits(limits, "[limits]", false);
                limits.get_ref().apply(Limits::default())
            }
            None => Limits::default(),
        };

        if raw.components.is_empty() {
            self.problem(
                0..0,
                "the manifest defines no components: add a `[components.<label>]` table".into(),
            );
        }
        if raw.jobs.is_empty() {
            self.problem(
                0..0,
                "the manifest defines no jobs: add a `[jobs.<name>]` table with `components = [...]`"
                    .into(),
            );
        }

        let labels: Vec<String> = raw.components.keys().map(|k| k.get_ref().clone()).collect();
        let known = labels.join(", ");

        // Placement: each component in exactly one job, in `[jobs]` and in
        // every named layout.
        let (jobs, placed) = self.place(&raw.jobs, &labels, "");
        let mut layouts = BTreeMap::new();
        for (name, layout_jobs) in &raw.layouts {
            self.check_name("layout name", name);
            if layout_jobs.is_empty() {
                self.problem(
                    name.span(),
                    format!(
                        "layout `{}` has no jobs: add `[layouts.{}.<job>]` tables with `components = [...]`",
                        name.get_ref(),
                        name.get_ref()
                    ),
                );
            }
            let (layout, layout_placed) = self.place(
                layout_jobs,
                &labels,
                &format!("layout `{}`: ", name.get_ref()),
            );
            for label in &labels {
                if !layout_placed.contains_key(label) && !layout_jobs.is_empty() {
                    self.problem(
                        name.span(),
                        format!(
                            "layout `{}` does not place component `{label}`: list it in one of the layout's jobs",
                            name.get_ref()
                        ),
                    );
                }
            }
            layouts.insert(name.get_ref().clone(), layout);
        }

        let mut components = BTreeMap::new();
        for (label, component) in raw.components {
            self.check_name("component label", &label);
            let component = component.into_inner();
            let job = match placed.get(label.get_ref()) {
                Some((job, _)) => job.clone(),
                None => {
                    if !raw.jobs.is_empty() {
                        self.problem(
                            label.span(),
                            format!(
                                "component `{}` is not placed in any job: list it in one job's `components`",
                                label.get_ref()
                            ),
                        );
                    }
                    String::new()
                }
            };
            if component.source.get_ref().trim().is_empty() {
                self.problem(
                    component.source.span(),
                    "`source` is empty: give the path of the component's .wasm file".into(),
                );
            }
            for secret in &component.secrets {
                if secret.get_ref().trim().is_empty() {
                    self.problem(secret.span(), "a secret name cannot be empty".into());
                } else if component.config.contains_key(secret.get_ref()) {
                    self.problem(
                        secret.span(),
                        format!(
                            "`{}` is both a `config` value and a secret of component `{}`: keep one",
                            secret.get_ref(),
                            label.get_ref()
                        ),
                    );
                }
            }
            // Each capability's entries are checked by its own parser.
            use crate::capabilities::{files, outbound, sockets};
            for grant in &component.files {
                if let Some(mode) = &grant.get_ref().mode
                    && let Err(message) = files::check_mode(mode.get_ref())
                {
                    self.problem(mode.span(), message);
                }
                if let Err(message) = files::check_guest(&grant.get_ref().guest) {
                    self.problem(grant.span(), message);
                }
            }
            for address in &component.sockets {
                if let Err(message) = sockets::parse_address(address.get_ref()) {
                    self.problem(address.span(), message);
                }
            }
            for host in &component.allowed_outbound_hosts {
                if let Err(message) = outbound::AllowedHost::parse(host.get_ref()) {
                    self.problem(
                        host.span(),
                        format!("invalid `allowed_outbound_hosts` entry {message}"),
                    );
                }
            }
            let mut links = BTreeMap::new();
            for (interface, target) in &component.links {
                if !looks_like_interface(interface.get_ref()) {
                    self.problem(
                        interface.span(),
                        format!(
                            "link key `{}` is not an interface name: expected `namespace:package/interface` (optionally `@version`)",
                            interface.get_ref()
                        ),
                    );
                }
                if !labels.contains(target.get_ref()) {
                    self.problem(
                        target.span(),
                        format!(
                            "link target `{}` is not a component of the app (components: {known})",
                            target.get_ref()
                        ),
                    );
                } else if target.get_ref() == label.get_ref() {
                    self.problem(
                        target.span(),
                        format!(
                            "component `{}` cannot link an import to itself",
                            label.get_ref()
                        ),
                    );
                }
                links.insert(interface.get_ref().clone(), target.get_ref().clone());
            }
            components.insert(
                label.get_ref().clone(),
                ComponentSpec {
                    label: label.get_ref().clone(),
                    source: dir.join(component.source.get_ref()),
                    source_span: component.source.span(),
                    build: component.build.map(Spanned::into_inner),
                    binding: component
                        .binding
                        .map_or(BindingType::None, Spanned::into_inner),
                    links,
                    job,
                    call_timeout: self.timeout(component.call_timeout_ms.as_ref()),
                    idempotent: component
                        .idempotent
                        .iter()
                        .map(|f| f.get_ref().clone())
                        .collect(),
                    limits: match &component.limits {
                        Some(limits) => {
                            self.check_limits(limits, "component limits", true);
                            limits.get_ref().apply(app_limits)
                        }
                        None => app_limits,
                    },
                    config: component.config.clone(),
                    secrets: component
                        .secrets
                        .iter()
                        .map(|s| s.get_ref().clone())
                        .collect(),
                    env: component.env.clone(),
                    keyvalue: component
                        .keyvalue
                        .iter()
                        .map(|s| s.get_ref().clone())
                        .collect(),
                    allowed_outbound_hosts: component
                        .allowed_outbound_hosts
                        .iter()
                        .map(|s| s.get_ref().clone())
                        .collect(),
                    files: component
                        .files
                        .iter()
                        .map(|f| FileGrant {
                            host: dir.join(&f.get_ref().host),
                            guest: f.get_ref().guest.clone(),
                            writable: f
                                .get_ref()
                                .mode
                                .as_ref()
                                .is_some_and(|m| m.get_ref() == "rw"),
                        })
                        .collect(),
                    sockets: component
                        .sockets
                        .iter()
                        .filter_map(|a| {
                            crate::capabilities::sockets::parse_address(a.get_ref()).ok()
                        })
                        .collect(),
                    label_span: label.span(),
                },
            );
        }

        let keyvalue = keyvalue.unwrap_or_default();
        self.check_replicated_state(&raw.jobs, &components, &keyvalue, "");
        for (name, layout_jobs) in &raw.layouts {
            let context = format!("layout `{}`: ", name.get_ref());
            self.check_replicated_state(layout_jobs, &components, &keyvalue, &context);
        }

        Manifest {
            path: PathBuf::new(),
            dir: PathBuf::new(),
            text: String::new(),
            app: app.name.into_inner(),
            call_timeout,
            limits: app_limits,
            keyvalue,
            components,
            jobs,
            layout: None,
            layouts,
        }
    }

    /// Refuses `replicas` above 1 on a job that keeps durable state on its
    /// machine (key-value stores in the SQLite file, directories it writes):
    /// every replica would keep a copy of its own.
    fn check_replicated_state(
        &mut self,
        raw_jobs: &BTreeMap<Spanned<String>, Spanned<RawJob>>,
        components: &BTreeMap<String, ComponentSpec>,
        keyvalue: &KeyValueSection,
        context: &str,
    ) {
        for (name, job) in raw_jobs {
            let Some(replicas) = job.get_ref().replicas.as_ref() else {
                continue;
            };
            if !(2..=MAX_REPLICAS).contains(replicas.get_ref()) {
                continue;
            }
            for member in &job.get_ref().components {
                let Some(component) = components.get(member.get_ref()) else {
                    continue;
                };
                if let Some(state) = local_state(component, keyvalue) {
                    let remedy = if state.contains("SQLite") {
                        "use `[keyvalue] backend = \"redis\"` (one store every replica shares), or keep `replicas = 1`"
                    } else {
                        "keep `replicas = 1`"
                    };
                    self.problem(
                        replicas.span(),
                        format!(
                            "{context}job `{}` has `replicas = {}`, but its component `{}` keeps durable state on the job's machine ({state}): each replica would keep a copy of its own; {remedy}",
                            name.get_ref(),
                            replicas.get_ref(),
                            component.label
                        ),
                    );
                }
            }
        }
    }

    /// Checks one layout's jobs (`[jobs]` or `[layouts.<name>]`): names,
    /// members that exist, each component placed at most once. Returns the
    /// jobs and where each component was placed. `context` prefixes messages.
    fn place(
        &mut self,
        raw_jobs: &BTreeMap<Spanned<String>, Spanned<RawJob>>,
        labels: &[String],
        context: &str,
    ) -> (BTreeMap<String, JobSpec>, Placed) {
        let known = labels.join(", ");
        let mut placed = Placed::new();
        let mut jobs = BTreeMap::new();
        for (name, job) in raw_jobs {
            self.check_name("job name", name);
            let job = job.get_ref();
            if job.components.is_empty() {
                self.problem(
                    name.span(),
                    format!("{context}job `{}` has no components", name.get_ref()),
                );
            }
            let mut members = Vec::new();
            for member in &job.components {
                let label = member.get_ref();
                if !labels.contains(label) {
                    self.problem(
                        member.span(),
                        format!(
                            "{context}job `{}` lists component `{label}`, which the manifest does not define (components: {known})",
                            name.get_ref()
                        ),
                    );
                    continue;
                }
                if let Some((other, _)) = placed.get(label) {
                    let message = if other == name.get_ref() {
                        format!("{context}component `{label}` is listed twice in job `{other}`")
                    } else {
                        format!(
                            "{context}component `{label}` placed multiple times: in job `{other}` and in job `{}`; a component runs in exactly one job",
                            name.get_ref()
                        )
                    };
                    self.problem(member.span(), message);
                    continue;
                }
                placed.insert(label.clone(), (name.get_ref().clone(), member.span()));
                members.push(label.clone());
            }
            let replicas = match &job.replicas {
                Some(replicas) if !(1..=MAX_REPLICAS).contains(replicas.get_ref()) => {
                    self.problem(
                        replicas.span(),
                        format!(
                            "{context}job `{}`: `replicas` must be between 1 and {MAX_REPLICAS}, not {}",
                            name.get_ref(),
                            replicas.get_ref()
                        ),
                    );
                    1
                }
                Some(replicas) => *replicas.get_ref(),
                None => 1,
            };
            jobs.insert(
                name.get_ref().clone(),
                JobSpec {
                    name: name.get_ref().clone(),
                    components: members,
                    replicas,
                },
            );
        }
        (jobs, placed)
    }
}

/// The durable state `component` keeps on its job's machine, described:
/// key-value stores in the SQLite file, or directories it may write.
/// `None` when it keeps none (Redis and in-memory stores are not local
/// durable state).
pub fn local_state(component: &ComponentSpec, keyvalue: &KeyValueSection) -> Option<String> {
    let mut kept = Vec::new();
    if !component.keyvalue.is_empty() && keyvalue.backend == KeyValueBackend::Sqlite {
        let stores: Vec<String> = component
            .keyvalue
            .iter()
            .map(|store| format!("`{store}`"))
            .collect();
        kept.push(format!(
            "key-value store{} {} in SQLite",
            if stores.len() == 1 { "" } else { "s" },
            stores.join(", ")
        ));
    }
    for grant in component.files.iter().filter(|grant| grant.writable) {
        kept.push(format!(
            "the directory `{}`, granted `mode = \"rw\"`",
            grant.guest
        ));
    }
    (!kept.is_empty()).then(|| kept.join("; "))
}

/// `ns:pkg/iface` with an optional `@version`.
fn looks_like_interface(name: &str) -> bool {
    let unversioned = crate::app::InterfaceName::unversioned(name);
    match unversioned.split_once(':') {
        Some((ns, rest)) => match rest.split_once('/') {
            Some((pkg, iface)) => !ns.is_empty() && !pkg.is_empty() && !iface.is_empty(),
            None => false,
        },
        None => false,
    }
}

#[cfg(test)]
mod tests;
