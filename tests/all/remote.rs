//! Calls between jobs: the wire protocol as another implementation would
//! speak it, revisions, deadlines, and what the caller sees when the callee's
//! job is gone.

use amimono_tests::{
    Host, free_port, get, hello_app, hello_bindings, hello_manifest, post, run_amimono, temp_app,
    texts,
};
use std::time::{Duration, Instant};

/// The backend job of hello, alone, with a bindings file; its rpc URL.
fn backend(dir: &tempfile::TempDir) -> (Host, String) {
    let (bindings, _, port) = hello_bindings(dir.path());
    let host = Host::start(
        &hello_app(),
        &[
            ("AMIMONO_JOB", "backend"),
            ("AMIMONO_BINDINGS", bindings.to_str().unwrap()),
        ],
        &[],
    );
    host.wait_running();
    (host, format!("http://127.0.0.1:{port}"))
}

fn revision() -> String {
    let out = run_amimono(&["run", "examples/hello"], &[("AMIMONO_JOB", "_config")]);
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    config["revision"].as_str().unwrap().to_string()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[test]
fn a_call_in_the_documented_wire_format_gets_the_documented_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (_host, url) = backend(&dir);
    let revision = revision();
    let call = format!("{url}/amimono/v1/call/greeter");
    // greet("x"): the string parameter is its LEB128 length then UTF-8.
    let (status, headers, body) = post(
        &call,
        &[
            ("amimono-revision", &revision),
            ("amimono-function", "hello:app/greeter@0.1.0#greet"),
            ("amimono-deadline-ms", "5000"),
            ("content-type", "application/vnd.amimono.values"),
        ],
        &[1, b'x'],
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        header(&headers, "amimono-revision"),
        Some(revision.as_str())
    );
    // ok(greeting { name: "x", message: "Hello, x!", language: "en" }).
    let mut expected = vec![0, 1, b'x', 9];
    expected.extend_from_slice(b"Hello, x!");
    expected.extend_from_slice(&[2, b'e', b'n']);
    assert_eq!(body, expected);
    // err(empty-name): result case 1, variant case 0 without payload.
    let (status, _, body) = post(
        &call,
        &[
            ("amimono-revision", &revision),
            ("amimono-function", "hello:app/greeter@0.1.0#greet"),
        ],
        &[0],
    );
    assert_eq!((status, body), (200, vec![1, 0]));
}

#[test]
fn malformed_requests_get_clear_errors_naming_the_fault() {
    let dir = tempfile::tempdir().unwrap();
    let (host, url) = backend(&dir);
    let revision = revision();
    let call = format!("{url}/amimono/v1/call/greeter");
    let greet = ("amimono-function", "hello:app/greeter@0.1.0#greet");
    let rev = ("amimono-revision", revision.as_str());

    let (status, _, body) = post(&call, &[greet], &[1, b'x']);
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("the `amimono-revision` header is missing"),
        "{body}"
    );

    let (status, _, body) = post(&call, &[rev], &[1, b'x']);
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("`amimono-function` header is missing"));

    let (status, _, body) = post(&call, &[rev, greet], &[7, b'x']);
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("malformed RPC request for `greeter.greet`"),
        "{body}"
    );

    let (status, _, body) = post(&call, &[rev, greet], &[1, b'x', 0xff]);
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));

    let (status, _, body) = post(
        &call,
        &[rev, ("amimono-function", "hello:app/greeter@0.1.0#shout")],
        &[],
    );
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("component `greeter` exports no function `hello:app/greeter@0.1.0#shout`"),
        "{body}"
    );
    assert!(body.contains("hello:app/greeter@0.1.0#greet-in"), "{body}");

    let (status, _, body) = post(
        &format!("{url}/amimono/v1/call/frontend"),
        &[rev, greet],
        &[],
    );
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains(
            "this job does not serve component `frontend` (it serves: greeter, phrasebook)"
        ),
        "{body}"
    );

    let reply = get(&call);
    assert_eq!(reply.status, 405, "{reply:?}");
    let reply = get(&format!("{url}/"));
    assert_eq!(reply.status, 404, "{reply:?}");

    // The host kept serving.
    let (status, _, _) = post(&call, &[rev, greet], &[1, b'x']);
    assert_eq!(status, 200);
    assert!(!host.stderr().contains("panicked"));
}

