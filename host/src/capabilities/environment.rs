//! `wasi:cli/environment`, per component: only the variables the manifest
//! grants it (`env = { NAME = "value" }`), no arguments, `/` as cwd unset.

use super::{Capability, JobCapability, JobSetup, MemberInterface, by_member};
use crate::host_state::HostState;
use crate::wasmtime_error::IntoAnyhow;
use anyhow::Result;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::Linker;

/// `wasi:cli/environment`.
pub const ENVIRONMENT: MemberInterface = MemberInterface {
    path: "wasi:cli/environment",
    slug: "cli-environment",
};

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
        let variables = by_member(job, |spec| {
            Ok(spec
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect())
        })?;
        Ok(Arc::new(OpenEnvironment(variables)))
    }
}

struct OpenEnvironment(BTreeMap<String, Arc<Vec<(String, String)>>>);

impl JobCapability for OpenEnvironment {
    fn add_to_linker(
        &self,
        linker: &mut Linker<HostState>,
        _: MemberInterface,
        import_name: &str,
        label: &str,
    ) -> Result<()> {
        let variables = self.0.get(label).cloned().unwrap_or_default();
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
}
