//! Generating a localhost bindings file. Each HTTP component gets its own
//! port; each job with `rpc` components gets one port its `rpc` components
//! share; each job gets one for its admin listener (`/healthz`, `/readyz`).
//! Ports are persisted in a `ports.json` beside the app (like
//! infra-generator's), so they stay the same from run to run, and every port
//! handed out is checked free when the file is written.

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
    /// `admin:<name>` for a job's admin listener.
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
        for label in &spec.components {
            if app
                .component(label)
                .is_some_and(|c| c.spec.binding == BindingType::Http)
            {
                keys.push(label.clone());
            }
        }
        if spec.components.iter().any(|l| {
            app.component(l)
                .is_some_and(|c| c.spec.binding == BindingType::Rpc)
        }) {
            keys.push(format!("job:{job}"));
        }
        keys.push(format!("admin:{job}"));
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
            let Some(port) = assigned.get(&key) else {
                continue;
            };
            writeln!(
                text,
                "\n[components.{label}]   # job {job}\ntype = \"{}\"\ninternal = \"127.0.0.1:{port}\"\nexternal = \"http://127.0.0.1:{port}\"",
                component.spec.binding
            )?;
        }
    }
    for job in app.manifest.jobs.keys() {
        if let Some(port) = assigned.get(&format!("admin:{job}")) {
            writeln!(text, "\n[jobs.{job}]\nadmin = \"127.0.0.1:{port}\"")?;
        }
    }
    Ok(text)
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
