//! `cargo xtask`: the project's automation, so that no step lives only in
//! someone's shell history.
//!
//! - `cargo xtask build`: installs what is missing (the `wasm32-wasip2` target),
//!   builds every guest component (examples and test fixtures) and the host, release.
//! - `cargo xtask test`: build, then formatting, clippy (host and guests),
//!   `cargo deny` (`deny.toml`, see `deny.rs`), and the whole test suite
//!   (unit tests and the integration tests in `tests/`), then
//!   `bench --quick`. `.ci/run` runs exactly this.
//! - `cargo xtask demo`: build, then run `examples/hello` with every job in one
//!   process; prints its URL.
//! - `cargo xtask bench [--quick] [--only PF1,PF5]`: build, then run the
//!   benchmarks and print their tables (the full run first installs
//!   wasmtime-cli 48.0.8 under `target/tools`, for PF4).
//! - `cargo xtask fuzz [--seconds N] [--only codec,auth] [--merge]`: builds
//!   the libFuzzer targets of `fuzz/` and runs each for N seconds (see
//!   `fuzz.rs`); `cargo xtask test` runs each for 5 s.
//!
//! Guests are built by this xtask, not by nested cargo inside `cargo test`
//! (as wasmCloud does), so tests never rebuild the world.

mod cmd;
mod deny;
mod fuzz;
mod guests;

use cmd::{Cmd, run};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The pinned cargo-component version the tests use (installed under `target/tools`).
const CARGO_COMPONENT_VERSION: &str = "0.21.1";

fn main() -> ExitCode {
    if let Some(code) = fuzz::rustc_wrapper() {
        return code;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build") => build(),
        Some("test") => test(),
        Some("demo") => demo(),
        Some("bench") => bench(&args[1..]),
        Some("fuzz") => fuzz::command(&root(), &args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <build | test | demo | bench [--quick] | fuzz [--seconds N]>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Cmd {
    Cmd::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).dir(root())
}

/// Installs the Rust target `target` with rustup if it is missing.
fn ensure_rust_target(target: &str) -> Result<(), String> {
    let installed = Cmd::new("rustup")
        .args(["target", "list", "--installed"])
        .output()?;
    if installed.lines().any(|l| l.trim() == target) {
        return Ok(());
    }
    eprintln!("xtask: installing the {target} target");
    run(Cmd::new("rustup").args(["target", "add", target]))
}

/// componentize-py, for the Python component of `examples/hello-py`,
/// installed in a venv under `target/tools/py`.
const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

fn ensure_componentize_py() -> Result<(), String> {
    let venv = root().join("target/tools/py");
    let tool = venv.join("bin/componentize-py");
    if tool.exists() {
        return Ok(());
    }
    eprintln!("xtask: installing componentize-py {COMPONENTIZE_PY_VERSION} under target/tools/py");
    run(Cmd::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Cmd::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        &format!("componentize-py=={COMPONENTIZE_PY_VERSION}"),
    ]))
}

