//! Host capabilities answered per component. Each member of a composed graph
//! imports these interfaces under its own name
//! ([`member_import_name`]), so the host knows which component calls and
//! gives it exactly what the manifest grants it: its label and discovery
//! ([`runtime`]), its configuration and secrets ([`config`]), its log lines
//! and stdout/stderr ([`logging`]), its environment variables
//! ([`environment`]). WASI interfaces not listed here (clocks, random,
//! filesystem, sockets, HTTP) are shared by a graph's members.

pub mod config;
pub mod environment;
pub mod keyvalue;
pub mod logging;
pub mod outbound;
pub mod runtime;

use crate::app::{App, InterfaceName};
use crate::manifest::ComponentSpec;
use anyhow::Result;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::Linker;

use crate::host_state::HostState;

/// An interface the host answers per component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    /// `amimono:runtime/context`: label, job, revision, discovery.
    Runtime,
    /// `wasi:config/store`: the component's configuration and secrets.
    Config,
    /// `wasi:logging/logging`: log lines to the host's log.
    Logging,
    /// `wasi:cli/environment`: the component's granted environment variables.
    Environment,
    /// `wasi:cli/stdout`: lines go to the host's log.
    Stdout,
    /// `wasi:cli/stderr`: lines go to the host's log.
    Stderr,
    /// `wasi:keyvalue/store`: the stores the component may open.
    KeyValueStore,
    /// `wasi:keyvalue/atomics`.
    KeyValueAtomics,
    /// `wasi:keyvalue/batch`.
    KeyValueBatch,
    /// `amimono:keyvalue/cas`: compare-and-swap.
    KeyValueCas,
    /// `wasi:http/outgoing-handler`: requests to allowed hosts only.
    OutgoingHttp,
}

impl Capability {
    /// The capability an import of interface `name` asks for, if any.
    pub fn of(name: &InterfaceName) -> Option<Capability> {
        Some(match name.path.as_str() {
            "amimono:runtime/context" => Capability::Runtime,
            "wasi:config/store" => Capability::Config,
            "wasi:logging/logging" => Capability::Logging,
            "wasi:cli/environment" => Capability::Environment,
            "wasi:cli/stdout" => Capability::Stdout,
            "wasi:cli/stderr" => Capability::Stderr,
            "wasi:keyvalue/store" => Capability::KeyValueStore,
            "wasi:keyvalue/atomics" => Capability::KeyValueAtomics,
            "wasi:keyvalue/batch" => Capability::KeyValueBatch,
            "amimono:keyvalue/cas" => Capability::KeyValueCas,
            "wasi:http/outgoing-handler" => Capability::OutgoingHttp,
            _ => return None,
        })
    }

    /// The last part of the member import name.
    fn slug(self) -> &'static str {
        match self {
            Capability::Runtime => "runtime",
            Capability::Config => "config",
            Capability::Logging => "logging",
            Capability::Environment => "cli-environment",
            Capability::Stdout => "cli-stdout",
            Capability::Stderr => "cli-stderr",
            Capability::KeyValueStore => "keyvalue-store",
            Capability::KeyValueAtomics => "keyvalue-atomics",
            Capability::KeyValueBatch => "keyvalue-batch",
            Capability::KeyValueCas => "keyvalue-cas",
            Capability::OutgoingHttp => "http-outgoing-handler",
        }
    }
}

/// The import name under which member `label` of a composed graph imports
/// `capability`. It is shaped like an interface name (not a plain label)
/// so that wac-graph does not need the component model's experimental
/// `implements` directive, which wasmtime 48 does not enable.
pub fn member_import_name(label: &str, capability: Capability) -> String {
    format!("amimono-member:{label}/{}", capability.slug())
}

/// The linker instance under which one member imports a capability.
pub fn member_instance<'a>(
    linker: &'a mut Linker<HostState>,
    import_name: &str,
) -> Result<wasmtime::component::LinkerInstance<'a, HostState>> {
    use crate::wasmtime_error::IntoAnyhow;
    use anyhow::Context;
    linker
        .instance(import_name)
        .anyhow()
        .with_context(|| format!("defining `{import_name}`"))
}

/// What one component is granted, from the manifest and the run-time secrets.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// Configuration values and resolved secrets, by key.
    pub config: BTreeMap<String, config::ConfigValue>,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// Key-value stores it may open.
    pub stores: Arc<std::collections::BTreeSet<String>>,
    /// Hosts it may send HTTP requests to; empty: every request is denied.
    pub outbound: Arc<Vec<outbound::AllowedHost>>,
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
}

/// Everything the capabilities of one process need.
#[derive(Clone, Default)]
pub struct CapabilityContext {
    /// Answers of the runtime interface.
    pub facts: Arc<runtime::RuntimeFacts>,
    /// Grants by component label.
    pub grants: BTreeMap<String, Arc<Grants>>,
    /// The key-value backend, when some component is granted a store.
    pub keyvalue: Option<Arc<dyn keyvalue::Backend>>,
}

