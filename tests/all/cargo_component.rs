//! A component built with `cargo component build` (cargo-component, which
//! targets wasm32-wasip1 and adapts the module to a component) loads and links
//! like one built with plain `cargo build --target wasm32-wasip2`.

use amimono_tests::{Host, get, root, run_amimono, temp_app, texts};
use std::path::PathBuf;
use std::process::Command;

/// cargo-component: `$AMIMONO_CARGO_COMPONENT` (set by `cargo xtask test`),
/// else `target/tools/bin/cargo-component`.
fn cargo_component() -> PathBuf {
    let path = std::env::var_os("AMIMONO_CARGO_COMPONENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/tools/bin/cargo-component"));
    assert!(
        path.exists(),
        "cargo-component not found at {}: `cargo xtask test` installs it",
        path.display()
    );
    path
}

#[test]
fn the_hello_app_built_with_cargo_component_loads_links_and_serves() {
    let tool = cargo_component();
    let path = format!(
        "{}:{}",
        tool.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("cargo")
        .current_dir(root())
        .env("PATH", path)
        .args(["component", "build", "--release"])
        .args([
            "-p",
            "hello-frontend",
            "-p",
            "hello-greeter",
            "-p",
            "hello-phrasebook",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo component build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built = |name: &str| {
        let path = root().join(format!("target/wasm32-wasip1/release/{name}.wasm"));
        assert!(path.exists(), "{} missing", path.display());
        path.display().to_string()
    };
    let app = temp_app(&format!(
        "[app]\nname = \"mixed\"\n\n[components.frontend]\nbinding = \"http\"\nkeyvalue = [\"visits\"]\nsource = \"{}\"\n\n[components.greeter]\nbinding = \"rpc\"\nsource = \"{}\"\n\n[components.phrasebook]\nbinding = \"rpc\"\nsource = \"{}\"\n\n[jobs.one]\ncomponents = [\"frontend\", \"greeter\", \"phrasebook\"]\n",
        built("hello_frontend"),
        built("hello_greeter"),
        built("hello_phrasebook"),
    ));
    let out = run_amimono(
        &[
            "call",
            app.path().to_str().unwrap(),
            "greeter",
            "greet-in",
            "\"world\"",
            "some(\"es\")",
        ],
        &[],
    );
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("¡Hola, world!"), "{stdout}");
    let host = Host::start(app.path(), &[("AMIMONO_JOB", "one")], &["frontend"]);
    let reply = get(&format!("{}/hello/world", host.url("frontend")));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.body.starts_with("Hello, world! (visit "), "{reply:?}");
}
