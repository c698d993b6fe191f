//! [`JobBuilder`]: everything a job needs from the process that runs it
//! (bindings, URLs, data directory, secrets, cluster key, engine), then
//! [`JobBuilder::prepare`]: compose every graph (all link problems together),
//! open the capability backends once, compile and pre-instantiate.

use super::graphs::{ComposedGraph, GraphLookup, compose_job};
use super::linker::LinkContext;
use super::prepared::{Job, JobParts};
use crate::app::App;
use crate::bindings_file::Bindings;
use crate::capabilities::config::SecretSource;
use crate::capabilities::runtime::{BindingFact, RuntimeFacts};
use crate::capabilities::{JobCapabilities, JobSetup};
use crate::engine::{EngineUse, new_engine};
use crate::link::{Route, router};
use crate::observe::metrics::{JobIdentity, Metrics};
use crate::observe::traces::Tracing;
use crate::placement::{LOCAL_JOB, Placement};
use crate::remote::auth::{Authentication, ClusterKey, KeyError};
use crate::remote::client::{RemoteClient, RemoteTarget};
use crate::serve::budget::MemoryBudget;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How to prepare one job of an app; made by [`crate::Application::job`].
pub struct JobBuilder {
    app: Arc<App>,
    precompiled: Option<Arc<dyn GraphLookup>>,
    job: String,
    bindings: Option<Bindings>,
    urls: BTreeMap<String, String>,
    data_dir: PathBuf,
    secrets: Option<SecretSource>,
    authentication: Option<Authentication>,
    engine: Option<wasmtime::Engine>,
    force_remote: bool,
    shutdown_grace: Option<Duration>,
    lazy: bool,
    replica: u32,
    local_sample_ratio: Option<f64>,
    metrics: Option<bool>,
}

impl JobBuilder {
    pub(crate) fn new(
        app: Arc<App>,
        precompiled: Option<Arc<dyn GraphLookup>>,
        job: &str,
        data_dir: PathBuf,
    ) -> JobBuilder {
        JobBuilder {
            app,
            precompiled,
            job: job.to_string(),
            bindings: None,
            urls: BTreeMap::new(),
            data_dir,
            secrets: None,
            authentication: None,
            replica: 0,
            local_sample_ratio: None,
            metrics: None,
            engine: None,
            force_remote: false,
            shutdown_grace: None,
            lazy: false,
        }
    }

    /// The bindings file: where components of other jobs are reached (and
    /// its revision pin, checked at [`prepare`](Self::prepare)).
    pub fn bindings(mut self, bindings: Bindings) -> Self {
        self.bindings = Some(bindings);
        self
    }

    /// The URL component `label` is reached at, for the runtime interface
    /// (and for calls forced over HTTP, which go to this process's own rpc
    /// listener). Overrides the bindings file's `external` address.
    pub fn url(mut self, label: &str, url: &str) -> Self {
        self.urls.insert(label.to_string(), url.to_string());
        self
    }

