//! The host side of `amimono:runtime/context` (see `wit/runtime.wit`): each
//! member of a composed graph imports it under its own name
//! ([`super::member_import_name`]), so `label()` answers the
//! caller's own label.

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

/// Defines the runtime interface for member `label`, under `import_name`.
pub fn add_to_linker(
    linker: &mut Linker<crate::host_state::HostState>,
    import_name: &str,
    label: &str,
    facts: &Arc<RuntimeFacts>,
) -> Result<()> {
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
