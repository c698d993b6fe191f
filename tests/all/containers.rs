//! The hello app split into two jobs, in real containers (podman, runc),
//! from the image `amimono image` writes and the manifests `amimono deploy`
//! writes: the Kubernetes manifests with `podman kube play`, then the
//! Compose file with podman-compose. `Hello, world!` comes from the
//! frontend's container through the backend's.
//!
//! Where podman differs from a cluster, the test adapts the environment and
//! never the generated manifests:
//! - podman ignores Services: each Service's DNS name
//!   (`<svc>.<ns>.svc.cluster.local`) is given, as a network alias, to the
//!   pod it selects;
//! - podman 4.3 has no StatefulSet controller: the test plays the
//!   controller's part, creating the claim and the pod `<name>-0` from the
//!   StatefulSet's own template, as Kubernetes would;
//! - the Secrets the manifests reference are created the way podman 4.3
//!   reads them (`podman secret create`, a JSON map of base64 values).
//!
//! Both parts run in one test: they publish the same fixed host ports
//! (8080, 9000–9001, 9100–9101).

use amimono_tests::{
    TEST_CLUSTER_KEY, build_bundle, podman, podman_compose, podman_ok, run_amimono, texts, try_get,
};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Everything a run creates in podman, removed on drop (also when the test
/// fails half-way).
#[derive(Default)]
struct Cleanup {
    pods: Vec<String>,
    volumes: Vec<String>,
    network: Option<String>,
    secrets: Vec<String>,
    image: Option<String>,
    compose: Option<(PathBuf, String)>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let quiet = |args: &[&str]| {
            let _ = podman().args(args).output();
        };
        if let Some((file, project)) = &self.compose {
            let _ = podman_compose()
                .args([
                    "-f",
                    file.to_str().unwrap(),
                    "-p",
                    project,
                    "down",
                    "-v",
                    "-t",
                    "0",
                ])
                .output();
        }
        for pod in &self.pods {
            quiet(&["pod", "rm", "-f", "-t", "0", pod]);
        }
        for volume in &self.volumes {
            quiet(&["volume", "rm", "-f", volume]);
        }
        if let Some(network) = &self.network {
            quiet(&["network", "rm", "-f", network]);
        }
        for secret in &self.secrets {
            quiet(&["secret", "rm", secret]);
        }
        if let Some(image) = &self.image {
            quiet(&["rmi", "-f", image]);
        }
    }
}

/// The YAML documents of `file`, as JSON values.
fn documents(file: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(file).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|document| Value::deserialize(document).unwrap())
        .filter(|document| !document.is_null())
        .collect()
}

/// What the StatefulSet controller would create for `set`'s first pod: a
/// claim per volume claim template and the pod from the set's template.
fn stateful_set_pod(set: &Value) -> Vec<Value> {
    let name = set["metadata"]["name"].as_str().unwrap();
    let pod_name = format!("{name}-0");
    let template = &set["spec"]["template"];
    let mut spec = template["spec"].clone();
    let mut objects = Vec::new();
    for claim in set["spec"]["volumeClaimTemplates"].as_array().unwrap() {
        let volume = claim["metadata"]["name"].as_str().unwrap();
        let claim_name = format!("{volume}-{pod_name}");
        objects.push(json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": { "name": claim_name },
            "spec": claim["spec"],
        }));
        spec["volumes"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "name": volume, "persistentVolumeClaim": { "claimName": claim_name } }));
    }
    objects.push(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name,
            "namespace": set["metadata"]["namespace"],
            "labels": template["metadata"]["labels"],
        },
        "spec": spec,
    }));
    objects
}

/// The podman volumes playing `pod_spec` makes: one per ConfigMap,
/// emptyDir and claim, named after it.
fn volumes_of(pod_spec: &Value) -> Vec<String> {
    let mut names = Vec::new();
    for volume in pod_spec["volumes"].as_array().into_iter().flatten() {
        if let Some(config_map) = volume["configMap"]["name"].as_str() {
            names.push(config_map.to_string());
        } else if let Some(claim) = volume["persistentVolumeClaim"]["claimName"].as_str() {
            names.push(claim.to_string());
        } else if let Some(name) = volume["name"].as_str() {
            names.push(name.to_string());
        }
    }
    names
}

