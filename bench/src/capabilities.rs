//! The capabilities of a job opened as the host opens them, for the
//! measures that prepare graphs themselves (PF1, PF2): their members import
//! per-component interfaces (each its own `wasi:cli/environment`), which
//! link only against opened capabilities. No secrets; the bench apps grant
//! no key-value store, so no backend opens.

use amimono::SecretSource;
use amimono::internals::{App, JobCapabilities, JobSetup, Placement, RuntimeFacts};
use anyhow::Result;
use std::sync::Arc;

/// Opens the capabilities of `placement`'s members of `app`, answering the
/// runtime interface with `facts`.
pub async fn open(
    app: &App,
    placement: &Placement,
    facts: RuntimeFacts,
) -> Result<JobCapabilities> {
    let data_dir = std::env::temp_dir();
    JobCapabilities::open(&JobSetup {
        app,
        members: &placement.members,
        facts: Arc::new(facts),
        secrets: &SecretSource::default(),
        data_dir: &data_dir,
    })
    .await
}