/// Installs Debian's package `package` when `program` is not on the PATH
/// (as root, or through sudo), so a fresh machine needs no manual step.
fn ensure_debian_package(program: &str, package: &str) -> Result<(), String> {
    if Cmd::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok()
    {
        return Ok(());
    }
    eprintln!("xtask: installing Debian's {package} (for `{program}`)");
    let root_user = Cmd::new("id").arg("-u").output()?.trim() == "0";
    let apt = |args: &[&str]| {
        let cmd = if root_user {
            Cmd::new("apt-get")
        } else {
            Cmd::new("sudo").arg("apt-get")
        };
        run(cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive"))
    };
    if apt(&["install", "-y", "--no-install-recommends", package]).is_err() {
        apt(&["update", "-q"])?;
        apt(&["install", "-y", "--no-install-recommends", package])?;
    }
    Ok(())
}

/// The deployment test tools from PyPI, in the same venv: the Kubernetes
/// OpenAPI schemas with a validator (offline), and podman-compose.
const PYTHON_TEST_TOOLS: [(&str, &str); 2] = [
    ("kubernetes-validate", "1.37.0"),
    ("podman-compose", "1.6.0"),
];

fn ensure_python_test_tools() -> Result<(), String> {
    ensure_componentize_py()?;
    let bin = root().join("target/tools/py/bin");
    let missing: Vec<String> = PYTHON_TEST_TOOLS
        .iter()
        .filter(|(tool, _)| !bin.join(tool).exists())
        .map(|(tool, version)| format!("{tool}=={version}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!(
        "xtask: installing {} under target/tools/py",
        missing.join(", ")
    );
    run(Cmd::new(bin.join("pip"))
        .args(["install", "--quiet"])
        .args(missing.iter().map(String::as_str)))
}

/// The pinned playwright-core version the dashboard test uses.
const PLAYWRIGHT_CORE_VERSION: &str = "1.65.2";

/// Installs playwright-core from npm (the library only, no bundled browsers;
/// it drives Debian's Chromium for the dashboard test) under
/// `target/tools/node`, unless that version is already there.
fn ensure_playwright() -> Result<(), String> {
    let prefix = root().join("target/tools/node");
    let manifest = prefix.join("node_modules/playwright-core/package.json");
    let installed = std::fs::read_to_string(&manifest)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .is_some_and(|json| json["version"] == PLAYWRIGHT_CORE_VERSION);
    if installed {
        return Ok(());
    }
    eprintln!(
        "xtask: installing playwright-core {PLAYWRIGHT_CORE_VERSION} under target/tools/node"
    );
    run(Cmd::new("npm")
        .arg("install")
        .arg("--prefix")
        .arg(&prefix)
        .args([
            "--no-audit",
            "--no-fund",
            &format!("playwright-core@{PLAYWRIGHT_CORE_VERSION}"),
        ]))
}

fn build() -> Result<(), String> {
    ensure_rust_target(guests::TARGET)?;
    ensure_componentize_py()?;
    let packages = guests::packages(&root())?;
    eprintln!("xtask: building {} guest components", packages.len());
    let mut guest_build = cargo().args(["build", "--release", "--target", guests::TARGET]);
    for p in &packages {
        guest_build = guest_build.args(["-p", p]);
    }
    run(guest_build)?;
    for (dir, command) in guests::other_builds(&root())? {
        eprintln!("xtask: building a non-Rust component in {}", dir.display());
        run(Cmd::new("sh").args(["-c", &command]).dir(&dir))?;
    }
    eprintln!("xtask: building the host");
    run(cargo().args(["build", "--release", "-p", "amimono", "-p", "embed-hello"]))
}

fn cargo_component_path() -> PathBuf {
    root().join("target/tools/bin/cargo-component")
}

/// Starts installing cargo-component in the background, if it is missing.
fn start_cargo_component_install() -> Result<Option<std::process::Child>, String> {
    if cargo_component_path().exists() {
        return Ok(None);
    }
    eprintln!(
        "xtask: installing cargo-component {CARGO_COMPONENT_VERSION} under target/tools (background)"
    );
    let log = std::fs::File::create(root().join("target/tools-install.log"))
        .map_err(|e| format!("creating target/tools-install.log: {e}"))?;
    cargo()
        .args([
            "install",
            "--locked",
            "--quiet",
            "cargo-component",
            "--version",
            CARGO_COMPONENT_VERSION,
            "--root",
        ])
        .arg(root().join("target/tools"))
        .stdout_file(log)
        .spawn()
        .map(Some)
}

fn test() -> Result<(), String> {
    std::fs::create_dir_all(root().join("target")).map_err(|e| format!("creating target/: {e}"))?;
    let install = start_cargo_component_install()?;
    let deny_install = deny::start_install()?;
    // cargo-component builds for wasm32-wasip1 (the cargo-component test).
    ensure_rust_target("wasm32-wasip1")?;
    // The Redis key-value tests start a real redis-server on loopback.
    ensure_debian_package("redis-server", "redis-server")?;
    // The image and container tests load `amimono image`'s archive into
    // podman and run it with runc (crun, Debian's default, fails on some
    // machines); containers find each other by name through netavark's
    // aardvark-dns (only recommended by podman, so named here).
    for (program, package) in [
        ("/usr/lib/podman/netavark", "netavark"),
        ("/usr/lib/podman/aardvark-dns", "aardvark-dns"),
        ("iptables", "iptables"),
        ("runc", "runc"),
        ("podman", "podman"),
        // The metrics test scrapes a split app with a real Prometheus.
        ("prometheus", "prometheus"),
        // The dashboard test loads the page in headless Chromium, driven by Playwright.
        ("chromium", "chromium"),
    ] {
        ensure_debian_package(program, package)?;
    }
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    build()?;
    ensure_python_test_tools()?;
    ensure_playwright()?;
    eprintln!("xtask: clippy (host target)");
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--release",
        "--",
        "-D",
        "warnings",
    ]))?;
    eprintln!("xtask: clippy (guests, {})", guests::TARGET);
    let mut guest_clippy = cargo().args(["clippy", "--release", "--target", guests::TARGET]);
    for p in guests::packages(&root())? {
        guest_clippy = guest_clippy.args(["-p", &p]);
    }
    run(guest_clippy.args(["--", "-D", "warnings"]))?;
    if let Some(mut child) = install {
        eprintln!("xtask: waiting for the cargo-component install");
        let status = child
            .wait()
            .map_err(|e| format!("waiting for cargo install: {e}"))?;
        if !status.success() {
            return Err(format!(
                "installing cargo-component failed ({status}); see target/tools-install.log"
            ));
        }
    }
    let advisories = deny::check(deny_install)?;
    eprintln!("xtask: running the tests");
    // Guest crates too: their plain-Rust logic (money, Luhn, ...) has native
    // unit tests; their wasm imports are never called natively.
    let tests = cargo().args(["test", "--release", "--workspace"]);
    run(tests
        .env("AMIMONO_BIN", root().join("target/release/amimono"))
        .env("AMIMONO_CARGO_COMPONENT", cargo_component_path())
        .env(
            "AMIMONO_KUBERNETES_VALIDATE",
            root().join("target/tools/py/bin/kubernetes-validate"),
        )
        .env(
            "AMIMONO_PODMAN_COMPOSE",
            root().join("target/tools/py/bin/podman-compose"),
        )
        .env("AMIMONO_CACHE_DIR", root().join("target/amimono-cache")))?;
    fuzz::smoke(&root())?;
    eprintln!("xtask: quick benchmarks (so the suite cannot rot)");
    run(cargo().args([
        "run",
        "--release",
        "--quiet",
        "-p",
        "amimono-bench",
        "--",
        "--quick",
    ]))?;
    eprintln!("xtask: all checks passed{}", deny::summary(advisories));
    Ok(())
}

