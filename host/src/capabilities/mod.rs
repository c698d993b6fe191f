//! Host capabilities: everything the host answers itself, each in one
//! module with one shape, the [`Capability`] trait. Its phases are the ones
//! a host has (Spin's `Factor` — `init` / `configure_app` / `prepare` — is
//! the model):
//!
//! 1. **When the app loads**: the manifest parser checks each of the
//!    capability's keys with the module's own parser (`AllowedHost::parse`,
//!    [`sockets::parse_address`], [`files::check_grant`], …), with the
//!    file:line:column of the entry; when imports are routed,
//!    [`Capability::missing_grant`] refuses an import the manifest does not
//!    grant, naming the key that would.
//! 2. **Once per job**: [`Capability::open`] opens process-wide backends
//!    (the key-value store) and resolves what each member is granted
//!    (configuration and secrets, environment, outbound hosts), giving a
//!    [`JobCapability`].
//! 3. **Per instance**: [`Capability::configure_instance`] adds what one
//!    store's WASI context is granted (preopened directories, socket
//!    addresses; shared by a graph's members, see `link::rules`).
//! 4. **Linking**: [`JobCapability::add_to_linker`] defines the host
//!    functions of one member's import.
//!
//! Adding a capability means one module here, its entry in
//! [`CAPABILITIES`], and its manifest key in `manifest`.
//!
//! # Why host functions are wired by name
//!
//! Each member of a composed graph imports a per-component capability under
//! its own import name ([`member_import_name`]:
//! `amimono-member:<label>/<slug>`), so the host knows which component calls
//! and gives it exactly what it is granted. The functions are defined with
//! `Linker::instance(name).func_wrap(…)` rather than with
//! `wasmtime::component::bindgen!`: the generated `add_to_linker` functions
//! define an interface under its WIT name only (`wasi:config/store@…`), once
//! per linker, while a graph needs the same interface defined once per
//! member, under a name known only when the graph is composed, with that
//! member's grants captured. Interfaces shared by all members (clocks,
//! random, filesystem, sockets, HTTP types) are wasmtime-wasi's own,
//! linked once per graph by their WIT names.

pub mod config;
pub mod environment;
pub mod files;
pub mod keyvalue;
pub mod logging;
pub mod outbound;
pub mod runtime;
pub mod sockets;

use crate::app::{App, InterfaceName};
use crate::host_state::HostState;
use crate::manifest::ComponentSpec;
use crate::wasmtime_error::IntoAnyhow;
use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use wasmtime::component::{Linker, LinkerInstance};
use wasmtime_wasi::WasiCtxBuilder;

/// An interface the host answers per component: its WIT path, and the last
/// part of the per-member import name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberInterface {
    /// `namespace:package/interface`, without a version.
    pub path: &'static str,
    /// The last part of the member import name ([`member_import_name`]).
    pub slug: &'static str,
}

impl MemberInterface {
    /// The interface `path` (no version), imported by members as `…/slug`.
    pub const fn new(path: &'static str, slug: &'static str) -> MemberInterface {
        MemberInterface { path, slug }
    }

    /// The per-component interface an import of `name` asks for, if any.
    pub fn of(name: &InterfaceName) -> Option<MemberInterface> {
        CAPABILITIES
            .iter()
            .flat_map(|c| c.interfaces())
            .find(|i| i.path == name.path)
            .copied()
    }

    /// The capability that answers this interface.
    fn owner(&self) -> Option<usize> {
        CAPABILITIES
            .iter()
            .position(|c| c.interfaces().contains(self))
    }
}

/// The import name under which member `label` of a composed graph imports
/// `interface`. It is shaped like an interface name (not a plain label)
/// so that wac-graph does not need the component model's experimental
/// `implements` directive, which wasmtime 48 does not enable.
pub fn member_import_name(label: &str, interface: MemberInterface) -> String {
    format!("amimono-member:{label}/{}", interface.slug)
}

