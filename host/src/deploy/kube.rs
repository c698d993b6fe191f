//! `amimono deploy kube`: Kubernetes manifests for one revision of a
//! bundle, built from typed `k8s-openapi` structs (no text templates).
//!
//! For each job of the plan: a headless `Service` (its pods' addresses in
//! DNS, which the remote-call client resolves and spreads calls over; and
//! the `serviceName` a StatefulSet needs) and a `Deployment`, or a
//! `StatefulSet` with a volume claim when the job keeps durable state on
//! its machine. One `ConfigMap` holds the bindings file. Object names carry
//! the short revision, so a new revision is applied next to the old one;
//! every selector includes the revision, so pods of two revisions never
//! route to each other. Secrets are only referenced (`<app>-cluster-key`,
//! `<app>-secrets`), never written.
//!
//! Separately, one stable `Service` per HTTP component (`<app>-<label>`)
//! selects the revision to serve: switching traffic is applying that file
//! again with `--serve-revision`.

use super::ImageRef;
use super::image::{DATA_DIR as DATA_PATH, USER};
use super::plan::{BINDINGS_PATH, DeployPlan, JobPlan, SHORT_REVISION};
use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HTTPGetAction, Lifecycle, LifecycleHandler, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, SecretKeySelector, SecurityContext, Service, ServicePort,
    ServiceSpec, SleepAction, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use std::collections::BTreeMap;

/// Label: the app the objects are part of.
pub const LABEL_PART_OF: &str = "app.kubernetes.io/part-of";
/// Label: the job's own name.
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
/// Label: the job.
pub const LABEL_JOB: &str = "amimono.dev/job";
/// Label: the revision.
pub const LABEL_REVISION: &str = "amimono.dev/revision";
/// What the pod's `preStop` waits before the job gets SIGTERM, so that
/// Services stop routing to it before its listeners close.
pub const PRE_STOP_SECONDS: i64 = 5;
/// Beyond the `preStop` wait and the drain, before Kubernetes kills the
/// container.
pub const STOP_MARGIN_SECONDS: i64 = 2;
/// The volume a job with durable state claims.
pub const DATA_VOLUME_SIZE: &str = "1Gi";
/// Longest object name: a StatefulSet's pods add `-<ordinal>` and Kubernetes
/// a revision hash to a label of 63 characters.
const MAX_NAME: usize = 52;

/// What to write.
#[derive(Debug, Clone)]
pub struct KubeOptions {
    /// The image holding `amimono` and the bundle (`amimono image`).
    pub image: ImageRef,
    /// The namespace of every object.
    pub namespace: String,
    /// The revision the stable Services route to (default: the plan's).
    pub serve_revision: Option<String>,
}

/// The manifests, as file name → YAML text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeFiles {
    /// `<app>-<short revision>.yaml`: the revision's objects.
    pub revision: (String, String),
    /// `<app>-serve.yaml`: the stable Services.
    pub serve: (String, String),
}

/// Writes the manifests of `plan`.
pub fn manifests(plan: &DeployPlan, options: &KubeOptions) -> Result<KubeFiles> {
    check_dns_label("namespace", &options.namespace, 63)?;
    let serve_revision = options.serve_revision.as_deref().unwrap_or(&plan.revision);
    if serve_revision.len() < SHORT_REVISION
        || !serve_revision
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        bail!(
            "`--serve-revision {serve_revision}` is not a revision: give the full revision (16 hex digits) that `amimono build` or `amimono inspect` printed"
        );
    }
    let names = Names::new(plan, options)?;
    let mut documents = vec![yaml(&config_map(plan, &names)?)?];
    for job in &plan.jobs {
        documents.push(yaml(&job_service(job, &names))?);
        if job.local_state.is_some() {
            documents.push(yaml(&stateful_set(plan, job, &names, options))?);
        } else {
            documents.push(yaml(&deployment(plan, job, &names, options))?);
        }
    }
    let mut serve = Vec::new();
    for job in &plan.all_jobs {
        for http in &job.http {
            serve.push(yaml(&stable_service(&names, &http.label, serve_revision))?);
        }
    }
    Ok(KubeFiles {
        revision: (
            format!("{}-{}.yaml", plan.app, plan.short_revision()),
            format!(
                "# The objects of app `{}` revision {}, written by `amimono deploy kube`.\n{}",
                plan.app,
                plan.revision,
                documents.join("---\n")
            ),
        ),
        serve: (
            format!("{}-serve.yaml", plan.app),
            format!(
                "# The stable Services of app `{}`, written by `amimono deploy kube`: each routes to the pods of revision {serve_revision}.\n{}",
                plan.app,
                serve.join("---\n")
            ),
        ),
    })
}

