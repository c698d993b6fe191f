//! `amimono deploy compose`: a `compose.yaml` (the Compose specification)
//! for one revision of a bundle: one service per job (its replicas as
//! `deploy.replicas`), the bindings file mounted read-only, ports for HTTP
//! components, a healthcheck on the admin listener (`amimono probe`, the
//! image has no shell or curl), a named volume where a job keeps durable
//! state, and the same restrictions as on Kubernetes (non-root, read-only
//! root filesystem, no capabilities).
//!
//! The bindings file is a bind mount, not a Compose `configs` entry:
//! podman-compose (1.6) does not implement `configs`, and a read-only bind
//! mount means the same in every Compose implementation.
//!
//! Secrets are files the operator writes beside the compose file
//! (`secrets/cluster-key`, `secrets/app-secrets.toml`), never values in it.
//! Services reach each other by service name; with replicas, the name
//! resolves to every replica and the remote-call client spreads calls.

use super::ImageRef;
use super::image::{BINARY_PATH, DATA_DIR as DATA_PATH, USER};
use super::kube::seconds_up;
use super::plan::{BINDINGS_PATH, DeployPlan, JobPlan};
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;

/// Where the operator puts the cluster key, relative to the compose file.
pub const CLUSTER_KEY_FILE: &str = "secrets/cluster-key";
/// Where the operator puts the app's secrets (a TOML table), relative to
/// the compose file.
pub const APP_SECRETS_FILE: &str = "secrets/app-secrets.toml";

/// What to write.
#[derive(Debug, Clone)]
pub struct ComposeOptions {
    /// The image holding `amimono` and the bundle.
    pub image: ImageRef,
    /// The bindings file's name, beside the compose file.
    pub bindings_file: String,
}

/// The compose file and the bindings file it refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeFiles {
    /// The `compose.yaml` text.
    pub compose: String,
    /// The bindings file text.
    pub bindings: String,
}

#[derive(Serialize)]
struct ComposeFile {
    name: String,
    services: BTreeMap<String, ComposeService>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    secrets: BTreeMap<String, FileSource>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    volumes: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Serialize)]
struct FileSource {
    file: String,
}

#[derive(Serialize)]
struct ComposeService {
    image: String,
    environment: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    secrets: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ports: Vec<String>,
    volumes: Vec<Mount>,
    tmpfs: Vec<String>,
    user: String,
    read_only: bool,
    cap_drop: Vec<String>,
    security_opt: Vec<String>,
    healthcheck: HealthCheck,
    stop_grace_period: String,
    restart: String,
    deploy: Deploy,
}

/// A mount in Compose's long syntax.
#[derive(Serialize)]
struct Mount {
    #[serde(rename = "type")]
    kind: &'static str,
    source: String,
    target: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    read_only: bool,
}

#[derive(Serialize)]
struct HealthCheck {
    test: Vec<String>,
    interval: String,
    timeout: String,
    retries: u32,
    start_period: String,
}

#[derive(Serialize)]
struct Deploy {
    mode: String,
    replicas: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    resources: Option<Resources>,
}

#[derive(Serialize)]
struct Resources {
    limits: BTreeMap<String, String>,
}