impl std::fmt::Debug for dyn keyvalue::Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("key-value backend")
    }
}

impl CapabilityContext {
    /// The grants of the components `labels` of `app`, with secrets taken
    /// from `secrets`.
    pub fn new<'a>(
        app: &App,
        facts: Arc<runtime::RuntimeFacts>,
        labels: impl IntoIterator<Item = &'a String>,
        secrets: &config::SecretSource,
        keyvalue: Option<Arc<dyn keyvalue::Backend>>,
    ) -> Result<CapabilityContext, CapabilityError> {
        let mut grants = BTreeMap::new();
        for label in labels {
            let Some(component) = app.component(label) else {
                continue;
            };
            let spec = &component.spec;
            let mut values: BTreeMap<String, config::ConfigValue> = spec
                .config
                .iter()
                .map(|(k, v)| (k.clone(), config::ConfigValue::Plain(v.clone())))
                .collect();
            for secret in &spec.secrets {
                let value = secrets
                    .get(secret)
                    .ok_or_else(|| CapabilityError::MissingSecret {
                        component: label.clone(),
                        secret: secret.clone(),
                    })?;
                values.insert(secret.clone(), config::ConfigValue::Secret(value));
            }
            grants.insert(
                label.clone(),
                Arc::new(Grants {
                    config: values,
                    env: spec
                        .env
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    stores: Arc::new(spec.keyvalue.iter().cloned().collect()),
                    outbound: Arc::new(
                        spec.allowed_outbound_hosts
                            .iter()
                            .filter_map(|h| outbound::AllowedHost::parse(h).ok())
                            .collect(),
                    ),
                }),
            );
        }
        Ok(CapabilityContext {
            facts,
            grants,
            keyvalue,
        })
    }
}

/// Whether `component` may import `capability`; if not, the manifest key
/// that would grant it. `wasi:http/outgoing-handler` may always be
/// imported: without `allowed_outbound_hosts` (or with `[]`) every request
/// is denied when it is made.
pub fn missing_grant(component: &ComponentSpec, capability: Capability) -> Option<String> {
    match capability {
        Capability::Config if component.config.is_empty() && component.secrets.is_empty() => {
            Some(format!(
                "`config = {{ … }}` or `secrets = [ … ]` in [components.{}]",
                component.label
            ))
        }
        Capability::KeyValueStore
        | Capability::KeyValueAtomics
        | Capability::KeyValueBatch
        | Capability::KeyValueCas
            if component.keyvalue.is_empty() =>
        {
            Some(format!(
                "`keyvalue = [\"<store>\"]` in [components.{}]",
                component.label
            ))
        }
        // Outbound HTTP is never refused at start: every componentize-py and
        // componentize-js HTTP component (and many Spin components) imports
        // `wasi:http/outgoing-handler` whether or not it sends requests. An
        // ungranted import links and denies every request at call time
        // (`outbound::add_to_linker`), as Spin and wasmtime do.
        _ => None,
    }
}

/// Defines `capability` for member `label` under `import_name`.
pub fn add_to_linker(
    linker: &mut Linker<HostState>,
    capability: Capability,
    import_name: &str,
    label: &str,
    context: &CapabilityContext,
) -> Result<()> {
    let grants = context.grants.get(label).cloned().unwrap_or_default();
    match capability {
        Capability::Runtime => runtime::add_to_linker(linker, import_name, label, &context.facts),
        Capability::Config => config::add_to_linker(linker, import_name, grants),
        Capability::Logging => {
            logging::add_to_linker(linker, import_name, label, &context.facts.job)
        }
        Capability::Environment => environment::add_to_linker(linker, import_name, grants),
        Capability::Stdout => logging::add_stdio_to_linker(
            linker,
            import_name,
            label,
            &context.facts.job,
            logging::Stream::Stdout,
        ),
        Capability::Stderr => logging::add_stdio_to_linker(
            linker,
            import_name,
            label,
            &context.facts.job,
            logging::Stream::Stderr,
        ),
        Capability::OutgoingHttp => {
            outbound::add_to_linker(linker, import_name, label, grants.outbound.clone())
        }
        Capability::KeyValueStore
        | Capability::KeyValueAtomics
        | Capability::KeyValueBatch
        | Capability::KeyValueCas => {
            let backend = context
                .keyvalue
                .clone()
                .ok_or_else(|| anyhow::anyhow!("no key-value backend is open for `{label}`"))?;
            match capability {
                Capability::KeyValueStore => {
                    keyvalue::add_store(linker, import_name, label, grants.stores.clone(), backend)
                }
                Capability::KeyValueAtomics => keyvalue::add_atomics(linker, import_name, backend),
                Capability::KeyValueBatch => keyvalue::add_batch(linker, import_name, backend),
                _ => keyvalue::add_cas(linker, import_name, backend),
            }
        }
    }
}
