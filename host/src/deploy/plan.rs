//! What a deployment of one bundle is made of, whatever runs it
//! (Kubernetes, Compose): per job of the chosen layout, its replicas, the
//! ports it listens on in its container, whether it keeps durable state,
//! whether it needs the cluster key and which secrets; and the bindings
//! file every job reads. The generators ([`super::kube`],
//! [`super::compose`]) only translate a plan into their objects.
//!
//! Ports are fixed and distinct across the app, so one bindings file fits
//! every job whether each runs in a network namespace of its own (a pod)
//! or several share one host (Compose publishing ports, `podman kube
//! play`, host networking): HTTP component *i* of the app (in label order)
//! listens on `8080 + i`, job *j* (in name order) has its rpc listener on
//! `9000 + j` and its admin listener on `9100 + j`; all on `0.0.0.0`.

use crate::app::App;
use crate::application::Application;
use crate::link::router;
use crate::manifest::{BindingType, local_state};
use crate::placement::{Placement, UnknownJob};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// Port of the first HTTP component; the others follow in label order.
pub const FIRST_HTTP_PORT: u16 = 8080;
/// Port of the first job's rpc listener (calls from other jobs).
pub const FIRST_RPC_PORT: u16 = 9000;
/// Port of the first job's admin listener (`/healthz`, `/readyz`).
pub const FIRST_ADMIN_PORT: u16 = 9100;
/// Most jobs a layout may have here (their ports must not overlap).
const MAX_JOBS: u16 = FIRST_ADMIN_PORT - FIRST_RPC_PORT;
/// Where the bindings file is mounted in the container.
pub const BINDINGS_PATH: &str = "/etc/amimono/bindings.toml";
/// Characters of the revision in object names.
pub const SHORT_REVISION: usize = 8;

/// What to deploy: a bundle, in one of its layouts, maybe some of its jobs.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// The named layout (`None`: `[jobs]`).
    pub layout: Option<String>,
    /// Only these jobs (empty: every job of the layout).
    pub jobs: Vec<String>,
    /// Refuse a bundle of another revision.
    pub expect_revision: Option<String>,
}

/// A deployment of one bundle.
#[derive(Debug, Clone)]
pub struct DeployPlan {
    /// The app's name.
    pub app: String,
    /// The bundle's revision.
    pub revision: String,
    /// The named layout, if not `[jobs]`.
    pub layout: Option<String>,
    /// The jobs deployed, by name (a subset with `PlanOptions::jobs`).
    pub jobs: Vec<JobPlan>,
    /// Every job of the layout, with every component's ports: what the
    /// bindings file describes (jobs not deployed here still get entries,
    /// so the deployed ones can call them).
    pub all_jobs: Vec<JobPlan>,
    /// How long a job drains after SIGTERM.
    pub shutdown_grace: Duration,
}

/// One job of a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobPlan {
    /// The job's name.
    pub name: String,
    /// Processes (pods, containers) that run it.
    pub replicas: u32,
    /// Its components' labels.
    pub components: Vec<String>,
    /// Its HTTP components and their ports.
    pub http: Vec<HttpPort>,
    /// Its rpc components other jobs call (they share `rpc_port`).
    pub rpc: Vec<String>,
    /// Where its rpc listener listens.
    pub rpc_port: u16,
    /// Where its admin listener listens.
    pub admin_port: u16,
    /// The durable state it keeps on its machine, described; `None` when
    /// it keeps none (it then needs no volume that outlives a pod).
    pub local_state: Option<String>,
    /// Whether it serves or makes calls between jobs (and so needs the
    /// cluster key).
    pub needs_cluster_key: bool,
    /// The app secrets its components read (`secrets = [...]`).
    pub secrets: BTreeSet<String>,
    /// The job's memory budget (`[limits] memory_budget_mib`), if set.
    pub memory_budget_bytes: Option<u64>,
}

impl JobPlan {
    /// The memory limit of one process of the job, from its budget: the
    /// host budgets three quarters of what its cgroup allows
    /// (`serve/budget.rs`), so the limit is the budget × 4/3. `None`
    /// without a budget in the manifest.
    pub fn memory_limit_mib(&self) -> Option<u64> {
        self.memory_budget_bytes
            .map(|budget| (budget.div_ceil(1 << 20) * 4).div_ceil(3))
    }
}

/// An HTTP component's port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpPort {
    /// The component.
    pub label: String,
    /// Where it listens in the container.
    pub port: u16,
}

impl DeployPlan {
    /// The plan of the bundle at `bundle` under `options`.
    pub fn load(bundle: &Path, options: &PlanOptions) -> Result<DeployPlan> {
        if !crate::bundle::is_bundle(bundle) {
            bail!(
                "`{}` is not a bundle (`.{}`): `amimono deploy` takes what `amimono build <app>` writes",
                bundle.display(),
                crate::bundle::EXTENSION
            );
        }
        let application = Application::open(bundle)
            .with_context(|| format!("opening bundle `{}`", bundle.display()))?;
        if let Some(expected) = &options.expect_revision
            && expected != application.revision()
        {
            return Err(RevisionMismatch {
                app: application.name().to_string(),
                expected: expected.clone(),
                revision: application.revision().to_string(),
            }
            .into());
        }
        let application = match &options.layout {
            Some(layout) => application.with_layout(layout)?,
            None => application,
        };
        let app = application.app();
        let http_ports = http_ports(app)?;
        if app.manifest.jobs.len() > usize::from(MAX_JOBS) {
            bail!(
                "app `{}` has {} jobs in this layout; a deployment holds at most {MAX_JOBS}",
                app.name(),
                app.manifest.jobs.len()
            );
        }
        let mut all_jobs = Vec::new();
        for (index, job) in (0u16..).zip(app.manifest.jobs.keys()) {
            let ports = (FIRST_RPC_PORT + index, FIRST_ADMIN_PORT + index);
            all_jobs.push(job_plan(app, job, &http_ports, ports)?);
        }
        for job in &options.jobs {
            if !app.manifest.jobs.contains_key(job) {
                return Err(UnknownJob {
                    job: job.clone(),
                    app: app.name().to_string(),
                    known: app.manifest.jobs.keys().cloned().collect(),
                }
                .into());
            }
        }
        let jobs = all_jobs
            .iter()
            .filter(|job| options.jobs.is_empty() || options.jobs.contains(&job.name))
            .cloned()
            .collect();
        Ok(DeployPlan {
            app: app.name().to_string(),
            revision: app.revision.clone(),
            layout: app.manifest.layout.clone(),
            jobs,
            all_jobs,
            shutdown_grace: app.manifest.limits.shutdown_grace,
        })
    }

