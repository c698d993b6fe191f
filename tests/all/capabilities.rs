//! Per-component capabilities: configuration and secrets, logging, stdio,
//! environment; the refusal at start of what was not granted, and outbound
//! HTTP, which links without a grant and is denied request by request.

use amimono_tests::{Host, get, run_amimono, temp_app, texts};
use std::time::Duration;

/// The capabilities fixture, granted the key-value store `data` (it
/// imports `wasi:keyvalue`) plus `extra` manifest lines. It also imports
/// `wasi:http/outgoing-handler`, which needs no grant to link.
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

#[test]
fn outbound_http_goes_only_to_allowed_hosts_and_never_follows_the_inbound_host_header() {
    let (target, _target_dir) = probe_target();
    let allowed = target.url("probe").to_string();
    let app = app(&format!(
        "config = {{ x = \"1\" }}\nallowed_outbound_hosts = [\"{allowed}\"]"
    ));
    let host = Host::start(app.path(), &[("AMIMONO_JOB", "one")], &["caps"]);
    let url = host.url("caps");
    let reply = get(&format!("{url}/fetch?url={allowed}/label"));
    assert_eq!((reply.status, reply.body.as_str()), (200, "200 probe"));
    // Another port of the same host is not allowed.
    let other = format!("http://127.0.0.1:{}", amimono_tests::free_port());
    let reply = get(&format!("{url}/fetch?url={other}/"));
    assert_eq!(reply.status, 502, "{reply:?}");
    assert!(reply.body.contains("HttpRequestDenied"), "{reply:?}");
    assert!(host.wait_for_log("outbound HTTP request denied", Duration::from_secs(5)));
    // A Host header naming an unlisted authority cannot redirect the call.
    let address = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    use std::io::{Read, Write};
    let evil = other.trim_start_matches("http://");
    stream
        .write_all(
            format!("GET /fetch-self/label HTTP/1.1\r\nHost: {evil}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    assert!(answer.contains("HttpRequestDenied"), "{answer}");
}

/// A real HTTP server that outbound requests could reach: the probe
/// fixture (`GET /label` answers `probe`), and its app directory.
fn probe_target() -> (Host, tempfile::TempDir) {
    let target = temp_app(
        "[app]\nname = \"target\"\n\n[components.probe]\nbinding = \"http\"\nsource = \"{wasm:fixture_trap_http}\"\n\n[jobs.one]\ncomponents = [\"probe\"]\n",
    );
    let host = Host::start(target.path(), &[("AMIMONO_JOB", "one")], &["probe"]);
    (host, target)
}

#[test]
fn importing_outbound_http_without_a_grant_starts_and_every_request_is_denied() {
    // Like every componentize-py and componentize-js HTTP component, the
    // fixture imports `wasi:http/outgoing-handler`. Without the key, and
    // with an empty list, it starts; each request it makes is denied.
    let (target, _target_dir) = probe_target();
    let reachable = format!("{}/label", target.url("probe"));
    for grant in ["", "allowed_outbound_hosts = []"] {
        let app = app(&format!("config = {{ x = \"1\" }}\n{grant}"));
        let host = Host::start(app.path(), &[("AMIMONO_JOB", "one")], &["caps"]);
        let url = host.url("caps");
        assert_eq!(get(&format!("{url}/config/x")).body, "1", "{grant:?}");
        let reply = get(&format!("{url}/fetch?url={reachable}"));
        assert_eq!(reply.status, 502, "{grant:?}: {reply:?}");
        assert!(
            reply.body.contains("HttpRequestDenied"),
            "{grant:?}: {reply:?}"
        );
        assert!(
            host.wait_for_log("outbound HTTP request denied", Duration::from_secs(5)),
            "{grant:?}: {}",
            host.stderr()
        );
        let logs = host.stderr();
        let line = logs
            .lines()
            .find(|l| l.contains("outbound HTTP request denied"))
            .unwrap_or_default();
        assert!(
            line.contains("component=caps") && line.contains(target.url("probe")),
            "{grant:?}: {line}"
        );
    }
    // The target itself was reachable all along.
    assert_eq!(get(&reachable).body, "probe");
}

#[test]
fn files_are_visible_only_as_granted_and_read_only_unless_rw() {
    let shared = tempfile::tempdir().unwrap();
    std::fs::write(shared.path().join("hello.txt"), "from the host").unwrap();
    let dir = shared.path().to_str().unwrap();
    // Read-only.
    let app_dir = app(&format!(
        "config = {{ x = \"1\" }}\nfiles = [{{ host = \"{dir}\", guest = \"/data\" }}]"
    ));
    let host = Host::start(app_dir.path(), &[("AMIMONO_JOB", "one")], &["caps"]);
    let url = host.url("caps");
    assert_eq!(
        get(&format!("{url}/read/data/hello.txt")).body,
        "from the host"
    );
    let write = get(&format!("{url}/write/data/new.txt?text=x"));
    assert_eq!(write.status, 403, "{write:?}");
    assert!(!shared.path().join("new.txt").exists());
    drop(host);
    // Read-write.
    let app_dir = app(&format!(
        "config = {{ x = \"1\" }}\nfiles = [{{ host = \"{dir}\", guest = \"/data\", mode = \"rw\" }}]"
    ));
    let host = Host::start(app_dir.path(), &[("AMIMONO_JOB", "one")], &["caps"]);
    let url = host.url("caps");
    assert_eq!(
        get(&format!(
            "{url}/write/data/new.txt?text=written%20by%20wasm"
        ))
        .body,
        "written"
    );
    assert_eq!(
        std::fs::read_to_string(shared.path().join("new.txt")).unwrap(),
        "written by wasm"
    );
    drop(host);
    // Not granted: nothing is visible.
    let app_dir = app("config = { x = \"1\" }");
    let host = Host::start(app_dir.path(), &[("AMIMONO_JOB", "one")], &["caps"]);
    assert_eq!(
        get(&format!("{}/read/data/hello.txt", host.url("caps"))).status,
        403
    );
}

#[test]
fn a_granted_directory_that_does_not_exist_stops_the_start_naming_the_component() {
    let scratch = tempfile::tempdir().unwrap();
    let missing = scratch.path().join("not-there");
    let app = app(&format!(
        "config = {{ x = \"1\" }}\nfiles = [{{ host = \"{}\", guest = \"/data\" }}]",
        missing.display()
    ));
    let out = run_amimono(
        &["run", app.path().to_str().unwrap()],
        &[("AMIMONO_JOB", "one")],
    );
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "component `caps` is granted the directory `{}` (`files`, guest path `/data`), which cannot be opened",
            missing.display()
        )),
        "{err}"
    );
    assert!(err.contains("[components.caps]"), "{err}");
    assert!(!missing.exists());
}

#[test]
fn sockets_reach_only_granted_addresses() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let allowed = listener.local_addr().unwrap();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = other.local_addr().unwrap();
    let app_dir = app(&format!(
        "config = {{ x = \"1\" }}\nsockets = [\"{allowed}\"]"
    ));
    let host = Host::start(app_dir.path(), &[("AMIMONO_JOB", "one")], &["caps"]);
    let url = host.url("caps");
    assert_eq!(get(&format!("{url}/connect/{allowed}")).body, "connected");
    assert_eq!(get(&format!("{url}/connect/{other}")).status, 403);
    drop(host);
    let app_dir = app("config = { x = \"1\" }");
    let host = Host::start(app_dir.path(), &[("AMIMONO_JOB", "one")], &["caps"]);
    assert_eq!(
        get(&format!("{}/connect/{allowed}", host.url("caps"))).status,
        403
    );
}
