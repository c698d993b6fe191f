//! `wasi:filesystem`: the directories a component is granted
//! (`files = [{ host = "data", guest = "/data", mode = "rw" }]`), preopened
//! in each instance's WASI context, read-only unless `mode = "rw"`. Without
//! the key a component sees no file at all. A graph's members share one WASI
//! context, so members that import `wasi:filesystem` must be granted the
//! same directories (`link::rules`). A granted directory that cannot be
//! opened is an error when the job starts, naming the component.

use super::{Capability, CapabilityError, GraphGrants, JobCapability, JobSetup, NothingToLink};
use anyhow::Result;
use std::sync::Arc;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// Checks a grant's `mode` (`ro` or `rw`) when the manifest is read.
pub fn check_mode(mode: &str) -> Result<(), String> {
    match mode {
        "ro" | "rw" => Ok(()),
        other => Err(format!("`mode` is `ro` or `rw`, not `{other}`")),
    }
}

/// Checks a grant's `guest` path when the manifest is read.
pub fn check_guest(guest: &str) -> Result<(), String> {
    if guest.starts_with('/') {
        Ok(())
    } else {
        Err(format!(
            "`guest` must be an absolute path such as `/data`, not `{guest}`"
        ))
    }
}

/// Granted directories.
pub struct Files;

#[async_trait::async_trait]
impl Capability for Files {
    fn name(&self) -> &'static str {
        "files"
    }

    /// Every granted directory must open now, not fail silently in each
    /// instance later.
    async fn open(&self, job: &JobSetup<'_>) -> Result<Arc<dyn JobCapability>> {
        for spec in job.member_specs() {
            for grant in &spec.files {
                let opened = std::fs::read_dir(&grant.host).map(drop);
                if let Err(e) = opened {
                    return Err(CapabilityError::UnopenableDirectory {
                        component: spec.label.clone(),
                        host: grant.host.clone(),
                        guest: grant.guest.clone(),
                        reason: e.to_string(),
                    }
                    .into());
                }
            }
        }
        Ok(Arc::new(NothingToLink))
    }

    fn configure_instance(&self, grants: &GraphGrants, wasi: &mut WasiCtxBuilder) {
        for grant in &grants.files {
            let perms = if grant.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            if let Err(e) = wasi.preopened_dir(&grant.host, &grant.guest, perms) {
                tracing::warn!(dir = %grant.host.display(), error = %e, "cannot open a granted directory");
            }
        }
    }
}
