//! The host side of `amimono:runtime/context` (see `wit/runtime.wit`): each
//! member of a composed graph imports it under its own name
//! ([`super::member_import_name`]), so `label()` answers the
//! caller's own label. Every component may import it.

use super::{Capability, JobCapability, JobSetup, MemberInterface};
use crate::host_state::HostState;
use crate::manifest::BindingType;
use anyhow::Result;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::{ComponentType, Linker, Lower};

/// `binding-type` of the WIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ComponentType, Lower)]
#[component(enum)]
#[repr(u8)]
pub enum BindingKind {
    /// `http`
    #[component(name = "http")]
    Http,
    /// `rpc`
    #[component(name = "rpc")]
    Rpc,
    /// `none`
    #[component(name = "none")]
    None,
}

impl From<BindingType> for BindingKind {
    fn from(binding: BindingType) -> Self {
        match binding {
            BindingType::Http => BindingKind::Http,
            BindingType::Rpc => BindingKind::Rpc,
            BindingType::None => BindingKind::None,
        }
    }
}

/// `binding-info` record of the WIT.
#[derive(Debug, Clone, PartialEq, Eq, ComponentType, Lower)]
#[component(record)]
pub struct BindingFact {
    /// The binding type.
    #[component(name = "type")]
    pub kind: BindingKind,
    /// The component's job.
    pub job: String,
    /// Its base URL, when known.
    pub url: Option<String>,
}

/// What the runtime interface answers, shared by every instance of a job.
#[derive(Debug, Clone, Default)]
pub struct RuntimeFacts {
    /// The app's name.
    pub app: String,
    /// The job this host runs.
    pub job: String,
    /// The app revision.
    pub revision: String,
    /// Every component of the app, by label.
    pub bindings: BTreeMap<String, BindingFact>,
}

/// `amimono:runtime/context`.
pub const CONTEXT: MemberInterface = MemberInterface::new("amimono:runtime/context", "runtime");

/// The runtime interface: the caller's label, its app, job and revision,
/// and where every component runs. Granted to every component.
pub struct Runtime;

#[async_trait::async_trait]
impl Capability for Runtime {
    fn name(&self) -> &'static str {
        "runtime"
    }

    fn interfaces(&self) -> &'static [MemberInterface] {
        &[CONTEXT]
    }

    async fn open(&self, job: &JobSetup<'_>) -> Result<Arc<dyn JobCapability>> {
        Ok(Arc::new(OpenRuntime(job.facts.clone())))
    }
}

struct OpenRuntime(Arc<RuntimeFacts>);

impl JobCapability for OpenRuntime {
    fn add_to_linker(
        &self,
        linker: &mut Linker<HostState>,
        _: MemberInterface,
        import_name: &str,
        label: &str,
    ) -> Result<()> {
        let facts = &self.0;
        let mut instance = super::member_instance(linker, import_name)?;
        let own = label.to_string();
        instance.func_wrap("label", move |_, (): ()| Ok((own.clone(),)))?;
        let f = facts.clone();
        instance.func_wrap("app", move |_, (): ()| Ok((f.app.clone(),)))?;
        let f = facts.clone();
        instance.func_wrap("job", move |_, (): ()| Ok((f.job.clone(),)))?;
        let f = facts.clone();
        instance.func_wrap("revision", move |_, (): ()| Ok((f.revision.clone(),)))?;
        let f = facts.clone();
        instance.func_wrap("binding", move |_, (label,): (String,)| {
            Ok((f.bindings.get(&label).cloned(),))
        })?;
        Ok(())
    }
}
