//! Which components this process runs: one job of the app, or every job at
//! once (`_local`). Placement is data from the manifest; this module only
//! selects from it.

use crate::app::App;
use std::collections::BTreeSet;

/// The pseudo-job that runs every job of the app in one process.
pub const LOCAL_JOB: &str = "_local";
/// The pseudo-job that prints the app config as JSON and exits.
pub const CONFIG_JOB: &str = "_config";

/// The job named on the command line or in `AMIMONO_JOB` does not exist.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "unknown job `{job}`: app `{app}` has the jobs {}; or use `{LOCAL_JOB}` to run every job in one process, `{CONFIG_JOB}` to print the config",
    known.iter().map(|j| format!("`{j}`")).collect::<Vec<_>>().join(", ")
)]
pub struct UnknownJob {
    /// The name asked for.
    pub job: String,
    /// The app's name.
    pub app: String,
    /// The jobs that exist.
    pub known: Vec<String>,
}

/// Every placement a bundle holds, grouped by layout, each group with the
/// app as that layout sees it: the jobs of the default layout and `_local`,
/// then the jobs of each named layout.
pub fn every_placement(app: &App) -> anyhow::Result<Vec<(App, Vec<Placement>)>> {
    let jobs_of = |app: &App| -> Result<Vec<Placement>, UnknownJob> {
        app.manifest
            .jobs
            .keys()
            .map(|job| Placement::for_job(app, job))
            .collect()
    };
    let mut default = jobs_of(app)?;
    default.push(Placement::local(app));
    let mut groups = vec![(app.clone(), default)];
    for layout in app.manifest.layouts.keys() {
        let laid_out = app.with_layout(layout)?;
        let placements = jobs_of(&laid_out)?;
        groups.push((laid_out, placements));
    }
    Ok(groups)
}

/// Environment variable that, set to `1`, makes every call between
/// components of this process go over HTTP (a test switch, like Service
/// Weaver's RPC runner: it checks that placement does not change results).
pub const FORCE_REMOTE_ENV: &str = "AMIMONO_FORCE_REMOTE";

/// The set of components that run in this process.
#[derive(Debug, Clone)]
pub struct Placement {
    /// The job name (`_local` for all of them).
    pub job: String,
    /// The named layout the job belongs to (`None`: the default, `[jobs]`).
    pub layout: Option<String>,
    /// Labels of the components this process runs.
    pub members: BTreeSet<String>,
    /// Route even calls between this process's own components over HTTP.
    pub force_remote: bool,
}

impl Placement {
    /// The placement of job `job` (or `_local`) of `app`.
    pub fn for_job(app: &App, job: &str) -> Result<Placement, UnknownJob> {
        if job == LOCAL_JOB {
            return Ok(Placement::local(app));
        }
        match app.manifest.jobs.get(job) {
            Some(spec) => Ok(Placement {
                job: job.to_string(),
                layout: app.manifest.layout.clone(),
                members: spec.components.iter().cloned().collect(),
                force_remote: false,
            }),
            None => Err(UnknownJob {
                job: job.to_string(),
                app: app.name().to_string(),
                known: app.manifest.jobs.keys().cloned().collect(),
            }),
        }
    }

    /// Every component of `app` in one process.
    pub fn local(app: &App) -> Placement {
        Placement {
            job: LOCAL_JOB.to_string(),
            layout: None,
            members: app.components.keys().cloned().collect(),
            force_remote: false,
        }
    }

    /// The same placement with every call between components forced over HTTP.
    pub fn with_force_remote(self, force_remote: bool) -> Placement {
        Placement {
            force_remote,
            ..self
        }
    }

    /// The key of this placement's graphs in a bundle: the job name,
    /// prefixed by its named layout (`grouped:web`), marked when calls are
    /// forced over HTTP (such graphs are never bundled).
    pub fn artifact_key(&self) -> String {
        let job = match &self.layout {
            Some(layout) => format!("{layout}:{}", self.job),
            None => self.job.clone(),
        };
        if self.force_remote {
            format!("{job}+force-remote")
        } else {
            job
        }
    }

    /// Whether a call to `exporter` is linked directly (in this process and
    /// not forced over HTTP).
    pub fn colocates(&self, exporter: &str) -> bool {
        self.runs(exporter) && !self.force_remote
    }

    /// Whether the component `label` runs in this process.
    pub fn runs(&self, label: &str) -> bool {
        self.members.contains(label)
    }

    /// The components of `app` with `binding` that run in this process.
    pub fn members_with(&self, app: &App, binding: crate::manifest::BindingType) -> Vec<String> {
        self.members
            .iter()
            .filter(|label| {
                app.component(label)
                    .is_some_and(|c| c.spec.binding == binding)
            })
            .cloned()
            .collect()
    }
}
