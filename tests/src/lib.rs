//! Test harness for Amimono's integration tests: finds the built `amimono`
//! binary and guest components (built beforehand by `cargo xtask build`, never
//! by the tests), starts hosts as real processes, waits for their URLs, and
//! speaks HTTP to them over loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod otlp;
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

/// The cluster key every host a test starts gets (calls between jobs are
/// authenticated); tests of authentication override or remove it.
pub const TEST_CLUSTER_KEY: &str = "amimono-tests-cluster-key-0123456789abcdef";

/// A command running `amimono` with a private compile cache under `target/`
/// and the tests' cluster key.
pub fn amimono() -> Command {
    let mut command = Command::new(amimono_bin());
    command
        .current_dir(root())
        .env_remove("AMIMONO_JOB")
        .env_remove("AMIMONO_BINDINGS")
        .env_remove("AMIMONO_REPLICA")
        .env_remove("AMIMONO_CLUSTER_KEY_FILE")
        .env_remove("AMIMONO_INSECURE_NO_AUTH")
        // `amimono build` runs the guests' cargo builds: incremental
        // compilation (handy for the host) makes wasm-component-ld fail on
        // them ("module requires an import interface named …").
        .env_remove("CARGO_INCREMENTAL")
        .env("AMIMONO_CLUSTER_KEY", TEST_CLUSTER_KEY)
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
        Host::start_without(args, env, &[], http_labels)
    }

    /// `amimono up <app>` with its bundle in the app's directory and ports
    /// from a free base port, `extra` arguments after those (e.g.
    /// `--dashboard`), `env` set and `unset` removed; waits until it has
    /// printed a URL for each label in `http_labels`.
    pub fn start_up(
        app: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
        unset: &[&str],
        http_labels: &[&str],
    ) -> Host {
        let app_dir = app.to_string_lossy().into_owned();
        let bundle = app.join("app.amimono").to_string_lossy().into_owned();
        let base = free_port().to_string();
        let mut args = vec!["up", &app_dir, "--out", &bundle, "--base-port", &base];
        args.extend_from_slice(extra);
        Host::start_without(&args, env, unset, http_labels)
    }

    /// [`Host::start_with`], with the variables `unset` removed from the
    /// environment (e.g. the tests' cluster key).
    pub fn start_without(
        args: &[&str],
        env: &[(&str, &str)],
        unset: &[&str],
        http_labels: &[&str],
    ) -> Host {
        let mut command = amimono();
        command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        for k in unset {
            command.env_remove(k);
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

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the process.
    pub fn signal(&self, signal: i32) {
        signal_pid(self.pid(), signal);
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

    /// The log record (its first line and any continuation lines, such as a
    /// wasm backtrace) that contains `needle`, waiting up to 5 s for it.
    pub fn log_record(&self, needle: &str) -> String {
        assert!(
            self.wait_for_log(needle, Duration::from_secs(5)),
            "no log line contains {needle:?}:\n{}",
            self.stderr()
        );
        let stderr = self.stderr();
        let mut lines = stderr.lines().skip_while(|l| !l.contains(needle));
        let mut record = lines.next().unwrap_or_default().to_string();
        // A new record starts with its timestamp (`2026-…`).
        for line in lines.take_while(|l| !l.starts_with("20")) {
            record.push('\n');
            record.push_str(line);
        }
        record
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

/// A job of a temporary app serving rpc component `probe` on a free port,
/// alone: the app (kept alive by the value), the host, the base URL of its
/// rpc listener and the app's revision. `manifest` is a [`temp_app`] text
/// whose job `job` holds `probe`.
pub struct RpcBackend {
    /// The host.
    pub host: Host,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The app's revision.
    pub revision: String,
    _app: tempfile::TempDir,
}

impl RpcBackend {
    /// Starts job `job` of `manifest` with `probe` on a free port.
    pub fn start(manifest: &str, job: &str) -> RpcBackend {
        let app = temp_app(manifest);
        let port = free_port();
        let bindings = app.path().join("b.toml");
        std::fs::write(
            &bindings,
            format!("[components.probe]\ntype = \"rpc\"\ninternal = \"127.0.0.1:{port}\"\n"),
        )
        .unwrap();
        let out = run_amimono(
            &["run", app.path().to_str().unwrap()],
            &[("AMIMONO_JOB", "_config")],
        );
        let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let revision = config["revision"].as_str().unwrap().to_string();
        let host = Host::start(
            app.path(),
            &[
                ("AMIMONO_JOB", job),
                ("AMIMONO_BINDINGS", bindings.to_str().unwrap()),
            ],
            &[],
        );
        host.wait_running();
        RpcBackend {
            host,
            url: format!("http://127.0.0.1:{port}"),
            revision,
            _app: app,
        }
    }
}

/// Sends `signal` to process `pid` (one the test spawned).
pub fn signal_pid(pid: u32, signal: i32) {
    // SAFETY: `kill` with a valid signal; a pid this test spawned and still
    // owns (not reaped yet).
    #[allow(unsafe_code)]
    let sent = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(sent, 0, "kill({pid}, {signal})");
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
    try_get(url).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// GETs `url`: status and body whatever the status, or why no answer came.
pub fn try_get(url: &str) -> Result<Reply, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
    Ok(Reply {
        status: response.status().as_u16(),
        body: response
            .body_mut()
            .read_to_string()
            .map_err(|e| e.to_string())?,
    })
}

/// Ports handed out by [`free_port`]: below Linux's ephemeral range
/// (32768–60999), so the kernel never gives them to other sockets, and each
/// one followed by 7 spares (for `amimono bindings --base-port`).
const TEST_PORTS: std::ops::Range<u16> = 20000..32000;
const PORT_BLOCK: u16 = 8;

/// A free TCP port on loopback, never handed out twice by this process:
/// tests run in parallel, and a port picked by the kernel, released, then
/// bound by a host later can meanwhile have been picked for another test.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let blocks = u32::from((TEST_PORTS.end - TEST_PORTS.start) / PORT_BLOCK);
    // Test processes running side by side start at different blocks.
    let start = std::process::id() % blocks;
    for _ in 0..blocks {
        let block = (start + NEXT.fetch_add(1, Ordering::Relaxed) % blocks) % blocks;
        let port = TEST_PORTS.start + u16::try_from(block).unwrap() * PORT_BLOCK;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port left in {TEST_PORTS:?}");
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

/// The `amimono-auth` header of a remote call, computed as
/// `docs/protocol.md` says (independently of the host's code, so the two
/// are checked against each other): `v1.<ms>.<nonce>.<sha256(body)>.<mac>`,
/// the MAC an HMAC-SHA256 under `key` over the length-prefixed fields.
#[allow(clippy::too_many_arguments)]
pub fn call_auth(
    key: &str,
    revision: &str,
    label: &str,
    function: &str,
    deadline_ms: &str,
    caller: &str,
    body: &[u8],
    timestamp_ms: u64,
) -> String {
    use hmac::Mac;
    use sha2::Digest;
    use std::sync::atomic::{AtomicU64, Ordering};
    static NONCE: AtomicU64 = AtomicU64::new(0);
    let nonce = format!(
        "{:016x}{:016x}",
        u64::from(std::process::id()),
        NONCE.fetch_add(1, Ordering::Relaxed)
    );
    let digest = hex::encode(sha2::Sha256::digest(body));
    let timestamp = timestamp_ms.to_string();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    for part in [
        "v1",
        revision,
        label,
        function,
        deadline_ms,
        caller,
        &timestamp,
        &nonce,
        &digest,
    ] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    let tag = hex::encode(mac.finalize().into_bytes());
    format!("v1.{timestamp}.{nonce}.{digest}.{tag}")
}

/// The request id in a host-made error body (`… (request id <16 hex>)`).
pub fn request_id(body: &str) -> String {
    let start = body
        .find("(request id ")
        .unwrap_or_else(|| panic!("no request id in {body:?}"))
        + "(request id ".len();
    let id = &body[start..start + 16];
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{body:?}");
    id.to_string()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A remote call as another implementation would make it: POSTs `body` to
/// `<base>/amimono/v1/call/<label>` with the protocol headers (`deadline_ms`
/// only if given), signed with the tests' cluster key; status, headers, body.
pub fn rpc_call(
    base: &str,
    label: &str,
    revision: &str,
    function: &str,
    deadline_ms: Option<&str>,
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let auth = call_auth(
        TEST_CLUSTER_KEY,
        revision,
        label,
        function,
        deadline_ms.unwrap_or(""),
        "tests",
        body,
        now_ms(),
    );
    let mut headers = vec![
        ("amimono-revision", revision),
        ("amimono-function", function),
        ("amimono-caller", "tests"),
        ("content-type", "application/vnd.amimono.values"),
        ("amimono-auth", auth.as_str()),
    ];
    if let Some(ms) = deadline_ms {
        headers.push(("amimono-deadline-ms", ms));
    }
    post(&format!("{base}/amimono/v1/call/{label}"), &headers, body)
}

/// An HTTP response: status, headers and body text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    /// The status code.
    pub status: u16,
    /// The headers, names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl HttpReply {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Sends `method` (`GET` or `POST`) to `url` with `headers` (and `body` for
/// a POST), without following redirects; the reply, whatever its status.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpReply {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let result = match method {
        "GET" => {
            let mut request = agent.get(url);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request.call()
        }
        "POST" => {
            let mut request = agent.post(url);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request.send(body)
        }
        other => panic!("unsupported method {other}"),
    };
    let mut response = result.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    HttpReply {
        status: response.status().as_u16(),
        headers,
        body: response.body_mut().read_to_string().unwrap(),
    }
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

/// Runs each scenario (`fn(Layout)`) under every placement, like Service
/// Weaver's weavertest runners: a test module per placement — `local`,
/// `forced_remote` (every call over HTTP in one process), `split` (one
/// process per job) — plus one per named layout listed after the scenarios.
/// Results must not depend on the placement.
///
/// `in_every_layout!([scenario_a, scenario_b], grouped = "grouped");`
#[macro_export]
macro_rules! in_every_layout {
    ($scenarios:tt $(, $module:ident = $layout:literal)* $(,)?) => {
        $crate::in_layout!(local, $crate::Layout::Local, $scenarios);
        $crate::in_layout!(forced_remote, $crate::Layout::ForcedRemote, $scenarios);
        $crate::in_layout!(split, $crate::Layout::Split, $scenarios);
        $( $crate::in_layout!($module, $crate::Layout::Named($layout), $scenarios); )*
    };
}

/// One test module `$module` running each scenario under `$layout`.
#[macro_export]
macro_rules! in_layout {
    ($module:ident, $layout:expr, [$($scenario:ident),* $(,)?]) => {
        mod $module {
            $( #[test] fn $scenario() { super::$scenario($layout) } )*
        }
    };
}

/// Where an app's components run: the placements every scenario is run
/// under (Service Weaver's `weavertest` runners).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Every job in one process, calls linked directly (`_local`).
    Local,
    /// Every job in one process, every call between components over HTTP.
    ForcedRemote,
    /// One `amimono run` process per job of the manifest's `[jobs]`, calls
    /// between jobs over HTTP.
    Split,
    /// One `amimono run` process per job of the manifest's named layout
    /// (`[layouts.<name>]`, selected with `AMIMONO_LAYOUT`).
    Named(&'static str),
}

/// An app deployed in some [`Layout`].
pub struct Deployment {
    /// The hosts, those serving HTTP components last.
    pub hosts: Vec<Host>,
    /// The layout.
    pub layout: Layout,
    _dir: tempfile::TempDir,
}

/// The jobs of `app` in `layout` (`None`: the manifest's `[jobs]`), read
/// from `AMIMONO_JOB=_config`: for each job, its components' labels and
/// binding types (`http`, `rpc`, `none`).
pub fn app_jobs(app: &Path, layout: Option<&str>) -> BTreeMap<String, Vec<(String, String)>> {
    let app_arg = app.to_string_lossy().into_owned();
    let mut env = vec![("AMIMONO_JOB", "_config")];
    if let Some(layout) = layout {
        env.push(("AMIMONO_LAYOUT", layout));
    }
    let output = run_amimono(&["run", &app_arg], &env);
    let (stdout, stderr) = texts(&output);
    assert!(
        output.status.success(),
        "amimono run {app_arg} (_config, layout {layout:?}) failed:\n{stderr}"
    );
    let config: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("_config is not JSON ({e}):\n{stdout}"));
    let mut jobs = BTreeMap::new();
    for (job, spec) in config["jobs"].as_object().expect("jobs in _config") {
        let components = spec["components"]
            .as_object()
            .expect("components in _config")
            .iter()
            .map(|(label, c)| {
                let kind = c["binding"]["type"].as_str().unwrap_or("none").to_string();
                (label.clone(), kind)
            })
            .collect();
        jobs.insert(job.clone(), components);
    }
    jobs
}

/// Writes a bindings file for running every job of `jobs` (see
/// [`app_jobs`]) on loopback, on free ports: each HTTP component on its own
/// port, the rpc components of a job sharing one.
pub fn write_bindings(path: &Path, jobs: &BTreeMap<String, Vec<(String, String)>>) {
    let mut text = String::new();
    for components in jobs.values() {
        let rpc_port = free_port();
        for (label, kind) in components {
            let port = match kind.as_str() {
                "http" => free_port(),
                "rpc" => rpc_port,
                _ => continue,
            };
            text.push_str(&format!(
                "[components.{label}]\ntype = \"{kind}\"\ninternal = \"127.0.0.1:{port}\"\nexternal = \"http://127.0.0.1:{port}\"\n\n"
            ));
        }
    }
    std::fs::write(path, text).unwrap();
}

impl Deployment {
    /// Starts the hello app in `layout` and waits until it serves.
    pub fn hello(layout: Layout) -> Deployment {
        Deployment::start(&hello_app(), layout)
    }

    /// Starts the app at `app` in `layout` and waits until it serves.
    pub fn start(app: &Path, layout: Layout) -> Deployment {
        Deployment::start_with(app, layout, &[])
    }

    /// Starts the app at `app` in `layout`, every host with the extra
    /// environment `env`, and waits until every job runs and every HTTP
    /// component has printed its URL. Split layouts start one process per
    /// job, with a bindings file on free ports.
    pub fn start_with(app: &Path, layout: Layout, env: &[(&str, &str)]) -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        let with = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
            extra
                .iter()
                .chain(env)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let local = |extra: &[(&str, &str)]| {
            let env = with(extra);
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let http: Vec<String> = app_jobs(app, None)
                .into_values()
                .flatten()
                .filter(|(_, kind)| kind == "http")
                .map(|(label, _)| label)
                .collect();
            let http: Vec<&str> = http.iter().map(String::as_str).collect();
            vec![Host::start(app, &env, &http)]
        };
        let hosts = match layout {
            Layout::Local => local(&[("AMIMONO_JOB", "_local")]),
            Layout::ForcedRemote => {
                local(&[("AMIMONO_JOB", "_local"), ("AMIMONO_FORCE_REMOTE", "1")])
            }
            Layout::Split | Layout::Named(_) => {
                let name = match layout {
                    Layout::Named(name) => Some(name),
                    _ => None,
                };
                let jobs = app_jobs(app, name);
                let bindings = dir.path().join("bindings.toml");
                write_bindings(&bindings, &jobs);
                let bindings = bindings.to_str().unwrap();
                let start = |job: &str, http: &[&str]| {
                    let mut extra = vec![("AMIMONO_JOB", job), ("AMIMONO_BINDINGS", bindings)];
                    if let Some(name) = name {
                        extra.push(("AMIMONO_LAYOUT", name));
                    }
                    let env = with(&extra);
                    let env: Vec<(&str, &str)> =
                        env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    Host::start(app, &env, http)
                };
                // Jobs without HTTP components first (they print no URL and
                // start in parallel), then the others, waiting for their URLs.
                let mut hosts = Vec::new();
                let mut serving = Vec::new();
                for (job, components) in &jobs {
                    let http: Vec<&str> = components
                        .iter()
                        .filter(|(_, kind)| kind == "http")
                        .map(|(label, _)| label.as_str())
                        .collect();
                    if http.is_empty() {
                        hosts.push(start(job, &[]));
                    } else {
                        serving.push((job, http));
                    }
                }
                for (job, http) in serving {
                    hosts.push(start(job, &http));
                }
                for host in &hosts {
                    host.wait_running();
                }
                hosts
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
        self.url_of("frontend")
    }

    /// The URL of HTTP component `label`.
    pub fn url_of(&self, label: &str) -> &str {
        self.hosts
            .iter()
            .find_map(|host| host.urls.get(label))
            .unwrap_or_else(|| panic!("no host serves {label}"))
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

/// The `kubernetes-validate` command (PyPI; the Kubernetes OpenAPI schemas,
/// offline): `$AMIMONO_KUBERNETES_VALIDATE`, else the one `cargo xtask
/// test` installs under `target/tools/py`.
pub fn kubernetes_validate() -> PathBuf {
    let path = std::env::var_os("AMIMONO_KUBERNETES_VALIDATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/tools/py/bin/kubernetes-validate"));
    assert!(
        path.exists(),
        "{} does not exist: `cargo xtask test` installs it (or set AMIMONO_KUBERNETES_VALIDATE)",
        path.display()
    );
    path
}

/// A `podman` command with the tests' settings: `tests/podman/containers.conf`
/// (runc, since crun fails on this machine kind, and ulimits it allows).
pub fn podman() -> Command {
    let mut command = Command::new("podman");
    command.env(
        "CONTAINERS_CONF",
        root().join("tests/podman/containers.conf"),
    );
    command
}

/// podman-compose (PyPI): `$AMIMONO_PODMAN_COMPOSE`, else the one `cargo
/// xtask test` installs under `target/tools/py`; with [`podman`]'s settings.
pub fn podman_compose() -> Command {
    let path = std::env::var_os("AMIMONO_PODMAN_COMPOSE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/tools/py/bin/podman-compose"));
    assert!(
        path.exists(),
        "{} does not exist: `cargo xtask test` installs it (or set AMIMONO_PODMAN_COMPOSE)",
        path.display()
    );
    let mut command = Command::new(path);
    command.env(
        "CONTAINERS_CONF",
        root().join("tests/podman/containers.conf"),
    );
    command
}

/// The hello manifest (see [`hello_manifest`]) with `replicas` replicas of
/// the `backend` job and every function of the greeter marked idempotent.
pub fn replicated_hello_manifest(replicas: u32) -> String {
    hello_manifest()
        .replace(
            "[jobs.backend]\ncomponents = [\"greeter\", \"phrasebook\"]",
            &format!(
                "[jobs.backend]\ncomponents = [\"greeter\", \"phrasebook\"]\nreplicas = {replicas}"
            ),
        )
        .replace(
            "[components.greeter]\n",
            "[components.greeter]\nidempotent = [\"greet\", \"greet-in\", \"greet-all\", \"languages\"]\n",
        )
}

/// A bindings file for the hello app with `replicas` replicas of the
/// backend on one machine, on free loopback ports: the frontend on its own
/// port, replica `i` of the backend on `backend[i]` (its rpc components
/// share it), as lists. The path, the frontend's port and the backend's.
pub fn replicated_hello_bindings(dir: &Path, replicas: u32) -> (PathBuf, u16, Vec<u16>) {
    let web = free_port();
    let backend: Vec<u16> = (0..replicas).map(|_| free_port()).collect();
    let list = backend
        .iter()
        .map(|port| format!("\"127.0.0.1:{port}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let path = dir.join("bindings.toml");
    std::fs::write(
        &path,
        format!(
            "[components.frontend]\ntype = \"http\"\ninternal = \"127.0.0.1:{web}\"\n\n\
             [components.greeter]\ntype = \"rpc\"\ninternal = [{list}]\n\n\
             [components.phrasebook]\ntype = \"rpc\"\ninternal = [{list}]\n"
        ),
    )
    .unwrap();
    (path, web, backend)
}

impl Host {
    /// How many lines of the host's stderr contain every one of `needles`.
    pub fn count_lines(&self, needles: &[&str]) -> usize {
        self.stderr()
            .lines()
            .filter(|line| needles.iter().all(|n| line.contains(n)))
            .count()
    }

    /// Waits up to `timeout` for a line of the host's stderr that contains
    /// every one of `needles`.
    pub fn wait_for_line(&self, needles: &[&str], timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if self.count_lines(needles) > 0 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

/// The pids of `parent`'s children, from /proc.
pub fn child_pids(parent: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name, which is in parentheses.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let ppid: u32 = after.split(' ').nth(1).unwrap().parse().unwrap();
        if ppid == parent {
            pids.push(pid);
        }
    }
    pids
}

/// The value of environment variable `name` of process `pid`, from /proc.
pub fn env_of(pid: u32, name: &str) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{name}=");
    environ
        .split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(prefix.as_bytes()))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Runs `podman args` to completion; its stdout, or a panic with its stderr.
pub fn podman_ok(args: &[&str]) -> String {
    let output = podman().args(args).output().expect("running podman");
    let (stdout, stderr) = texts(&output);
    assert!(
        output.status.success(),
        "podman {}: {stderr}",
        args.join(" ")
    );
    stdout
}

/// What a test made in podman (images, containers, volumes), all with names
/// unique to the test process; removed on drop, also when the test fails.
pub struct Podman {
    prefix: String,
    images: Vec<String>,
    containers: Vec<String>,
    volumes: Vec<String>,
}

impl Podman {
    /// A new set, its names starting `amimono-test-<pid>-<n>`.
    pub fn new() -> Podman {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Podman {
            prefix: format!("amimono-test-{}-{n}", std::process::id()),
            images: Vec::new(),
            containers: Vec::new(),
            volumes: Vec::new(),
        }
    }

    /// An image name of this set (`localhost/amimono-test-<pid>-<n>:t`),
    /// removed on drop.
    pub fn image_name(&mut self) -> String {
        let name = format!("localhost/{}:t", self.prefix);
        self.images.push(name.clone());
        name
    }

    /// A container or volume name of this set with `suffix`; `volume`
    /// says which, for the removal on drop.
    pub fn name(&mut self, suffix: &str, volume: bool) -> String {
        let name = format!("{}-{suffix}", self.prefix);
        if volume {
            self.volumes.push(name.clone());
        } else {
            self.containers.push(name.clone());
        }
        name
    }

    /// `podman load -i archive`; its stdout (`Loaded image: <name>`).
    pub fn load(&self, archive: &Path) -> String {
        podman_ok(&["load", "-i", archive.to_str().unwrap()])
    }

    /// Container `name`'s output so far (stdout, then stderr).
    pub fn logs(&self, name: &str) -> String {
        let output = podman().args(["logs", name]).output().unwrap();
        let (stdout, stderr) = texts(&output);
        format!("{stdout}{stderr}")
    }

    /// Waits up to `timeout` until container `name`'s output contains
    /// `needle`; its output either way.
    pub fn wait_for_log(&self, name: &str, needle: &str, timeout: Duration) -> (bool, String) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let logs = self.logs(name);
            if logs.contains(needle) || std::time::Instant::now() >= deadline {
                return (logs.contains(needle), logs);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Default for Podman {
    fn default() -> Podman {
        Podman::new()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let remove = |args: &[&str], names: &[String]| {
            if !names.is_empty() {
                let _ = podman()
                    .args(args)
                    .args(names)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        };
        remove(&["rm", "-f", "-t", "0"], &self.containers);
        remove(&["rmi", "-f"], &self.images);
        remove(&["volume", "rm", "-f"], &self.volumes);
    }
}

/// Builds the app at `app` (a directory or manifest) into `dir` with
/// `amimono build`, which must succeed; the bundle's path and revision.
pub fn build_bundle(app: &Path, dir: &Path) -> (PathBuf, String) {
    let bundle = dir.join("app.amimono");
    let out = run_amimono(
        &[
            "build",
            app.to_str().unwrap(),
            "--out",
            bundle.to_str().unwrap(),
        ],
        &[],
    );
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let revision = stdout
        .lines()
        .find_map(|line| line.strip_prefix("revision "))
        .unwrap_or_else(|| panic!("no revision in {stdout}"))
        .to_string();
    (bundle, revision)
}