/// Names of the objects, checked to be valid Kubernetes names.
struct Names<'a> {
    plan: &'a DeployPlan,
    namespace: String,
}

impl<'a> Names<'a> {
    fn new(plan: &'a DeployPlan, options: &KubeOptions) -> Result<Names<'a>> {
        let names = Names {
            plan,
            namespace: options.namespace.clone(),
        };
        for job in &plan.all_jobs {
            check_dns_label("object name", &names.job(&job.name), MAX_NAME)?;
            for http in &job.http {
                check_dns_label("object name", &names.stable(&http.label), MAX_NAME)?;
                check_label_key(&http_label(&http.label))?;
            }
        }
        check_dns_label("object name", &names.bindings(), MAX_NAME)?;
        Ok(names)
    }

    /// A job's Service and workload: `<app>-<job>-<short revision>`.
    fn job(&self, job: &str) -> String {
        format!("{}-{job}-{}", self.plan.app, self.plan.short_revision())
    }

    /// The bindings ConfigMap of the revision.
    fn bindings(&self) -> String {
        format!("{}-bindings-{}", self.plan.app, self.plan.short_revision())
    }

    /// The stable Service of an HTTP component.
    fn stable(&self, label: &str) -> String {
        format!("{}-{label}", self.plan.app)
    }

    /// The Secret holding the cluster key (key `key`).
    fn cluster_key_secret(&self) -> String {
        format!("{}-cluster-key", self.plan.app)
    }

    /// The Secret holding the app's secrets (one key per secret name).
    fn secrets(&self) -> String {
        format!("{}-secrets", self.plan.app)
    }

    /// How other pods reach a job's port: its headless Service in DNS.
    fn external(&self, job: &str, port: u16) -> String {
        format!(
            "http://{}.{}.svc.cluster.local:{port}",
            self.job(job),
            self.namespace
        )
    }

    /// Labels every object of a job carries.
    fn job_labels(&self, job: &JobPlan) -> BTreeMap<String, String> {
        let mut labels = self.selector(&job.name);
        labels.insert(LABEL_NAME.into(), format!("{}-{}", self.plan.app, job.name));
        labels.insert("app.kubernetes.io/managed-by".into(), "amimono".to_string());
        labels
    }

    /// What selects a job's pods of this revision.
    fn selector(&self, job: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_PART_OF.to_string(), self.plan.app.clone()),
            (LABEL_JOB.to_string(), job.to_string()),
            (LABEL_REVISION.to_string(), self.plan.revision.clone()),
        ])
    }

    fn meta(&self, name: String, labels: BTreeMap<String, String>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels),
            ..ObjectMeta::default()
        }
    }
}

/// The pod label marking pods that serve HTTP component `label`, which the
/// stable Service selects (whatever job the component is in at that
/// revision).
fn http_label(label: &str) -> String {
    format!("http.amimono.dev/{label}")
}

fn config_map(plan: &DeployPlan, names: &Names<'_>) -> Result<ConfigMap> {
    let bindings = plan.bindings_file(|job, port| names.external(&job.name, port))?;
    let mut labels = BTreeMap::from([
        (LABEL_PART_OF.to_string(), plan.app.clone()),
        (LABEL_REVISION.to_string(), plan.revision.clone()),
    ]);
    labels.insert("app.kubernetes.io/managed-by".into(), "amimono".into());
    Ok(ConfigMap {
        metadata: names.meta(names.bindings(), labels),
        data: Some(BTreeMap::from([("bindings.toml".to_string(), bindings)])),
        ..ConfigMap::default()
    })
}