#[test]
fn a_caller_of_another_revision_is_refused_with_both_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let (host, url) = backend(&dir);
    let ours = revision();
    let (status, headers, body) = post(
        &format!("{url}/amimono/v1/call/greeter"),
        &[
            ("amimono-revision", "0123456789abcdef"),
            ("amimono-function", "hello:app/greeter@0.1.0#greet"),
        ],
        &[1, b'x'],
    );
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 409, "{body}");
    assert_eq!(header(&headers, "amimono-revision"), Some(ours.as_str()));
    assert!(
        body.contains("0123456789abcdef") && body.contains(&ours),
        "{body}"
    );
    assert!(host.wait_for_log(
        "refused a call from another revision",
        Duration::from_secs(5)
    ));
}

#[test]
fn hosts_of_different_revisions_never_talk() {
    // The backend runs a different revision (its manifest differs by a
    // comment); the web job's call is refused and its error names both.
    let dir = tempfile::tempdir().unwrap();
    let (bindings, web_port, _) = hello_bindings(dir.path());
    let bindings = bindings.to_str().unwrap();
    let other = temp_app(&format!("# another revision\n{}", hello_manifest()));
    let backend = Host::start(
        other.path(),
        &[("AMIMONO_JOB", "backend"), ("AMIMONO_BINDINGS", bindings)],
        &[],
    );
    backend.wait_running();
    let web = Host::start(
        &hello_app(),
        &[("AMIMONO_JOB", "web"), ("AMIMONO_BINDINGS", bindings)],
        &["frontend"],
    );
    let reply = get(&format!("http://127.0.0.1:{web_port}/hello/world"));
    assert_eq!(reply.status, 500, "{reply:?}");
    let ours = revision();
    assert!(
        reply
            .body
            .contains("remote call to greeter.greet-in at http://127.0.0.1:"),
        "{reply:?}"
    );
    assert!(
        reply.body.contains(&format!(
            "refused because revisions differ (caller {ours}, callee "
        )),
        "{reply:?}"
    );
    assert!(web.wait_for_log("request failed", Duration::from_secs(5)));
}

#[test]
fn a_pinned_bindings_file_refuses_another_revision() {
    let dir = tempfile::tempdir().unwrap();
    let (bindings, _, _) = hello_bindings(dir.path());
    let text = std::fs::read_to_string(&bindings).unwrap();
    std::fs::write(
        &bindings,
        format!("revision = \"feedfacefeedface\"\n{text}"),
    )
    .unwrap();
    let out = run_amimono(
        &["run", "examples/hello"],
        &[
            ("AMIMONO_JOB", "backend"),
            ("AMIMONO_BINDINGS", bindings.to_str().unwrap()),
        ],
    );
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("is pinned to revision feedfacefeedface, but this app is revision"),
        "{err}"
    );
    // Pinned to the right revision, it starts.
    std::fs::write(&bindings, format!("revision = \"{}\"\n{text}", revision())).unwrap();
    let host = Host::start(
        &hello_app(),
        &[
            ("AMIMONO_JOB", "backend"),
            ("AMIMONO_BINDINGS", bindings.to_str().unwrap()),
        ],
        &[],
    );
    host.wait_running();
}

#[test]
fn when_the_callee_job_is_down_the_caller_says_which_call_failed_and_that_it_may_have_run() {
    let dir = tempfile::tempdir().unwrap();
    let (bindings, web_port, backend_port) = hello_bindings(dir.path());
    // Only the web job runs: nothing listens on the backend's port.
    let web = Host::start(
        &hello_app(),
        &[
            ("AMIMONO_JOB", "web"),
            ("AMIMONO_BINDINGS", bindings.to_str().unwrap()),
        ],
        &["frontend"],
    );
    let reply = get(&format!("http://127.0.0.1:{web_port}/hello/world"));
    assert_eq!(reply.status, 500, "{reply:?}");
    assert!(
        reply.body.contains(&format!(
            "remote call to greeter.greet-in at http://127.0.0.1:{backend_port} failed"
        )),
        "{reply:?}"
    );
    assert!(
        reply.body.contains("the callee may or may not have run"),
        "{reply:?}"
    );
    assert!(web.wait_for_log("request failed", Duration::from_secs(5)));
    // The web job keeps serving what does not need the backend.
    let about = get(&format!("http://127.0.0.1:{web_port}/about"));
    assert_eq!(about.status, 200);
}

const PROBE_RPC_APP: &str = "[app]\nname = \"probe\"\n\n[components.probe]\nbinding = \"rpc\"\nsource = \"{wasm:fixture_trap_http}\"\n\n[jobs.one]\ncomponents = [\"probe\"]\n";

fn probe_backend(dir: &tempfile::TempDir) -> (Host, String, String) {
    let app = temp_app(PROBE_RPC_APP);
    let port = free_port();
    let bindings = dir.path().join("b.toml");
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
            ("AMIMONO_JOB", "one"),
            ("AMIMONO_BINDINGS", bindings.to_str().unwrap()),
        ],
        &[],
    );
    host.wait_running();
    std::mem::forget(app);
    (
        host,
        format!("http://127.0.0.1:{port}/amimono/v1/call/probe"),
        revision,
    )
}