/// What opening a job's capabilities needs from the process.
pub struct JobSetup<'a> {
    /// The app.
    pub app: &'a App,
    /// The components this process runs.
    pub members: &'a BTreeSet<String>,
    /// Answers of the runtime interface.
    pub facts: Arc<runtime::RuntimeFacts>,
    /// Where secrets come from.
    pub secrets: &'a config::SecretSource,
    /// Where durable data lives.
    pub data_dir: &'a Path,
}

impl JobSetup<'_> {
    /// The manifest entries of the members, with their labels.
    pub fn member_specs(&self) -> impl Iterator<Item = &ComponentSpec> {
        self.members
            .iter()
            .filter_map(|label| self.app.component(label))
            .map(|c| &c.spec)
    }
}

/// One capability of the host, in the phases described in the module docs.
#[async_trait::async_trait]
pub trait Capability: Sync {
    /// Its name in errors and logs.
    fn name(&self) -> &'static str;

    /// The interfaces it answers per member (none for capabilities that
    /// only configure WASI).
    fn interfaces(&self) -> &'static [MemberInterface] {
        &[]
    }

    /// Phase 1: if `component` may not import `interface`, the manifest key
    /// that would grant it.
    fn missing_grant(
        &self,
        _component: &ComponentSpec,
        _interface: MemberInterface,
    ) -> Option<String> {
        None
    }

    /// Phase 2: opens what the job needs, once.
    async fn open(&self, job: &JobSetup<'_>) -> Result<Arc<dyn JobCapability>>;

    /// Phase 3: adds what one instance of a graph granted `grants` gets to
    /// its WASI context.
    fn configure_instance(&self, _grants: &GraphGrants, _wasi: &mut WasiCtxBuilder) {}
}

/// A capability opened for one job.
pub trait JobCapability: Send + Sync {
    /// Phase 4: defines `interface` for member `label` under `import_name`.
    fn add_to_linker(
        &self,
        linker: &mut Linker<HostState>,
        interface: MemberInterface,
        import_name: &str,
        label: &str,
    ) -> Result<()>;
}

/// A [`JobCapability`] for capabilities without per-member interfaces.
pub struct NothingToLink;

impl JobCapability for NothingToLink {
    fn add_to_linker(
        &self,
        _: &mut Linker<HostState>,
        interface: MemberInterface,
        _: &str,
        _: &str,
    ) -> Result<()> {
        anyhow::bail!("`{}` is not answered per component", interface.path)
    }
}

/// Every capability of the host, in the order they are opened.
pub static CAPABILITIES: &[&dyn Capability] = &[
    &runtime::Runtime,
    &config::Config,
    &logging::Logging,
    &environment::Environment,
    &outbound::Outbound,
    &keyvalue::KeyValue,
    &files::Files,
    &sockets::Sockets,
];

/// What the members of one graph are granted of the WASI interfaces they
/// share (one WASI context per instance).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphGrants {
    /// Preopened directories.
    pub files: Vec<crate::manifest::FileGrant>,
    /// Socket addresses that may be connected or bound to.
    pub sockets: Vec<std::net::SocketAddr>,
}

/// Adds what an instance granted `grants` gets from every capability.
pub fn configure_instance(grants: &GraphGrants, wasi: &mut WasiCtxBuilder) {
    for capability in CAPABILITIES {
        capability.configure_instance(grants, wasi);
    }
}

/// Whether `component` may import `interface`; if not, the manifest key
/// that would grant it.
pub fn missing_grant(component: &ComponentSpec, interface: MemberInterface) -> Option<String> {
    let owner = interface.owner()?;
    CAPABILITIES[owner].missing_grant(component, interface)
}

