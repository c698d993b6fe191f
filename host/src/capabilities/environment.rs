//! `wasi:cli/environment`, per component: only the variables the manifest
//! grants it (`env = { NAME = "value" }`), no arguments, `/` as cwd unset.

use super::Grants;
use crate::host_state::HostState;
use crate::wasmtime_error::IntoAnyhow;
use anyhow::Result;
use std::sync::Arc;
use wasmtime::component::Linker;

/// Defines `wasi:cli/environment` for one member under `import_name`.
pub fn add_to_linker(
    linker: &mut Linker<HostState>,
    import_name: &str,
    grants: Arc<Grants>,
) -> Result<()> {
    let mut instance = super::member_instance(linker, import_name)?;
    instance
        .func_wrap("get-environment", move |_, (): ()| {
            Ok((grants.env.clone(),))
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
