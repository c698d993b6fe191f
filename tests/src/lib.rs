//! Test harness for Amimono's integration tests: finds the built `amimono`
//! binary and guest components (built beforehand by `cargo xtask build`, never
//! by the tests), starts hosts as real processes, waits for their URLs, and
//! speaks HTTP to them over loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The `amimono` binary: `$AMIMONO_BIN` or `target/release/amimono`.
pub fn amimono_bin() -> PathBuf {
    let path = std::env::var_os("AMIMONO_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/release/amimono"));
    assert!(
        path.exists(),
        "{} does not exist: run `cargo xtask build` first (or `cargo xtask test`)",
        path.display()
    );
    path
}

/// A guest component built by `cargo xtask build`, e.g. `hello_frontend`.
pub fn wasm(name: &str) -> PathBuf {
    let path = root()
        .join("target/wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} does not exist: run `cargo xtask build` first",
        path.display()
    );
    path
}

/// The hello example's directory.
pub fn hello_app() -> PathBuf {
    root().join("examples/hello")
}

/// A command running `amimono` with a private compile cache under `target/`.
pub fn amimono() -> Command {
    let mut command = Command::new(amimono_bin());
    command
        .current_dir(root())
        .env_remove("AMIMONO_JOB")
        .env_remove("AMIMONO_BINDINGS")
        .env("NO_COLOR", "1");
    if std::env::var_os("AMIMONO_CACHE_DIR").is_none() {
        command.env("AMIMONO_CACHE_DIR", root().join("target/amimono-cache"));
    }
    // Durable data (key-value) of test runs stays under target/.
    command.env("AMIMONO_DATA_DIR", root().join("target/amimono-test-data"));
    command
}

/// Runs `amimono` to completion.
pub fn run_amimono(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = amimono();
    command.args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("running amimono")
}

/// Stdout and stderr of `output` as text.
pub fn texts(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A running `amimono run` process, killed on drop.
pub struct Host {
    child: Child,
    /// URL printed for each HTTP component, by label.
    pub urls: BTreeMap<String, String>,
    stderr: Arc<Mutex<String>>,
}

impl Host {
    /// Starts `amimono run <app>` with `env` and waits until it has printed
    /// a URL for each label in `http_labels`.
    pub fn start(app: &Path, env: &[(&str, &str)], http_labels: &[&str]) -> Host {
        let app = app.to_string_lossy().into_owned();
        Host::start_with(&["run", &app], env, http_labels)
    }

    /// Starts `amimono <args>` (e.g. `up <app>`) with `env` and waits until
    /// it has printed a URL for each label in `http_labels`.
    pub fn start_with(args: &[&str], env: &[(&str, &str)], http_labels: &[&str]) -> Host {
        let mut command = amimono();
        command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("starting amimono run");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let err_pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err_pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let (tx, rx) = mpsc::channel();
        let out_pipe = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out_pipe).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut host = Host {
            child,
            urls: BTreeMap::new(),
            stderr,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while http_labels.iter().any(|l| !host.urls.contains_key(*l)) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some((label, url)) = line.split_once(": ") {
                        host.urls.insert(label.to_string(), url.to_string());
                    }
                }
                Err(_) => {
                    let status = host.child.try_wait().ok().flatten();
                    panic!(
                        "amimono {args:?} did not print URLs for {http_labels:?} (exit: {status:?}); stderr:\n{}",
                        host.stderr()
                    );
                }
            }
        }
        host
    }

    /// The URL of HTTP component `label`.
    pub fn url(&self, label: &str) -> &str {
        &self.urls[label]
    }

    /// Everything the host wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until the host logged that its job runs (for jobs without HTTP
    /// components, which print no URL).
    pub fn wait_running(&self) {
        assert!(
            self.wait_for_log("job running", Duration::from_secs(60)),
            "the host did not start; stderr:\n{}",
            self.stderr()
        );
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `timeout` for the process to exit; its status code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits up to `timeout` for the host's stderr to contain `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if self.stderr().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP response's status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The body as text.
    pub body: String,
}

/// GETs `url` and returns status and body, whatever the status.
pub fn get(url: &str) -> Reply {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut response = agent
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    Reply {
        status: response.status().as_u16(),
        body: response.body_mut().read_to_string().unwrap(),
    }
}

