//! Per-component capabilities: configuration and secrets, logging, stdio,
//! environment; and the refusal of what was not granted.

use amimono_tests::{Host, get, run_amimono, temp_app, texts};
use std::time::Duration;

/// The capabilities fixture, granted the key-value store `data` (it
/// imports `wasi:keyvalue`) plus `extra` manifest lines.
fn app(extra: &str) -> tempfile::TempDir {
    app_without_stores(&format!("keyvalue = [\"data\"]\n{extra}"))
}

fn app_without_stores(extra: &str) -> tempfile::TempDir {
    temp_app(&format!(
        "[app]\nname = \"caps\"\n\n[keyvalue]\nbackend = \"memory\"\n\n[components.caps]\nbinding = \"http\"\nsource = \"{{wasm:fixture_capabilities}}\"\n{extra}\n\n[jobs.one]\ncomponents = [\"caps\"]\n"
    ))
}

#[test]
fn configuration_values_and_secrets_reach_the_component_and_secrets_are_never_logged() {
    let app = app(
        "config = { greeting = \"hi\", color = \"blue\" }\nsecrets = [\"api-token\", \"db-password\"]",
    );
    let secrets = app.path().join("secrets.toml");
    std::fs::write(
        &secrets,
        "db-password = \"s3cr3t-from-file\"\napi-token = \"overridden\"\n",
    )
    .unwrap();
    let host = Host::start(
        app.path(),
        &[
            ("AMIMONO_JOB", "one"),
            ("AMIMONO_SECRETS", secrets.to_str().unwrap()),
            // The environment wins over the file.
            ("AMIMONO_SECRET_API_TOKEN", "t0ken-from-env"),
            ("RUST_LOG", "debug"),
        ],
        &["caps"],
    );
    let url = host.url("caps");
    assert_eq!(get(&format!("{url}/config/greeting")).body, "hi");
    assert_eq!(
        get(&format!("{url}/config/api-token")).body,
        "t0ken-from-env"
    );
    assert_eq!(
        get(&format!("{url}/config/db-password")).body,
        "s3cr3t-from-file"
    );
    assert_eq!(get(&format!("{url}/config/nope")).status, 404);
    let keys = get(&format!("{url}/config")).body;
    assert_eq!(
        keys.lines().collect::<Vec<_>>(),
        ["api-token", "color", "db-password", "greeting"]
    );
    let logs = host.stderr();
    assert!(
        !logs.contains("t0ken-from-env") && !logs.contains("s3cr3t-from-file"),
        "{logs}"
    );
}

#[test]
fn a_missing_secret_stops_the_start_and_says_how_to_provide_it() {
    let app = app("secrets = [\"api-token\"]");
    let out = run_amimono(
        &["run", app.path().to_str().unwrap()],
        &[("AMIMONO_JOB", "one")],
    );
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("component `caps` needs the secret `api-token`"),
        "{err}"
    );
    assert!(
        err.contains("AMIMONO_SECRET_API_TOKEN") && err.contains("AMIMONO_SECRETS"),
        "{err}"
    );
}

#[test]
fn importing_configuration_without_a_grant_is_refused_at_start() {
    let app = app("");
    let out = run_amimono(
        &["run", app.path().to_str().unwrap()],
        &[("AMIMONO_JOB", "one")],
    );
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("component `caps` imports `wasi:config/store@0.2.0-rc.1`, which the manifest does not grant it: add `config = { … }` or `secrets = [ … ]` in [components.caps]"),
        "{err}"
    );
}

#[test]
fn log_lines_and_stdio_are_logged_with_the_component_label() {
    let app = app("config = { x = \"1\" }");
    let host = Host::start(app.path(), &[("AMIMONO_JOB", "one")], &["caps"]);
    let url = host.url("caps");
    assert_eq!(
        get(&format!("{url}/log/hello%20from%20wasi-logging")).status,
        200
    );
    assert_eq!(
        get(&format!("{url}/print/hello%20from%20stdout")).status,
        200
    );
    assert!(host.wait_for_log("hello from wasi-logging", Duration::from_secs(5)));
    assert!(host.wait_for_log("(stderr)", Duration::from_secs(5)));
    let logs = host.stderr();
    let line = |needle: &str| {
        logs.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_default()
            .to_string()
    };
    let logged = line("hello from wasi-logging");
    assert!(
        logged.contains("INFO") && logged.contains("component=caps") && logged.contains("job=one"),
        "{logged}"
    );
    let stdout = line("hello from stdout component");
    assert!(
        stdout.contains("INFO") && stdout.contains("stream=\"stdout\""),
        "{logs}"
    );
    let stderr = line("hello from stdout (stderr)");
    assert!(
        stderr.contains("WARN") && stderr.contains("component=caps"),
        "{stderr}"
    );
}

#[test]
fn a_component_sees_only_the_environment_it_is_granted() {
    let app = app("config = { x = \"1\" }\nenv = { MODE = \"test\" }");
    let host = Host::start(
        app.path(),
        &[("AMIMONO_JOB", "one"), ("HOST_ONLY", "leak")],
        &["caps"],
    );
    let url = host.url("caps");
    assert_eq!(get(&format!("{url}/env/MODE")).body, "test");
    assert_eq!(get(&format!("{url}/env/HOST_ONLY")).status, 404);
    assert_eq!(get(&format!("{url}/env/PATH")).status, 404);
}

#[test]
fn importing_key_value_without_a_grant_is_refused_at_start() {
    let app = app_without_stores("config = { x = \"1\" }");
    let out = run_amimono(
        &["run", app.path().to_str().unwrap()],
        &[("AMIMONO_JOB", "one")],
    );
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("component `caps` imports `wasi:keyvalue/store@0.2.0-draft`, which the manifest does not grant it: add `keyvalue = [\"<store>\"]` in [components.caps]"),
        "{err}"
    );
}