    /// Where durable data (SQLite key-value) lives [default: beside the app
    /// or bundle, see [`crate::Application::default_data_dir`]].
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = dir.into();
        self
    }

    /// Where secrets come from [default: `AMIMONO_SECRETS` and
    /// `AMIMONO_SECRET_<KEY>`, see [`SecretSource::from_environment`]].
    pub fn secrets(mut self, secrets: SecretSource) -> Self {
        self.secrets = Some(secrets);
        self
    }

    /// The key that authenticates calls between jobs [default:
    /// `AMIMONO_CLUSTER_KEY` or `AMIMONO_CLUSTER_KEY_FILE`; a key of its own
    /// for `_local`].
    pub fn cluster_key(mut self, key: ClusterKey) -> Self {
        self.authentication = Some(Authentication::Key(key));
        self
    }

    /// The wasmtime engine [default: one built for serving, with the
    /// pooling allocator]. Graphs precompiled in a bundle load only into an
    /// engine configured like the one that built them.
    pub fn engine(mut self, engine: wasmtime::Engine) -> Self {
        self.engine = Some(engine);
        self
    }

    /// Sends every call between components of this process over HTTP to
    /// its own rpc listener (`AMIMONO_FORCE_REMOTE=1`): the split protocol
    /// tested without splitting.
    pub fn force_remote(mut self, force: bool) -> Self {
        self.force_remote = force;
        self
    }

    /// How long [`Job::serve`] lets requests in flight finish after the
    /// shutdown future resolves [default: the manifest's `shutdown_grace_ms`].
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = Some(grace);
        self
    }

    /// Which replica of its job this process is (0 unless set): it labels
    /// the job's metrics (`amimono_job_info`).
    pub fn replica(mut self, replica: u32) -> Self {
        self.replica = replica;
        self
    }

    /// Whether the job records metrics (default: `AMIMONO_METRICS`, else
    /// on). Off, `/metrics` shows only `amimono_job_info`.
    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = Some(on);
        self
    }

    /// The share of requests (0 to 1) whose colocated calls are measured,
    /// through tapped graphs ([`crate::observe::tapped`]); default
    /// `AMIMONO_LOCAL_SAMPLE_RATIO`, else 0 (off: nothing is measured and
    /// nothing costs).
    pub fn local_sample_ratio(mut self, ratio: f64) -> Self {
        self.local_sample_ratio = Some(ratio.clamp(0.0, 1.0));
        self
    }

    /// Compiles each graph when first used instead of at
    /// [`prepare`](Self::prepare) (link problems are still all found there).
    /// For one-shot use, such as one call.
    pub fn lazy(mut self, lazy: bool) -> Self {
        self.lazy = lazy;
        self
    }

    /// Composes every graph of the job (every link problem reported
    /// together, as [`crate::LinkErrors`]), opens the capability backends,
    /// and compiles and pre-instantiates the graphs the job serves.
    pub async fn prepare(self) -> Result<Job> {
        let app = self.app;
        let placement = Placement::for_job(&app, &self.job)?.with_force_remote(self.force_remote);
        if let Some(bindings) = &self.bindings {
            bindings.check_revision(&app.revision)?;
        }
        let budget = memory_budget(&app, &placement)?;
        let composed = compose_job(&app, &placement, self.precompiled.as_deref())?;
        let served_rpc = router::served_to_other_jobs(&app, &placement);
        let authentication = match self.authentication {
            Some(authentication) => authentication,
            None => authentication(
                &placement,
                !router::rpc_members_called_from_outside(&app, &placement).is_empty()
                    || calls_remote(&composed),
            )?,
        };
        let facts = Arc::new(runtime_facts(
            &app,
            &placement.job,
            self.bindings.as_ref(),
            &self.urls,
        ));
        let targets = remote_targets(&app, &composed, self.bindings.as_ref(), &self.urls)?;
        let secrets = match self.secrets {
            Some(secrets) => secrets,
            None => SecretSource::from_environment()?,
        };
        let capabilities = JobCapabilities::open(&JobSetup {
            app: &app,
            members: &placement.members,
            facts,
            secrets: &secrets,
            data_dir: &self.data_dir,
        })
        .await?;
        let identity = JobIdentity {
            app: app.name(),
            job: &placement.job,
            revision: &app.revision,
            replica: self.replica,
        };
        let metrics = Metrics::new(&identity).with_tracing(Tracing::from_environment(&identity)?);
        let metrics_on = match self.metrics {
            Some(on) => on,
            None => crate::observe::metrics::enabled_from_environment()?,
        };
        let metrics = Arc::new(if metrics_on {
            metrics
        } else {
            metrics.disabled()
        });
        let context = LinkContext {
            metrics: metrics.clone(),
            client: Arc::new(RemoteClient::new(
                &app.revision,
                &placement.job,
                authentication.clone(),
            )),
            capabilities: Arc::new(capabilities),
            targets,
            taps: None,
        };
        let engine = match self.engine {
            Some(engine) => engine,
            None => new_engine(EngineUse::Serving)?,
        };
        let grace = self
            .shutdown_grace
            .unwrap_or(app.manifest.limits.shutdown_grace);
        let job = Job::from_parts(JobParts {
            app,
            placement,
            engine,
            context,
            budget,
            metrics,
            authentication,
            composed,
            served_rpc,
            grace,
        });
        if !self.lazy {
            let ratio = match self.local_sample_ratio {
                _ if !metrics_on => 0.0,
                Some(ratio) => ratio,
                None => crate::observe::tapped::ratio_from_environment()?,
            };
            job.prepare_taps(ratio)?;
            job.prepare_served()?;
        }
        Ok(job)
    }
}

/// Whether any graph of the job calls a component of another job.
fn calls_remote(graphs: &BTreeMap<String, ComposedGraph>) -> bool {
    graphs.values().any(|g| {
        g.plan
            .wires
            .iter()
            .any(|w| matches!(w.route, Route::Remote { .. }))
    })
}

/// The runtime facts of `job`, with the URLs known to this process (`served`)
/// or from the bindings file.
pub(crate) fn runtime_facts(
    app: &App,
    job: &str,
    bindings: Option<&Bindings>,
    served: &BTreeMap<String, String>,
) -> RuntimeFacts {
    let bindings_map = app
        .components
        .iter()
        .map(|(label, component)| {
            let url = served.get(label).cloned().or_else(|| {
                bindings.and_then(|b| b.components.get(label)?.urls().first().cloned())
            });
            let fact = BindingFact {
                kind: component.spec.binding.into(),
                job: component.spec.job.clone(),
                url,
            };
            (label.clone(), fact)
        })
        .collect();
    RuntimeFacts {
        app: app.name().to_string(),
        job: job.to_string(),
        revision: app.revision.clone(),
        bindings: bindings_map,
    }
}