fn demo() -> Result<(), String> {
    build()?;
    eprintln!("xtask: running examples/hello with every job in one process (Ctrl-C to stop)");
    eprintln!("xtask: try `curl <url>/hello/world` with the URL printed below");
    run(Cmd::new(root().join("target/release/amimono"))
        .dir(root())
        .args(["run", "examples/hello"])
        .env("AMIMONO_JOB", "_local"))
}

/// The wasmtime-cli version PF4 compares `amimono run` with.
const WASMTIME_CLI_VERSION: &str = "48.0.8";

/// Installs wasmtime-cli under `target/tools` (for PF4; ~10 min to build).
fn ensure_wasmtime_cli() -> Result<(), String> {
    let tools = root().join("target/tools");
    let installed = Cmd::new(tools.join("bin/wasmtime"))
        .arg("--version")
        .output()
        .is_ok_and(|v| v.contains(WASMTIME_CLI_VERSION));
    if installed {
        return Ok(());
    }
    eprintln!(
        "xtask: installing wasmtime-cli {WASMTIME_CLI_VERSION} under target/tools (PF4 compares against `wasmtime serve`)"
    );
    run(cargo()
        .args([
            "install",
            "--locked",
            "wasmtime-cli",
            "--version",
            WASMTIME_CLI_VERSION,
            "--root",
        ])
        .arg(&tools))
}

/// Whether the bench arguments select PF4 (every measure runs without
/// `--only`), the one measure that needs wasmtime-cli.
fn measures_pf4(args: &[String]) -> bool {
    match args.iter().position(|a| a == "--only") {
        None => true,
        Some(i) => args.get(i + 1).is_some_and(|names| {
            names
                .split(',')
                .any(|name| name.trim().eq_ignore_ascii_case("PF4"))
        }),
    }
}

fn bench(args: &[String]) -> Result<(), String> {
    if !args.iter().any(|a| a == "--quick") && measures_pf4(args) {
        ensure_wasmtime_cli()?;
    }
    build()?;
    run(cargo()
        .args(["run", "--release", "--quiet", "-p", "amimono-bench", "--"])
        .args(args.iter().map(String::as_str)))
}
