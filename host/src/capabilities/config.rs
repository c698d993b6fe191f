//! `wasi:config/store@0.2.0-rc.1`: a component's configuration. Values come
//! from the manifest (`config = { key = "value" }`); secrets are only named
//! there (`secrets = ["api-token"]`) and resolved at run time from the
//! environment (`AMIMONO_SECRET_<KEY>`, upper-case, `-` → `_`) or from the
//! TOML file named by `AMIMONO_SECRETS`. Secrets are never written to a
//! bundle, and never logged: their values only exist in memory and
//! [`ConfigValue`]'s `Debug` hides them.

use super::{Capability, CapabilityError, JobCapability, JobSetup, MemberInterface, per_member};
use crate::host_state::HostState;
use crate::manifest::ComponentSpec;
use crate::wasmtime_error::IntoAnyhow;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use wasmtime::component::{ComponentType, Linker, Lower};

/// Environment variable naming the secrets file.
pub const SECRETS_FILE_ENV: &str = "AMIMONO_SECRETS";
/// Prefix of environment variables holding secrets.
pub const SECRET_ENV_PREFIX: &str = "AMIMONO_SECRET_";

/// A configuration value; a secret's text is hidden from `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub enum ConfigValue {
    /// A value written in the manifest.
    Plain(String),
    /// A secret resolved at run time.
    Secret(String),
}

impl ConfigValue {
    /// The value.
    pub fn text(&self) -> &str {
        match self {
            ConfigValue::Plain(v) | ConfigValue::Secret(v) => v,
        }
    }
}

impl fmt::Debug for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigValue::Plain(v) => write!(f, "{v:?}"),
            ConfigValue::Secret(_) => f.write_str("<secret>"),
        }
    }
}

/// `error` of the WIT.
#[derive(Debug, Clone, ComponentType, Lower)]
#[component(variant)]
#[allow(dead_code, reason = "the cases give the WIT type its shape")]
enum ConfigError {
    #[component(name = "upstream")]
    Upstream(String),
    #[component(name = "io")]
    Io(String),
}

/// Where secrets come from at run time.
#[derive(Debug, Default)]
pub struct SecretSource {
    file: BTreeMap<String, String>,
}

impl SecretSource {
    /// Reads the file named by `AMIMONO_SECRETS`, if set.
    pub fn from_environment() -> Result<SecretSource> {
        let Some(path) = std::env::var_os(SECRETS_FILE_ENV) else {
            return Ok(SecretSource::default());
        };
        let path = Path::new(&path);
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "reading the secrets file `{}` ({SECRETS_FILE_ENV})",
                path.display()
            )
        })?;
        let file: BTreeMap<String, String> = toml::from_str(&text).map_err(|e| {
            // The message may quote the file; secrets must not reach the log.
            anyhow::anyhow!(
                "the secrets file `{}` ({SECRETS_FILE_ENV}) is not a TOML table of strings (at byte {})",
                path.display(),
                e.span().map_or(0, |s| s.start)
            )
        })?;
        Ok(SecretSource { file })
    }

    /// The secret `key`: the environment first, then the file.
    pub fn get(&self, key: &str) -> Option<String> {
        std::env::var(secret_env_name(key))
            .ok()
            .or_else(|| self.file.get(key).cloned())
    }
}

/// `AMIMONO_SECRET_<KEY>` for `key`.
pub fn secret_env_name(key: &str) -> String {
    format!(
        "{SECRET_ENV_PREFIX}{}",
        key.to_ascii_uppercase().replace(['-', '.'], "_")
    )
}

/// `wasi:config/store`.
pub const STORE: MemberInterface = MemberInterface::new("wasi:config/store", "config");

/// Configuration values and secrets per component.
pub struct Config;

/// One component's configuration, secrets resolved.
type Values = BTreeMap<String, ConfigValue>;

#[async_trait::async_trait]
impl Capability for Config {
    fn name(&self) -> &'static str {
        "configuration"
    }

    fn interfaces(&self) -> &'static [MemberInterface] {
        &[STORE]
    }

    fn missing_grant(&self, component: &ComponentSpec, _: MemberInterface) -> Option<String> {
        (component.config.is_empty() && component.secrets.is_empty()).then(|| {
            format!(
                "`config = {{ … }}` or `secrets = [ … ]` in [components.{}]",
                component.label
            )
        })
    }

    async fn open(&self, job: &JobSetup<'_>) -> Result<Arc<dyn JobCapability>> {
        per_member(job, |spec| resolve(spec, job.secrets), add_store)
    }
}

/// The configuration of `spec`, its secrets taken from `secrets`.
fn resolve(spec: &ComponentSpec, secrets: &SecretSource) -> Result<Values> {
    let mut values: Values = spec
        .config
        .iter()
        .map(|(k, v)| (k.clone(), ConfigValue::Plain(v.clone())))
        .collect();
    for secret in &spec.secrets {
        let value = secrets
            .get(secret)
            .ok_or_else(|| CapabilityError::MissingSecret {
                component: spec.label.clone(),
                secret: secret.clone(),
            })?;
        values.insert(secret.clone(), ConfigValue::Secret(value));
    }
    Ok(values)
}

/// Defines `wasi:config/store` for one member, answering `values`.
fn add_store(
    linker: &mut Linker<HostState>,
    import_name: &str,
    _label: &str,
    values: Arc<Values>,
) -> Result<()> {
    let mut instance = super::member_instance(linker, import_name)?;
    let v = values.clone();
    instance
        .func_wrap("get", move |_, (key,): (String,)| {
            Ok((Ok::<_, ConfigError>(
                v.get(&key).map(|v| v.text().to_string()),
            ),))
        })
        .anyhow()?;
    instance
        .func_wrap("get-all", move |_, (): ()| {
            let all: Vec<(String, String)> = values
                .iter()
                .map(|(k, v)| (k.clone(), v.text().to_string()))
                .collect();
            Ok((Ok::<_, ConfigError>(all),))
        })
        .anyhow()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_hidden_from_debug_output() {
        let v = ConfigValue::Secret("hunter2".into());
        assert_eq!(format!("{v:?}"), "<secret>");
        assert_eq!(v.text(), "hunter2");
        assert_eq!(format!("{:?}", ConfigValue::Plain("x".into())), "\"x\"");
    }

    #[test]
    fn secret_environment_names() {
        assert_eq!(secret_env_name("api-token"), "AMIMONO_SECRET_API_TOKEN");
    }
}
