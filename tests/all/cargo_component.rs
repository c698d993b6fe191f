//! A component built with `cargo component build` (cargo-component, which
//! targets wasm32-wasip1 and adapts the module to a component) loads and links
//! like one built with plain `cargo build --target wasm32-wasip2`.

use amimono_tests::{root, run_amimono, temp_app, texts};
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
fn a_cargo_component_build_loads_and_links() {
    let tool = cargo_component();
    let path = format!(
        "{}:{}",
        tool.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("cargo")
        .current_dir(root())
        .env("PATH", path)
        .args(["component", "build", "--release", "-p", "hello-phrasebook"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo component build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built = root().join("target/wasm32-wasip1/release/hello_phrasebook.wasm");
    assert!(built.exists(), "{} missing", built.display());
    let app = temp_app(&format!(
        "[app]\nname = \"mixed\"\n\n[components.greeter]\nbinding = \"rpc\"\nsource = \"{{wasm:hello_greeter}}\"\n\n[components.phrasebook]\nbinding = \"rpc\"\nsource = \"{}\"\n\n[jobs.one]\ncomponents = [\"greeter\", \"phrasebook\"]\n",
        built.display()
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
}