/// A free TCP port on loopback (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A temporary app directory with manifest `text`; `{wasm:NAME}` in the text
/// is replaced by the path of built guest `NAME`.
pub fn temp_app(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut manifest = text.to_string();
    while let Some(start) = manifest.find("{wasm:") {
        let end = start + manifest[start..].find('}').unwrap();
        let name = &manifest[start + 6..end];
        let path = wasm(name).display().to_string();
        manifest.replace_range(start..=end, &path);
    }
    std::fs::write(dir.path().join("amimono.toml"), manifest).unwrap();
    dir
}

/// POSTs `body` to `url` with `headers`; status, response headers and body bytes.
pub fn post(
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut request = agent.post(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = request
        .send(body)
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_vec().unwrap();
    (status, headers, body)
}

/// The hello manifest with absolute component paths and without build
/// commands, so it works from any directory.
pub fn hello_manifest() -> String {
    let text = std::fs::read_to_string(hello_app().join("amimono.toml")).unwrap();
    let wasm_dir = format!("{}/", root().join("target/wasm32-wasip2/release").display());
    text.replace("../../target/wasm32-wasip2/release/", &wasm_dir)
        .lines()
        .filter(|l| !l.starts_with("build = "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A bindings file for the hello app on free loopback ports: frontend on
/// its own port, the backend job's rpc components sharing one.
pub fn hello_bindings(dir: &Path) -> (PathBuf, u16, u16) {
    let (web, backend) = (free_port(), free_port());
    let path = dir.join("bindings.toml");
    std::fs::write(
        &path,
        format!(
            "[components.frontend]\ntype = \"http\"\ninternal = \"127.0.0.1:{web}\"\nexternal = \"http://127.0.0.1:{web}\"\n\n\
             [components.greeter]\ntype = \"rpc\"\ninternal = \"127.0.0.1:{backend}\"\nexternal = \"http://127.0.0.1:{backend}\"\n\n\
             [components.phrasebook]\ntype = \"rpc\"\ninternal = \"127.0.0.1:{backend}\"\nexternal = \"http://127.0.0.1:{backend}\"\n"
        ),
    )
    .unwrap();
    (path, web, backend)
}

/// Where the hello app's components run: the placements every scenario is
/// run under (Service Weaver's `weavertest` runners).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Every job in one process, calls linked directly (`_local`).
    Local,
    /// Every job in one process, every call between components over HTTP.
    ForcedRemote,
    /// One `amimono run` process per job, calls between jobs over HTTP.
    Split,
}

/// The hello app deployed in some [`Layout`].
pub struct Deployment {
    /// The hosts, web last.
    pub hosts: Vec<Host>,
    /// The layout.
    pub layout: Layout,
    _dir: tempfile::TempDir,
}

impl Deployment {
    /// Starts the hello app in `layout` and waits until it serves.
    pub fn hello(layout: Layout) -> Deployment {
        Deployment::start(&hello_app(), layout)
    }

    /// Starts the app at `app` (shaped like hello: jobs `web` and `backend`) in `layout`.
    pub fn start(app: &Path, layout: Layout) -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        let hosts = match layout {
            Layout::Local => vec![Host::start(
                app,
                &[("AMIMONO_JOB", "_local")],
                &["frontend"],
            )],
            Layout::ForcedRemote => vec![Host::start(
                app,
                &[("AMIMONO_JOB", "_local"), ("AMIMONO_FORCE_REMOTE", "1")],
                &["frontend"],
            )],
            Layout::Split => {
                let (bindings, _, _) = hello_bindings(dir.path());
                let bindings = bindings.to_str().unwrap();
                let backend = Host::start(
                    app,
                    &[("AMIMONO_JOB", "backend"), ("AMIMONO_BINDINGS", bindings)],
                    &[],
                );
                backend.wait_running();
                let web = Host::start(
                    app,
                    &[("AMIMONO_JOB", "web"), ("AMIMONO_BINDINGS", bindings)],
                    &["frontend"],
                );
                vec![backend, web]
            }
        };
        Deployment {
            hosts,
            layout,
            _dir: dir,
        }
    }

    /// The frontend's URL.
    pub fn url(&self) -> &str {
        self.hosts.last().unwrap().url("frontend")
    }

    /// Everything every host logged.
    pub fn logs(&self) -> String {
        self.hosts
            .iter()
            .map(Host::stderr)
            .collect::<Vec<_>>()
            .join("\n")
    }
}