/// How calls between jobs are authenticated in a process that serves or
/// makes them (`needed`): the environment's key, or (for `_local` with calls
/// forced over HTTP, where the process only calls itself) a key of its own.
fn authentication(placement: &Placement, needed: bool) -> Result<Authentication> {
    match Authentication::from_environment()? {
        Some(Authentication::Disabled) => {
            if needed {
                tracing::warn!(
                    "AUTHENTICATION OF CALLS BETWEEN JOBS IS OFF ({}=1): anyone who can reach this job's rpc port can call its components; for local debugging only",
                    crate::remote::auth::INSECURE_ENV
                );
            }
            Ok(Authentication::Disabled)
        }
        Some(key) => Ok(key),
        None if placement.job == LOCAL_JOB => {
            let key = ClusterKey::generate().context("making a cluster key")?;
            let key = ClusterKey::from_bytes(key.as_bytes()).context("making a cluster key")?;
            Ok(Authentication::Key(key))
        }
        None if needed => Err(KeyError::Missing.into()),
        // Nothing is called across jobs: nothing to sign or check.
        None => Ok(Authentication::Disabled),
    }
}

/// The job's memory budget: the manifest's `memory_budget_mib`, or a share
/// of what the process may use; refused when it cannot fit the machine or
/// one instance or body cannot fit it.
fn memory_budget(app: &App, placement: &Placement) -> Result<Arc<MemoryBudget>> {
    use crate::serve::budget::{available_memory, default_budget};
    let limits = app.manifest.limits;
    let available = available_memory();
    let budget = match (limits.memory_budget_bytes, available) {
        (Some(budget), Some(available)) if budget > available => anyhow::bail!(
            "[limits] memory_budget_mib = {} does not fit this machine: the process may use {} MiB (cgroup limit or MemTotal); lower memory_budget_mib",
            budget >> 20,
            available >> 20
        ),
        (Some(budget), _) => budget,
        (None, Some(available)) => default_budget(available),
        (None, None) => u64::MAX,
    };
    let mut problems = Vec::new();
    for label in &placement.members {
        let Some(component) = app.component(label) else {
            continue;
        };
        let component_limits = component.spec.limits;
        if component_limits.memory_bytes as u64 > budget {
            problems.push(format!(
                "component `{label}`: memory_mib = {} is more than the job's memory budget of {} MiB",
                component_limits.memory_bytes >> 20,
                budget >> 20
            ));
        }
        if component_limits.max_body_bytes > budget {
            problems.push(format!(
                "component `{label}`: max_body_bytes = {} is more than the job's memory budget of {} MiB",
                component_limits.max_body_bytes,
                budget >> 20
            ));
        }
    }
    if !problems.is_empty() {
        anyhow::bail!(
            "the limits cannot fit the job's memory budget: {}; raise [limits] memory_budget_mib or lower those limits",
            problems.join("; ")
        );
    }
    tracing::debug!(budget_mib = budget >> 20, "memory budget");
    Ok(MemoryBudget::new(budget))
}

/// Where each remote exporter of the job's graphs is reached: its
/// bindings-file `external` URLs (every replica's), else this process's own listener
/// (`served`: calls forced over HTTP). A remote exporter without an address is an
/// error naming it.
fn remote_targets(
    app: &App,
    graphs: &BTreeMap<String, ComposedGraph>,
    bindings: Option<&Bindings>,
    served: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Arc<RemoteTarget>>> {
    let mut targets = BTreeMap::new();
    let mut missing = Vec::new();
    for wire in graphs.values().flat_map(|g| g.plan.wires.iter()) {
        let Route::Remote { exporter, job, .. } = &wire.route else {
            continue;
        };
        if targets.contains_key(exporter) {
            continue;
        }
        let urls = bindings
            .and_then(|b| b.components.get(exporter).map(|a| a.urls().to_vec()))
            .or_else(|| served.get(exporter).map(|url| vec![url.clone()]));
        let Some(urls) = urls else {
            let line = format!(
                "`{exporter}` (job `{job}`), imported by `{}`",
                wire.importer
            );
            if !missing.contains(&line) {
                missing.push(line);
            }
            continue;
        };
        let timeout = app
            .component(exporter)
            .and_then(|c| c.spec.call_timeout)
            .unwrap_or(app.manifest.call_timeout);
        let target =
            RemoteTarget::with_urls(exporter, &urls, timeout).map_err(anyhow::Error::msg)?;
        targets.insert(exporter.clone(), Arc::new(target));
    }
    if !missing.is_empty() {
        anyhow::bail!(
            "no address is known for components that run in other jobs: {}; set AMIMONO_BINDINGS to a bindings file with their entries (`amimono bindings <app>` writes one)",
            missing.join("; ")
        );
    }
    Ok(targets)
}
