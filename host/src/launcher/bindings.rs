//! Generating a localhost bindings file. Each HTTP component gets its own
//! port; each job with `rpc` components gets one port its `rpc` components
//! share; each job gets one for its admin listener (`/healthz`, `/readyz`).
//! A job with several replicas gets each of those per replica, written as
//! lists (replica *i* listens on entry *i*). Ports are persisted in a
//! `ports.json` beside the app (like infra-generator's), so they stay the
//! same from run to run, and every port handed out is checked free when the
//! file is written.

use crate::app::App;
use crate::manifest::BindingType;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// First port handed out when neither `--base-port` nor a persisted file says otherwise.
pub const DEFAULT_BASE_PORT: u16 = 18000;

/// The persisted port assignment.
#[derive(Debug, Default, Serialize, Deserialize)]
struct PortsFile {
    base_port: u16,
    /// `<label>` for HTTP components, `job:<name>` for a job's rpc listener,
    /// `admin:<name>` for a job's admin listener; `#<i>` after any of them
    /// for replica `i` > 0 of the job.
    ports: BTreeMap<String, u16>,
}

/// Where the ports of the app at `app_path` are persisted: `.amimono/ports.json`
/// in an app directory, `<bundle>.ports.json` beside a bundle.
pub fn ports_file(app_path: &Path) -> PathBuf {
    if app_path.is_dir() {
        app_path.join(".amimono").join("ports.json")
    } else if crate::bundle::is_bundle(app_path) {
        app_path.with_extension("ports.json")
    } else {
        app_path
            .parent()
            .unwrap_or(Path::new("."))
            .join(".amimono")
            .join("ports.json")
    }
}

/// The bindings file text for running every job of `app` on localhost.
pub fn localhost_bindings(
    app: &App,
    base_port: Option<u16>,
    ports_path: &Path,
    pin_revision: bool,
) -> Result<String> {
    let mut state = read_state(ports_path);
    let base = base_port.unwrap_or(if state.base_port == 0 {
        DEFAULT_BASE_PORT
    } else {
        state.base_port
    });
    if state.base_port != base {
        state = PortsFile {
            base_port: base,
            ports: BTreeMap::new(),
        };
    }

    // What needs a port, in a stable order.
    let mut keys = Vec::new();
    for (job, spec) in &app.manifest.jobs {
        for replica in 0..spec.replicas {
            for label in &spec.components {
                if app
                    .component(label)
                    .is_some_and(|c| c.spec.binding == BindingType::Http)
                {
                    keys.push(replica_key(label, replica));
                }
            }
            if spec.components.iter().any(|l| {
                app.component(l)
                    .is_some_and(|c| c.spec.binding == BindingType::Rpc)
            }) {
                keys.push(replica_key(&format!("job:{job}"), replica));
            }
            keys.push(replica_key(&format!("admin:{job}"), replica));
        }
    }

    let mut assigned: BTreeMap<String, u16> = BTreeMap::new();
    let mut taken: BTreeSet<u16> = BTreeSet::new();
    // Keep persisted ports that are still free.
    for key in &keys {
        if let Some(&port) = state.ports.get(key) {
            if !taken.contains(&port) && port_is_free(port) {
                assigned.insert(key.clone(), port);
                taken.insert(port);
            } else {
                tracing::warn!(key, port, "persisted port is in use; choosing another");
            }
        }
    }
    let mut next = base;
    for key in &keys {
        if assigned.contains_key(key) {
            continue;
        }
        loop {
            if !taken.contains(&next) && port_is_free(next) {
                break;
            }
            next = match next.checked_add(1) {
                Some(port) => port,
                None => bail!("no free port at or above {base}"),
            };
        }
        assigned.insert(key.clone(), next);
        taken.insert(next);
    }
    state.ports = assigned.clone();
    write_state(ports_path, &state)?;

    let mut text = format!(
        "# Bindings for app `{}` on localhost, written by `amimono bindings`.\n# Ports persist in {}.\n",
        app.name(),
        ports_path.display()
    );
    if pin_revision {
        writeln!(text, "revision = \"{}\"", app.revision)?;
    }
    for (job, spec) in &app.manifest.jobs {
        for label in &spec.components {
            let Some(component) = app.component(label) else {
                continue;
            };
            let key = match component.spec.binding {
                BindingType::Http => label.clone(),
                BindingType::Rpc => format!("job:{job}"),
                BindingType::None => continue,
            };
            let Some(ports) = ports_of(&assigned, &key, spec.replicas) else {
                continue;
            };
            let internal = value(&ports, |port| format!("127.0.0.1:{port}"));
            let external = value(&ports, |port| format!("http://127.0.0.1:{port}"));
            writeln!(
                text,
                "\n[components.{label}]   # job {job}\ntype = \"{}\"\ninternal = {internal}\nexternal = {external}",
                component.spec.binding
            )?;
        }
    }
    for (job, spec) in &app.manifest.jobs {
        if let Some(ports) = ports_of(&assigned, &format!("admin:{job}"), spec.replicas) {
            let admin = value(&ports, |port| format!("127.0.0.1:{port}"));
            writeln!(text, "\n[jobs.{job}]\nadmin = {admin}")?;
        }
    }
    Ok(text)
}

