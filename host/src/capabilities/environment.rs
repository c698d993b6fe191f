//! `wasi:cli/environment`, per component: only the variables the manifest
//! grants it (`env = { NAME = "value" }`), no arguments, `/` as cwd unset.

use super::{Capability, JobCapability, JobSetup, MemberInterface, per_member};
use crate::host_state::HostState;
use crate::wasmtime_error::IntoAnyhow;
use anyhow::Result;
use std::sync::Arc;
use wasmtime::component::Linker;

/// `wasi:cli/environment`.
pub const ENVIRONMENT: MemberInterface =
    MemberInterface::new("wasi:cli/environment", "cli-environment");

/// Environment variables per component.
pub struct Environment;

#[async_trait::async_trait]
impl Capability for Environment {
    fn name(&self) -> &'static str {
        "environment"
    }

    fn interfaces(&self) -> &'static [MemberInterface] {
        &[ENVIRONMENT]
    }

    async fn open(&self, job: &JobSetup<'_>) -> Result<Arc<dyn JobCapability>> {
        let variables = |spec: &crate::manifest::ComponentSpec| {
            Ok(spec
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect())
        };
        per_member(job, variables, add_environment)
    }
}

/// Defines `wasi:cli/environment` for one member: `variables` only.
fn add_environment(
    linker: &mut Linker<HostState>,
    import_name: &str,
    _label: &str,
    variables: Arc<Vec<(String, String)>>,
) -> Result<()> {
    let mut instance = super::member_instance(linker, import_name)?;
    instance
        .func_wrap("get-environment", move |_, (): ()| {
            Ok((variables.as_ref().clone(),))
        })
        .anyhow()?;
    instance
        .func_wrap("get-arguments", |_, (): ()| Ok((Vec::<String>::new(),)))
        .anyhow()?;
    instance
        .func_wrap("initial-cwd", |_, (): ()| Ok((None::<String>,)))
        .anyhow()?;
    Ok(())
}