/// Why the capabilities of a process could not be prepared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CapabilityError {
    /// A secret the manifest names has no value at run time.
    #[error(
        "component `{component}` needs the secret `{secret}`, which has no value: set the environment variable {} or add `{secret} = \"…\"` to the TOML file named by {}",
        config::secret_env_name(.secret),
        config::SECRETS_FILE_ENV
    )]
    MissingSecret {
        /// The component.
        component: String,
        /// The secret's name.
        secret: String,
    },
    /// A directory the manifest grants does not exist or cannot be opened.
    #[error(
        "component `{component}` is granted the directory `{}` (`files`, guest path `{guest}`), which cannot be opened: {reason}; create it or fix the `host` path in [components.{component}]",
        .host.display()
    )]
    UnopenableDirectory {
        /// The component.
        component: String,
        /// The directory on the host.
        host: std::path::PathBuf,
        /// Where the guest would see it.
        guest: String,
        /// Why it cannot be opened.
        reason: String,
    },
}

/// Every capability opened for one job (phase 2), ready to link members.
#[derive(Clone)]
pub struct JobCapabilities {
    facts: Arc<runtime::RuntimeFacts>,
    opened: Vec<Arc<dyn JobCapability>>,
}

impl JobCapabilities {
    /// Opens every capability for `job`.
    pub async fn open(job: &JobSetup<'_>) -> Result<JobCapabilities> {
        let mut opened = Vec::with_capacity(CAPABILITIES.len());
        for capability in CAPABILITIES {
            opened.push(
                capability
                    .open(job)
                    .await
                    .with_context(|| format!("opening the {} capability", capability.name()))?,
            );
        }
        Ok(JobCapabilities {
            facts: job.facts.clone(),
            opened,
        })
    }

    /// The runtime facts of the job.
    pub fn facts(&self) -> &Arc<runtime::RuntimeFacts> {
        &self.facts
    }

    /// Defines `interface` for member `label` under `import_name`.
    pub fn add_to_linker(
        &self,
        linker: &mut Linker<HostState>,
        interface: MemberInterface,
        import_name: &str,
        label: &str,
    ) -> Result<()> {
        let opened = interface
            .owner()
            .and_then(|owner| self.opened.get(owner))
            .with_context(|| {
                format!(
                    "component `{label}` imports `{}`, but no capability answering it is open in this job",
                    interface.path
                )
            })?;
        opened.add_to_linker(linker, interface, import_name, label)
    }
}

/// The linker instance under which one member imports a capability.
pub fn member_instance<'a>(
    linker: &'a mut Linker<HostState>,
    import_name: &str,
) -> Result<LinkerInstance<'a, HostState>> {
    linker
        .instance(import_name)
        .anyhow()
        .with_context(|| format!("defining `{import_name}`"))
}

/// Defines one member's import under `import_name`, for member `label`
/// granted `value`.
pub(crate) type LinkMember<T> = fn(&mut Linker<HostState>, &str, &str, Arc<T>) -> Result<()>;

/// A [`JobCapability`] that links each member with a value of its own
/// (its grants), resolved once per job.
struct PerMember<T> {
    values: BTreeMap<String, Arc<T>>,
    link: LinkMember<T>,
}

impl<T: Default + Send + Sync + 'static> JobCapability for PerMember<T> {
    fn add_to_linker(
        &self,
        linker: &mut Linker<HostState>,
        _: MemberInterface,
        import_name: &str,
        label: &str,
    ) -> Result<()> {
        let value = self.values.get(label).cloned().unwrap_or_default();
        (self.link)(linker, import_name, label, value)
    }
}

/// Opens a capability whose members each get `value(their spec)`, linked by
/// `link`.
pub(crate) fn per_member<T: Default + Send + Sync + 'static>(
    job: &JobSetup<'_>,
    mut value: impl FnMut(&ComponentSpec) -> Result<T>,
    link: LinkMember<T>,
) -> Result<Arc<dyn JobCapability>> {
    let values = job
        .member_specs()
        .map(|spec| Ok((spec.label.clone(), Arc::new(value(spec)?))))
        .collect::<Result<_>>()?;
    Ok(Arc::new(PerMember { values, link }))
}