    /// The revision as object names carry it.
    pub fn short_revision(&self) -> &str {
        &self.revision[..SHORT_REVISION.min(self.revision.len())]
    }

    /// The bindings file every job of the deployment reads, pinned to the
    /// revision: each component listens on `0.0.0.0:<its port>` and is
    /// reached at `external(job, port)`.
    pub fn bindings_file(&self, external: impl Fn(&JobPlan, u16) -> String) -> Result<String> {
        let mut components = BTreeMap::new();
        let mut jobs = BTreeMap::new();
        for job in &self.all_jobs {
            for http in &job.http {
                components.insert(
                    http.label.clone(),
                    BindingsEntry {
                        kind: BindingType::Http,
                        internal: format!("0.0.0.0:{}", http.port),
                        external: external(job, http.port),
                    },
                );
            }
            for label in &job.rpc {
                components.insert(
                    label.clone(),
                    BindingsEntry {
                        kind: BindingType::Rpc,
                        internal: format!("0.0.0.0:{}", job.rpc_port),
                        external: external(job, job.rpc_port),
                    },
                );
            }
            jobs.insert(
                job.name.clone(),
                BindingsJob {
                    admin: format!("0.0.0.0:{}", job.admin_port),
                },
            );
        }
        let file = BindingsFile {
            revision: &self.revision,
            components,
            jobs,
        };
        let text = toml::to_string(&file).context("writing the bindings file")?;
        Ok(format!(
            "# Bindings of app `{}` revision {}, written by `amimono deploy`.\n{text}",
            self.app, self.revision
        ))
    }
}

/// The bundle is not the revision the deployment is pinned to.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the bundle of app `{app}` is revision {revision}, but the deployment is pinned to revision {expected} (--expect-revision): deploy the bundle of revision {expected}, or drop the pin to deploy {revision}"
)]
pub struct RevisionMismatch {
    /// The app.
    pub app: String,
    /// The pinned revision.
    pub expected: String,
    /// The bundle's revision.
    pub revision: String,
}

#[derive(Serialize)]
struct BindingsFile<'a> {
    revision: &'a str,
    components: BTreeMap<String, BindingsEntry>,
    jobs: BTreeMap<String, BindingsJob>,
}

#[derive(Serialize)]
struct BindingsEntry {
    #[serde(rename = "type")]
    kind: BindingType,
    internal: String,
    external: String,
}

#[derive(Serialize)]
struct BindingsJob {
    admin: String,
}

/// Each HTTP component's port: `8080 + i` in label order.
fn http_ports(app: &App) -> Result<BTreeMap<String, u16>> {
    let mut ports = BTreeMap::new();
    let http = app
        .components
        .values()
        .filter(|c| c.spec.binding == BindingType::Http);
    for (i, component) in http.enumerate() {
        let port = u16::try_from(i)
            .ok()
            .and_then(|i| FIRST_HTTP_PORT.checked_add(i))
            .filter(|port| *port < FIRST_RPC_PORT)
            .with_context(|| {
                format!(
                    "app `{}` has more HTTP components than ports {FIRST_HTTP_PORT}–{} hold",
                    app.name(),
                    FIRST_RPC_PORT - 1
                )
            })?;
        ports.insert(component.spec.label.clone(), port);
    }
    Ok(ports)
}

/// The plan of `job`, its rpc and admin listeners on `(rpc_port, admin_port)`.
fn job_plan(
    app: &App,
    job: &str,
    http_ports: &BTreeMap<String, u16>,
    (rpc_port, admin_port): (u16, u16),
) -> Result<JobPlan> {
    let placement = Placement::for_job(app, job)?;
    let spec = &app.manifest.jobs[job];
    let http: Vec<HttpPort> = placement
        .members_with(app, BindingType::Http)
        .into_iter()
        .filter_map(|label| {
            let port = *http_ports.get(&label)?;
            Some(HttpPort { label, port })
        })
        .collect();
    let rpc = router::rpc_members_called_from_outside(app, &placement);
    let calls_others = !router::jobs_called_by(app, &placement).is_empty();
    let mut states = Vec::new();
    let mut secrets = BTreeSet::new();
    for label in &spec.components {
        let Some(component) = app.component(label) else {
            continue;
        };
        if let Some(state) = local_state(&component.spec, &app.manifest.keyvalue) {
            states.push(format!("`{label}`: {state}"));
        }
        secrets.extend(component.spec.secrets.iter().cloned());
    }
    Ok(JobPlan {
        name: job.to_string(),
        replicas: spec.replicas,
        components: spec.components.clone(),
        needs_cluster_key: !rpc.is_empty() || calls_others,
        http,
        rpc,
        rpc_port,
        admin_port,
        local_state: (!states.is_empty()).then(|| states.join("; ")),
        secrets,
        memory_budget_bytes: app.manifest.limits.memory_budget_bytes,
    })
}
