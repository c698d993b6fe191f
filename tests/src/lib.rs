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
        let mut command = amimono();
        command
            .arg("run")
            .arg(app)
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
                        "amimono run did not print URLs for {http_labels:?} (exit: {status:?}); stderr:\n{}",
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