/// The compose file of `plan`.
pub fn compose_file(plan: &DeployPlan, options: &ComposeOptions) -> Result<ComposeFiles> {
    let bindings = plan.bindings_file(|job, port| format!("http://{}:{port}", job.name))?;
    let mut services = BTreeMap::new();
    let mut volumes = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    for job in &plan.jobs {
        let service = service(plan, job, options);
        if job.local_state.is_some() {
            volumes.insert(data_volume(job), BTreeMap::new());
        }
        for secret in &service.secrets {
            let file = if secret == "cluster-key" {
                CLUSTER_KEY_FILE
            } else {
                APP_SECRETS_FILE
            };
            secrets.insert(
                secret.clone(),
                FileSource {
                    file: format!("./{file}"),
                },
            );
        }
        services.insert(job.name.clone(), service);
    }
    let file = ComposeFile {
        name: format!("{}-{}", plan.app, plan.short_revision()),
        services,
        secrets,
        volumes,
    };
    let yaml = serde_norway::to_string(&file).context("writing the compose file")?;
    Ok(ComposeFiles {
        compose: format!(
            "# App `{}` revision {}, written by `amimono deploy compose`.\n# Before `up`: write the cluster key to ./{CLUSTER_KEY_FILE} (`amimono cluster-key`){}.\n{yaml}",
            plan.app,
            plan.revision,
            if plan.jobs.iter().any(|job| !job.secrets.is_empty()) {
                format!(" and the app's secrets to ./{APP_SECRETS_FILE} (a TOML table)")
            } else {
                String::new()
            }
        ),
        bindings,
    })
}

fn data_volume(job: &JobPlan) -> String {
    format!("{}-data", job.name)
}

fn service(plan: &DeployPlan, job: &JobPlan, options: &ComposeOptions) -> ComposeService {
    let mut environment = BTreeMap::from([
        ("AMIMONO_JOB".to_string(), job.name.clone()),
        ("AMIMONO_BINDINGS".to_string(), BINDINGS_PATH.to_string()),
        (crate::cli::DATA_DIR_ENV.to_string(), DATA_PATH.to_string()),
    ]);
    if let Some(layout) = &plan.layout {
        environment.insert("AMIMONO_LAYOUT".into(), layout.clone());
    }
    let mut secrets = Vec::new();
    if job.needs_cluster_key {
        environment.insert(
            crate::remote::auth::KEY_FILE_ENV.into(),
            "/run/secrets/cluster-key".into(),
        );
        secrets.push("cluster-key".to_string());
    }
    if !job.secrets.is_empty() {
        environment.insert(
            crate::capabilities::config::SECRETS_FILE_ENV.into(),
            "/run/secrets/app-secrets".into(),
        );
        secrets.push("app-secrets".to_string());
    }
    // Several replicas cannot share a host port: publish fixed ports only
    // for a job with one replica (put a proxy in front of the others).
    let ports = job
        .http
        .iter()
        .map(|http| {
            if job.replicas == 1 {
                format!("{0}:{0}", http.port)
            } else {
                http.port.to_string()
            }
        })
        .collect();
    let mut volumes = vec![Mount {
        kind: "bind",
        source: format!("./{}", options.bindings_file),
        target: BINDINGS_PATH.into(),
        read_only: true,
    }];
    let mut tmpfs = vec!["/tmp".to_string()];
    if job.local_state.is_some() {
        volumes.push(Mount {
            kind: "volume",
            source: data_volume(job),
            target: DATA_PATH.into(),
            read_only: false,
        });
    } else {
        tmpfs.push(DATA_PATH.to_string());
    }
    let grace = seconds_up(plan.shutdown_grace) + super::kube::STOP_MARGIN_SECONDS;
    ComposeService {
        image: options.image.as_str().to_string(),
        environment,
        secrets,
        ports,
        volumes,
        tmpfs,
        user: format!("{}:{}", USER.uid, USER.gid),
        read_only: true,
        cap_drop: vec!["ALL".into()],
        security_opt: vec!["no-new-privileges:true".into()],
        healthcheck: HealthCheck {
            test: vec![
                "CMD".into(),
                BINARY_PATH.into(),
                "probe".into(),
                format!("http://127.0.0.1:{}/readyz", job.admin_port),
            ],
            interval: "5s".into(),
            timeout: "3s".into(),
            retries: 3,
            start_period: "60s".into(),
        },
        stop_grace_period: format!("{grace}s"),
        restart: "unless-stopped".into(),
        deploy: Deploy {
            mode: "replicated".into(),
            replicas: job.replicas,
            resources: job.memory_limit_mib().map(|mib| Resources {
                limits: BTreeMap::from([("memory".to_string(), format!("{mib}M"))]),
            }),
        },
    }
}