/// Whether `pod`'s labels match `selector`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .unwrap()
        .iter()
        .all(|(key, value)| labels.get(key) == Some(value))
}

/// Polls `url` until it answers 200, for at most `bound`; the last body.
fn wait_for_page(url: &str, bound: Duration, logs: impl Fn() -> String) -> String {
    let until = Instant::now() + bound;
    loop {
        match try_get(url) {
            Ok(reply) if reply.status == 200 => return reply.body,
            _ if Instant::now() >= until => {
                panic!(
                    "{url} did not answer 200 within {bound:?}; logs:\n{}",
                    logs()
                )
            }
            _ => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// The logs of every container of the pods named.
fn pod_logs(pods: &[String]) -> String {
    let mut logs = String::new();
    for pod in pods {
        let out = podman()
            .args([
                "ps",
                "-a",
                "--filter",
                &format!("pod={pod}"),
                "--format",
                "{{.Names}}",
            ])
            .output()
            .unwrap();
        for container in String::from_utf8_lossy(&out.stdout).lines() {
            let out = podman().args(["logs", container]).output().unwrap();
            let (stdout, stderr) = texts(&out);
            logs.push_str(&format!("--- {container}\n{stdout}{stderr}"));
        }
    }
    logs
}

#[test]
fn the_split_hello_app_answers_from_containers_under_kube_play_and_compose() {
    let dir = tempfile::tempdir().unwrap();
    let (bundle, _) = build_bundle(Path::new("examples/hello"), dir.path());
    let tag = format!("localhost/amimono-e2e-{}:test", std::process::id());
    let archive = dir.path().join("image.tar");
    let out = run_amimono(
        &[
            "image",
            bundle.to_str().unwrap(),
            "-o",
            archive.to_str().unwrap(),
            "--tag",
            &tag,
        ],
        &[],
    );
    assert!(out.status.success(), "{}", texts(&out).1);
    let mut cleanup = Cleanup::default();
    cleanup.image = Some(tag.clone());
    podman_ok(&["load", "-i", archive.to_str().unwrap()]);

    // Kubernetes, through podman kube play.
    let kube = dir.path().join("kube");
    let out = run_amimono(
        &[
            "deploy",
            "kube",
            bundle.to_str().unwrap(),
            "--image",
            &tag,
            "-o",
            kube.to_str().unwrap(),
        ],
        &[],
    );
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let revision_file = PathBuf::from(
        stdout
            .lines()
            .find_map(|line| line.strip_prefix("wrote "))
            .unwrap(),
    );
    let objects = documents(&revision_file);
    let network = format!("amimono-e2e-{}", std::process::id());
    podman_ok(&["network", "create", &network]);
    cleanup.network = Some(network.clone());
    // The Secret the manifests reference, as this podman reads it.
    let secret = "hello-cluster-key";
    let _ = podman().args(["secret", "rm", secret]).output();
    let value =
        json!({ "key": base64::engine::general_purpose::STANDARD.encode(TEST_CLUSTER_KEY) })
            .to_string();
    let mut create = podman()
        .args(["secret", "create", secret, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut create.stdin.take().unwrap(), value.as_bytes()).unwrap();
    assert!(create.wait().unwrap().success());
    cleanup.secrets.push(secret.to_string());

    // Deployments (and the ConfigMap) as written; StatefulSets as their
    // controller would make them.
    let mut pods = Vec::new();
    let mut pod_labels = Vec::new();
    for object in &objects {
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        match object["kind"].as_str().unwrap() {
            "Deployment" => {
                cleanup
                    .volumes
                    .extend(volumes_of(&object["spec"]["template"]["spec"]));
                pods.push(format!("{name}-pod-0"));
                pod_labels.push(object["spec"]["template"]["metadata"]["labels"].clone());
            }
            "StatefulSet" => {
                let mut played = vec![
                    objects
                        .iter()
                        .find(|o| o["kind"] == "ConfigMap")
                        .unwrap()
                        .clone(),
                ];
                played.extend(stateful_set_pod(object));
                if let Some(pod) = played.last() {
                    cleanup.volumes.extend(volumes_of(&pod["spec"]));
                }
                let file = dir.path().join(format!("{name}-controller.yaml"));
                let text: Vec<String> = played
                    .iter()
                    .map(|o| serde_norway::to_string(o).unwrap())
                    .collect();
                std::fs::write(&file, text.join("---\n")).unwrap();
                pods.push(format!("{name}-0"));
                pod_labels.push(object["spec"]["template"]["metadata"]["labels"].clone());
                cleanup.pods.push(format!("{name}-0"));
                podman_ok(&[
                    "kube",
                    "play",
                    "--network",
                    &network,
                    file.to_str().unwrap(),
                ]);
            }
            _ => {}
        }
    }
    cleanup.pods.extend(pods.iter().cloned());
    podman_ok(&[
        "kube",
        "play",
        "--network",
        &network,
        revision_file.to_str().unwrap(),
    ]);
    // Each Service's DNS name, on the pods it selects.
    for service in objects.iter().filter(|o| o["kind"] == "Service") {
        let alias = format!(
            "{}.{}.svc.cluster.local",
            service["metadata"]["name"].as_str().unwrap(),
            service["metadata"]["namespace"].as_str().unwrap()
        );
        for (pod, labels) in pods.iter().zip(&pod_labels) {
            if !selects(&service["spec"]["selector"], labels) {
                continue;
            }
            let infra = podman_ok(&["pod", "inspect", pod, "--format", "{{.InfraContainerID}}"])
                .trim()
                .to_string();
            podman_ok(&["network", "disconnect", &network, &infra]);
            podman_ok(&["network", "connect", "--alias", &alias, &network, &infra]);
        }
    }
    let page = wait_for_page(
        "http://127.0.0.1:8080/hello/world",
        Duration::from_secs(90),
        || pod_logs(&pods),
    );
    assert!(page.starts_with("Hello, world!"), "{page}");
    let logs = pod_logs(&pods);
    assert!(logs.contains("job=backend"), "{logs}");
    assert!(logs.contains("job=web"), "{logs}");
    for pod in &pods {
        podman_ok(&["pod", "rm", "-f", "-t", "0", pod]);
    }

    // Compose, through podman-compose.
    let compose_dir = dir.path().join("compose");
    let compose = compose_dir.join("compose.yaml");
    let out = run_amimono(
        &[
            "deploy",
            "compose",
            bundle.to_str().unwrap(),
            "--image",
            &tag,
            "-o",
            compose.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", texts(&out).1);
    // The operator's step: the cluster key in the file the compose file names.
    std::fs::create_dir_all(compose_dir.join("secrets")).unwrap();
    std::fs::write(compose_dir.join("secrets/cluster-key"), TEST_CLUSTER_KEY).unwrap();
    let project = format!("amimono-e2e-{}", std::process::id());
    cleanup.compose = Some((compose.clone(), project.clone()));
    let out = podman_compose()
        .current_dir(&compose_dir)
        .args(["-f", compose.to_str().unwrap(), "-p", &project, "up", "-d"])
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert!(
        out.status.success(),
        "podman-compose up:\n{stdout}\n{stderr}"
    );
    let logs = || {
        let out = podman_compose()
            .args(["-f", compose.to_str().unwrap(), "-p", &project, "logs"])
            .output()
            .unwrap();
        let (stdout, stderr) = texts(&out);
        format!("{stdout}{stderr}")
    };
    let page = wait_for_page(
        "http://127.0.0.1:8080/hello/world",
        Duration::from_secs(90),
        logs,
    );
    assert!(page.starts_with("Hello, world!"), "{page}");
    drop(cleanup);
}