/// The ports.json key of `key` for `replica` (`key#<replica>` after the first).
fn replica_key(key: &str, replica: u32) -> String {
    if replica == 0 {
        key.to_string()
    } else {
        format!("{key}#{replica}")
    }
}

/// The port of `key` for each of `replicas`, if every one has one.
fn ports_of(assigned: &BTreeMap<String, u16>, key: &str, replicas: u32) -> Option<Vec<u16>> {
    (0..replicas)
        .map(|replica| assigned.get(&replica_key(key, replica)).copied())
        .collect()
}

/// A TOML value: one string for one port, a list of one per replica for more.
fn value(ports: &[u16], format: impl Fn(u16) -> String) -> String {
    let quoted: Vec<String> = ports
        .iter()
        .map(|port| format!("\"{}\"", format(*port)))
        .collect();
    match quoted.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn read_state(path: &Path) -> PortsFile {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "ignoring malformed ports file");
            PortsFile::default()
        }),
        Err(_) => PortsFile::default(),
    }
}

fn write_state(path: &Path, state: &PortsFile) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(state).context("encoding ports")?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings_file::{Bindings, PerReplica};

    /// `web` (frontend, http) and `backend` (greeter, rpc) with two replicas.
    fn app() -> App {
        let text = "[app]\nname = \"t\"\n\
            [components.frontend]\nsource = \"f.wasm\"\nbinding = \"http\"\n\
            [components.greeter]\nsource = \"g.wasm\"\nbinding = \"rpc\"\n\
            [jobs.web]\ncomponents = [\"frontend\"]\n\
            [jobs.backend]\ncomponents = [\"greeter\"]\nreplicas = 2\n";
        App::from_manifest_text(text)
    }

    #[test]
    fn each_replica_gets_ports_of_its_own_as_lists() {
        let app = app();
        let dir = tempfile::tempdir().unwrap();
        let ports = dir.path().join("ports.json");
        // Between the default base (18000) and the tests' ports (20000–31999).
        let text = localhost_bindings(&app, Some(19400), &ports, false).unwrap();
        assert!(text.contains("[jobs.web]\nadmin = \"127.0.0.1:"), "{text}");
        assert!(
            text.contains("[jobs.backend]\nadmin = [\"127.0.0.1:"),
            "{text}"
        );
        let bindings = Bindings::parse(&dir.path().join("b.toml"), &text, &app).unwrap();
        let greeter = &bindings.components["greeter"];
        let PerReplica::Each(internal) = &greeter.internal else {
            panic!("{text}");
        };
        assert_eq!(internal.len(), 2);
        assert_ne!(internal[0], internal[1]);
        assert_eq!(
            greeter.urls(),
            internal
                .iter()
                .map(|a| format!("http://{a}"))
                .collect::<Vec<_>>()
        );
        assert!(matches!(
            bindings.components["frontend"].internal,
            PerReplica::All(_)
        ));
        // Persisted: replica 0 under the keys of one replica, the others `#<i>`.
        let state = read_state(&ports);
        for key in [
            "job:backend",
            "job:backend#1",
            "admin:backend#1",
            "frontend",
        ] {
            assert!(state.ports.contains_key(key), "{:?}", state.ports);
        }
        assert_eq!(
            localhost_bindings(&app, Some(19400), &ports, false).unwrap(),
            text
        );
    }
}