/// A job's headless Service: DNS answers with its ready pods' addresses.
fn job_service(job: &JobPlan, names: &Names<'_>) -> Service {
    let mut ports: Vec<ServicePort> = job
        .http
        .iter()
        .map(|http| ServicePort {
            name: Some(port_name(&http.label)),
            port: i32::from(http.port),
            target_port: Some(IntOrString::String(port_name(&http.label))),
            protocol: Some("TCP".into()),
            ..ServicePort::default()
        })
        .collect();
    if !job.rpc.is_empty() {
        ports.push(ServicePort {
            name: Some("rpc".into()),
            port: i32::from(job.rpc_port),
            target_port: Some(IntOrString::String("rpc".into())),
            protocol: Some("TCP".into()),
            ..ServicePort::default()
        });
    }
    if ports.is_empty() {
        // A headless Service needs a port; the admin port stands in for a
        // job that serves nothing else (workers).
        ports.push(ServicePort {
            name: Some("admin".into()),
            port: i32::from(job.admin_port),
            target_port: Some(IntOrString::String("admin".into())),
            protocol: Some("TCP".into()),
            ..ServicePort::default()
        });
    }
    Service {
        metadata: names.meta(names.job(&job.name), names.job_labels(job)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(names.selector(&job.name)),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The stable Service of HTTP component `label`, routing to `revision`.
fn stable_service(names: &Names<'_>, label: &str, revision: &str) -> Service {
    let labels = BTreeMap::from([
        (LABEL_PART_OF.to_string(), names.plan.app.clone()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "amimono".to_string(),
        ),
    ]);
    Service {
        metadata: names.meta(names.stable(label), labels),
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([
                (LABEL_PART_OF.to_string(), names.plan.app.clone()),
                (LABEL_REVISION.to_string(), revision.to_string()),
                (http_label(label), "true".to_string()),
            ])),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(IntOrString::String(port_name(label))),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn deployment(
    plan: &DeployPlan,
    job: &JobPlan,
    names: &Names<'_>,
    options: &KubeOptions,
) -> Deployment {
    let mut template = pod_template(plan, job, names, options);
    add_volume(
        &mut template,
        Volume {
            name: "data".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    );
    Deployment {
        metadata: names.meta(names.job(&job.name), names.job_labels(job)),
        spec: Some(DeploymentSpec {
            replicas: Some(i32::try_from(job.replicas).unwrap_or(i32::MAX)),
            selector: LabelSelector {
                match_labels: Some(names.selector(&job.name)),
                ..LabelSelector::default()
            },
            template,
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

fn stateful_set(
    plan: &DeployPlan,
    job: &JobPlan,
    names: &Names<'_>,
    options: &KubeOptions,
) -> StatefulSet {
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".into()),
            labels: Some(names.selector(&job.name)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(DATA_VOLUME_SIZE.into()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    };
    StatefulSet {
        metadata: names.meta(names.job(&job.name), names.job_labels(job)),
        spec: Some(StatefulSetSpec {
            replicas: Some(i32::try_from(job.replicas).unwrap_or(i32::MAX)),
            service_name: Some(names.job(&job.name)),
            pod_management_policy: Some("Parallel".into()),
            selector: LabelSelector {
                match_labels: Some(names.selector(&job.name)),
                ..LabelSelector::default()
            },
            template: pod_template(plan, job, names, options),
            volume_claim_templates: Some(vec![claim]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

/// The pod of a job: one container running `amimono run` of the bundle in
/// the image, job and bindings from the environment.
fn pod_template(
    plan: &DeployPlan,
    job: &JobPlan,
    names: &Names<'_>,
    options: &KubeOptions,
) -> PodTemplateSpec {
    let mut labels = names.job_labels(job);
    for http in &job.http {
        labels.insert(http_label(&http.label), "true".into());
    }
    let grace_seconds = PRE_STOP_SECONDS + seconds_up(plan.shutdown_grace) + STOP_MARGIN_SECONDS;
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(grace_seconds),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(USER.uid as i64),
                run_as_group: Some(USER.gid as i64),
                fs_group: Some(USER.gid as i64),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            containers: vec![container(plan, job, names, options)],
            volumes: Some(vec![
                Volume {
                    name: "bindings".into(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: names.bindings(),
                        ..ConfigMapVolumeSource::default()
                    }),
                    ..Volume::default()
                },
                Volume {
                    name: "tmp".into(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Volume::default()
                },
            ]),
            ..PodSpec::default()
        }),
    }
}

/// Whole seconds in `duration`, rounded up.
pub fn seconds_up(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis().div_ceil(1000)).unwrap_or(i64::MAX / 4)
}

fn add_volume(template: &mut PodTemplateSpec, volume: Volume) {
    if let Some(spec) = template.spec.as_mut() {
        spec.volumes.get_or_insert_with(Vec::new).push(volume);
    }
}

fn container(
    plan: &DeployPlan,
    job: &JobPlan,
    names: &Names<'_>,
    options: &KubeOptions,
) -> Container {
    let mut ports: Vec<ContainerPort> = job
        .http
        .iter()
        .map(|http| ContainerPort {
            name: Some(port_name(&http.label)),
            container_port: i32::from(http.port),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        })
        .collect();
    if !job.rpc.is_empty() {
        ports.push(ContainerPort {
            name: Some("rpc".into()),
            container_port: i32::from(job.rpc_port),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        });
    }
    ports.push(ContainerPort {
        name: Some("admin".into()),
        container_port: i32::from(job.admin_port),
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    });
    let probe = |path: &str, period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("admin".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Probe::default()
    };
    Container {
        name: "amimono".into(),
        image: Some(options.image.as_str().to_string()),
        env: Some(environment(plan, job, names)),
        ports: Some(ports),
        // Loading the bundle's precompiled graphs takes milliseconds; a node
        // whose CPU lacks the build machine's features compiles them first.
        startup_probe: Some(probe("/healthz", 2, 60)),
        liveness_probe: Some(probe("/healthz", 10, 3)),
        readiness_probe: Some(probe("/readyz", 2, 2)),
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction {
                    seconds: PRE_STOP_SECONDS,
                }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        resources: Some(resources(job)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "bindings".into(),
                mount_path: BINDINGS_PATH
                    .rsplit_once('/')
                    .map_or("/etc/amimono", |(dir, _)| dir)
                    .into(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "data".into(),
                mount_path: DATA_PATH.into(),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "tmp".into(),
                mount_path: "/tmp".into(),
                ..VolumeMount::default()
            },
        ]),
        ..Container::default()
    }
}

fn environment(plan: &DeployPlan, job: &JobPlan, names: &Names<'_>) -> Vec<EnvVar> {
    let value = |name: &str, value: &str| EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    };
    let secret = |name: String, secret: String, key: &str| EnvVar {
        name,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret,
                key: key.into(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    };
    let mut env = vec![
        value("AMIMONO_JOB", &job.name),
        value("AMIMONO_BINDINGS", BINDINGS_PATH),
        value(crate::cli::DATA_DIR_ENV, DATA_PATH),
    ];
    if let Some(layout) = &plan.layout {
        env.push(value("AMIMONO_LAYOUT", layout));
    }
    if job.needs_cluster_key {
        env.push(secret(
            crate::remote::auth::KEY_ENV.into(),
            names.cluster_key_secret(),
            "key",
        ));
    }
    for name in &job.secrets {
        env.push(secret(
            crate::capabilities::config::secret_env_name(name),
            names.secrets(),
            name,
        ));
    }
    env
}

/// Memory from the job's budget ([`JobPlan::memory_limit_mib`]); without
/// a budget in the manifest, a modest request and a limit the host then
/// budgets within.
fn resources(job: &JobPlan) -> ResourceRequirements {
    let (request, limit) = match job.memory_limit_mib() {
        Some(mib) => (format!("{mib}Mi"), format!("{mib}Mi")),
        None => ("256Mi".to_string(), "1Gi".to_string()),
    };
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity("100m".into())),
            ("memory".to_string(), Quantity(request)),
        ])),
        limits: Some(BTreeMap::from([("memory".to_string(), Quantity(limit))])),
        ..ResourceRequirements::default()
    }
}

/// A container port's name (at most 15 characters, letters, digits and
/// `-`): the component's label when it fits, else `http-` and a hash.
pub fn port_name(label: &str) -> String {
    if label.len() <= 15 && label != "rpc" && label != "admin" {
        return label.to_string();
    }
    let digest = blake3::hash(label.as_bytes()).to_hex();
    format!("http-{}", &digest[..10])
}

fn yaml<T: Serialize>(object: &T) -> Result<String> {
    serde_norway::to_string(object).context("writing a Kubernetes object as YAML")
}

/// Refuses `name` unless it is a DNS label (RFC 1123) of at most `max`
/// characters.
fn check_dns_label(what: &str, name: &str, max: usize) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !valid {
        bail!(
            "{what} `{name}` is not a valid Kubernetes name: at most {max} lowercase letters, digits and `-`, starting and ending with a letter or digit (shorten the app, job or component name)"
        );
    }
    Ok(())
}

/// Refuses a label key whose name part is longer than Kubernetes allows.
fn check_label_key(key: &str) -> Result<()> {
    let name = key.rsplit_once('/').map_or(key, |(_, name)| name);
    if name.len() > 63 {
        bail!(
            "label `{key}` is too long for Kubernetes (at most 63 characters after the `/`): shorten the component's label"
        );
    }
    Ok(())
}