#[test]
fn the_callers_deadline_stops_a_busy_callee() {
    let dir = tempfile::tempdir().unwrap();
    let (host, call, revision) = probe_backend(&dir);
    let started = Instant::now();
    // spin(10000): ten seconds of CPU, but the caller only waits 200 ms.
    let (status, _, body) = post(
        &call,
        &[
            ("amimono-revision", &revision),
            ("amimono-function", "fixtures:probe/control@0.1.0#spin"),
            ("amimono-deadline-ms", "200"),
        ],
        &[0x90, 0x4e],
    );
    let elapsed = started.elapsed();
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 504, "{body}");
    assert!(
        body.contains("did not finish within the caller's deadline of 200 ms"),
        "{body}"
    );
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    assert!(host.wait_for_log(
        "remote call stopped at its deadline",
        Duration::from_secs(5)
    ));
}

#[test]
fn a_trapping_callee_answers_500_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (host, call, revision) = probe_backend(&dir);
    let boom = ("amimono-function", "fixtures:probe/control@0.1.0#boom");
    let rev = ("amimono-revision", revision.as_str());
    let (status, _, body) = post(
        &call,
        &[rev, boom],
        &[6, b'k', b'a', b'b', b'o', b'o', b'm'],
    );
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("component `probe` failed in `boom`"),
        "{body}"
    );
    assert!(host.wait_for_log("remote call failed", Duration::from_secs(5)));
    let (status, _, body) = post(
        &call,
        &[
            rev,
            ("amimono-function", "fixtures:probe/control@0.1.0#whoami"),
        ],
        &[],
    );
    assert_eq!((status, body), (200, [&[5u8][..], b"probe"].concat()));
}

const RESOURCE_APP: &str = "[app]\nname = \"res\"\n\n[components.user]\nbinding = \"rpc\"\nsource = \"{wasm:fixture_resource_user}\"\n\n[components.provider]\nbinding = \"rpc\"\nsource = \"{wasm:fixture_resource_provider}\"\n\n[jobs.a]\ncomponents = [\"user\"]\n\n[jobs.b]\ncomponents = [\"provider\"]\n";

#[test]
fn an_interface_with_resources_links_in_one_job_but_cannot_be_split() {
    let app = temp_app(RESOURCE_APP);
    let dir = app.path().to_str().unwrap();
    // Colocated (as `amimono call` runs it), resources cross fine.
    let out = run_amimono(&["call", dir, "user", "run"], &[]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.trim(), "6");
    // Split across jobs, the host refuses at start and at build time,
    // naming the interface and the function.
    let expected = "component `user` (job `a`) imports `fixtures:res/store@0.1.0` from `provider` (job `b`), but function `[constructor]cell` of that interface takes or returns a resource, which cannot cross processes";
    let out = run_amimono(&["run", dir], &[("AMIMONO_JOB", "a")]);
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(expected), "{err}");
    let bundle = app.path().join("res.amimono");
    let out = run_amimono(&["build", dir, "--out", bundle.to_str().unwrap()], &[]);
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(expected), "{err}");
    assert!(!bundle.exists());
}

#[test]
fn only_functions_marked_idempotent_are_retried() {
    // The backend is down. greet-in is marked idempotent in one app and not
    // in the other: only the first retries (visible in the debug log).
    for idempotent in [true, false] {
        let manifest = hello_manifest().replace(
            "[components.greeter]\n",
            if idempotent {
                "[components.greeter]\nidempotent = [\"greet-in\"]\n"
            } else {
                "[components.greeter]\n"
            },
        );
        let app = temp_app(&manifest);
        let dir = tempfile::tempdir().unwrap();
        let (bindings, web_port, _) = hello_bindings(dir.path());
        let web = Host::start(
            app.path(),
            &[
                ("AMIMONO_JOB", "web"),
                ("AMIMONO_BINDINGS", bindings.to_str().unwrap()),
                ("RUST_LOG", "info,amimono::remote=debug"),
            ],
            &["frontend"],
        );
        let reply = get(&format!("http://127.0.0.1:{web_port}/hello/world"));
        assert_eq!(reply.status, 500, "{reply:?}");
        assert!(reply.body.contains("may or may not have run"), "{reply:?}");
        assert!(web.wait_for_log("request failed", Duration::from_secs(5)));
        let retries = web
            .stderr()
            .matches("retrying idempotent remote call")
            .count();
        assert_eq!(retries, if idempotent { 2 } else { 0 }, "{}", web.stderr());
    }
}
