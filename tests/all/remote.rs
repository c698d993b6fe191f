//! Calls between jobs: the wire protocol as another implementation would
//! speak it, revisions, deadlines, and what the caller sees when the callee's
//! job is gone.

use amimono_tests::{
    Host, TEST_CLUSTER_KEY, amimono, call_auth, get, hello_app, hello_bindings, hello_manifest,
    now_ms, post, request_id, rpc_call, run_amimono, temp_app, texts,
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
    // greet("x"): the string parameter is its LEB128 length then UTF-8.
    let greet = "hello:app/greeter@0.1.0#greet";
    let (status, headers, body) =
        rpc_call(&url, "greeter", &revision, greet, Some("5000"), &[1, b'x']);
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
    let (status, _, body) = rpc_call(&url, "greeter", &revision, greet, None, &[0]);
    assert_eq!((status, body), (200, vec![1, 0]));
}

/// POSTs a call to `label` with exactly `headers` (names as in the protocol)
/// and `body`, signed over what the headers say (missing ones as empty).
fn signed_post(
    base: &str,
    label: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| *k == name)
            .map_or("", |(_, v)| *v)
    };
    let auth = call_auth(
        TEST_CLUSTER_KEY,
        get("amimono-revision"),
        label,
        get("amimono-function"),
        get("amimono-deadline-ms"),
        get("amimono-caller"),
        body,
        now_ms(),
    );
    let mut all = headers.to_vec();
    all.push(("amimono-auth", &auth));
    post(&format!("{base}/amimono/v1/call/{label}"), &all, body)
}

#[test]
fn malformed_requests_get_clear_errors_naming_the_fault() {
    let dir = tempfile::tempdir().unwrap();
    let (host, url) = backend(&dir);
    let revision = revision();
    let greet = ("amimono-function", "hello:app/greeter@0.1.0#greet");
    let rev = ("amimono-revision", revision.as_str());

    let (status, _, body) = signed_post(&url, "greeter", &[greet], &[1, b'x']);
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("the `amimono-revision` header is missing"),
        "{body}"
    );

    let (status, _, body) = signed_post(&url, "greeter", &[rev], &[1, b'x']);
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("`amimono-function` header is missing"));

    let (status, _, body) = signed_post(&url, "greeter", &[rev, greet], &[7, b'x']);
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("malformed RPC request for `greeter.greet`"),
        "{body}"
    );

    let (status, _, body) = signed_post(&url, "greeter", &[rev, greet], &[1, b'x', 0xff]);
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));

    let (status, _, body) = signed_post(
        &url,
        "greeter",
        &[rev, ("amimono-function", "hello:app/greeter@0.1.0#shout")],
        &[],
    );
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains(
            "component `greeter` serves no function `hello:app/greeter@0.1.0#shout` to other jobs"
        ),
        "{body}"
    );
    // No list of what exists.
    assert!(!body.contains("greet-in"), "{body}");

    let (status, _, body) = signed_post(&url, "frontend", &[rev, greet], &[]);
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("this job does not serve component `frontend` to other jobs"),
        "{body}"
    );
    assert!(!body.contains("phrasebook"), "{body}");

    let deadline = ("amimono-deadline-ms", "soon");
    let (status, _, body) = signed_post(&url, "greeter", &[rev, greet, deadline], &[1, b'x']);
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));

    // The host kept serving.
    let (status, _, _) = signed_post(&url, "greeter", &[rev, greet], &[1, b'x']);
    assert_eq!(status, 200);
    assert!(!host.stderr().contains("panicked"));
}

#[test]
fn unauthenticated_calls_are_refused_with_401_and_learn_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (host, url) = backend(&dir);
    let revision = revision();
    let function = "hello:app/greeter@0.1.0#greet";
    let call = format!("{url}/amimono/v1/call/greeter");
    let plain = [
        ("amimono-revision", revision.as_str()),
        ("amimono-function", function),
    ];
    let refused = |headers: &[(&str, &str)], body: &[u8]| {
        let (status, answer_headers, answer) = post(&call, headers, body);
        let text = String::from_utf8_lossy(&answer).into_owned();
        assert_eq!(status, 401, "{headers:?}: {text}");
        assert_eq!(text, "unauthenticated\n");
        assert_eq!(
            header(&answer_headers, "amimono-revision"),
            None,
            "{answer_headers:?}"
        );
    };
    // No MAC at all (what `curl` sends).
    refused(&plain, &[1, b'x']);
    // Signed with another key.
    let sign = |key: &str, fields_function: &str, timestamp: u64, body: &[u8]| {
        call_auth(
            key,
            &revision,
            "greeter",
            fields_function,
            "",
            "",
            body,
            timestamp,
        )
    };
    let other_key = sign(
        "another-deployment-key-0123456789abcdef",
        function,
        now_ms(),
        &[1, b'x'],
    );
    refused(
        &[plain[0], plain[1], ("amimono-auth", &other_key)],
        &[1, b'x'],
    );
    // Signed for another function than the one asked for.
    let other_function = sign(
        TEST_CLUSTER_KEY,
        "hello:app/greeter@0.1.0#greet-in",
        now_ms(),
        &[1, b'x'],
    );
    refused(
        &[plain[0], plain[1], ("amimono-auth", &other_function)],
        &[1, b'x'],
    );
    // Stale: signed a minute ago.
    let stale = sign(TEST_CLUSTER_KEY, function, now_ms() - 60_000, &[1, b'x']);
    refused(&[plain[0], plain[1], ("amimono-auth", &stale)], &[1, b'x']);
    // A body other than the signed one.
    let for_x = sign(TEST_CLUSTER_KEY, function, now_ms(), &[1, b'x']);
    refused(&[plain[0], plain[1], ("amimono-auth", &for_x)], &[1, b'y']);
    // Garbage.
    refused(
        &[plain[0], plain[1], ("amimono-auth", "v1.1.2.3.4")],
        &[1, b'x'],
    );
    // A good call passes once; replayed, it is refused.
    let good = sign(TEST_CLUSTER_KEY, function, now_ms(), &[1, b'x']);
    let with_good = [plain[0], plain[1], ("amimono-auth", good.as_str())];
    assert_eq!(post(&call, &with_good, &[1, b'x']).0, 200);
    refused(&with_good, &[1, b'x']);
    // Nothing is revealed off the call path either.
    let (status, headers, body) = post(&format!("{url}/"), &[], &[]);
    assert_eq!(
        (status, String::from_utf8_lossy(&body).as_ref()),
        (404, "not found\n")
    );
    assert_eq!(header(&headers, "amimono-revision"), None);
    assert!(host.wait_for_log("refused an unauthenticated call", Duration::from_secs(5)));
    assert!(
        !host.stderr().contains(TEST_CLUSTER_KEY),
        "the key must never be logged"
    );
}

#[test]
fn only_functions_other_jobs_import_are_callable() {
    // phrasebook is imported only by greeter, in the same job: even a signed
    // call from outside cannot reach it.
    let dir = tempfile::tempdir().unwrap();
    let (_host, url) = backend(&dir);
    let revision = revision();
    let (status, _, body) = rpc_call(
        &url,
        "phrasebook",
        &revision,
        "hello:app/phrasebook@0.1.0#phrase",
        None,
        &[2, b'e', b'n'],
    );
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("this job does not serve component `phrasebook` to other jobs"),
        "{body}"
    );
}

#[test]
fn a_job_that_serves_or_makes_calls_between_jobs_needs_a_cluster_key() {
    let dir = tempfile::tempdir().unwrap();
    let (bindings, _, _) = hello_bindings(dir.path());
    let mut command = amimono();
    command
        .args(["run", "examples/hello"])
        .env("AMIMONO_JOB", "backend")
        .env("AMIMONO_BINDINGS", &bindings)
        .env_remove("AMIMONO_CLUSTER_KEY");
    let out = command.output().unwrap();
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no cluster key is set: set AMIMONO_CLUSTER_KEY"),
        "{err}"
    );
    // Too short a key is refused too.
    let out = amimono()
        .args(["run", "examples/hello"])
        .env("AMIMONO_JOB", "backend")
        .env("AMIMONO_BINDINGS", &bindings)
        .env("AMIMONO_CLUSTER_KEY", "short")
        .output()
        .unwrap();
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("too short"), "{err}");
    // `amimono cluster-key` prints a usable one, and the key is never in
    // `_config`.
    let out = run_amimono(&["cluster-key"], &[]);
    let key = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(key.len(), 64, "{key}");
    let config = run_amimono(&["run", "examples/hello"], &[("AMIMONO_JOB", "_config")]);
    assert!(!String::from_utf8_lossy(&config.stdout).contains(TEST_CLUSTER_KEY));
}

#[test]
fn jobs_with_different_keys_cannot_call_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let (bindings, web_port, _) = hello_bindings(dir.path());
    let bindings = bindings.to_str().unwrap();
    let backend = Host::start(
        &hello_app(),
        &[
            ("AMIMONO_JOB", "backend"),
            ("AMIMONO_BINDINGS", bindings),
            (
                "AMIMONO_CLUSTER_KEY",
                "the-backends-own-key-0123456789abcdef",
            ),
        ],
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
    let id = request_id(&reply.body);
    assert!(backend.wait_for_log("refused an unauthenticated call", Duration::from_secs(5)));
    assert!(web.wait_for_log(&format!("request_id={id}"), Duration::from_secs(5)));
    assert!(
        web.stderr()
            .contains("every job of a deployment needs the same cluster key"),
        "{}",
        web.stderr()
    );
}

#[test]
fn a_caller_of_another_revision_is_refused_with_both_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let (host, url) = backend(&dir);
    let ours = revision();
    let (status, headers, body) = rpc_call(
        &url,
        "greeter",
        "0123456789abcdef",
        "hello:app/greeter@0.1.0#greet",
        None,
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

/// The log record of `host` that carries request id `id`.
fn log_line_of(host: &Host, id: &str) -> String {
    host.log_record(&format!("request_id={id}"))
}

#[test]
fn hosts_of_different_revisions_never_talk() {
    // The backend runs a different revision (its manifest differs by a
    // comment); the web job's call is refused. The client gets a generic
    // 500 with a request id; the log line with that id names both revisions.
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
        !reply.body.contains(&ours) && !reply.body.contains("127.0.0.1"),
        "{reply:?}"
    );
    let line = log_line_of(&web, &request_id(&reply.body));
    assert!(
        line.contains("remote call to greeter.greet-in at http://127.0.0.1:"),
        "{line}"
    );
    assert!(
        line.contains(&format!(
            "refused because revisions differ (caller {ours}, callee "
        )),
        "{line}"
    );
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
    assert!(!reply.body.contains("127.0.0.1"), "{reply:?}");
    let line = log_line_of(&web, &request_id(&reply.body));
    assert!(
        line.contains(&format!(
            "remote call to greeter.greet-in at http://127.0.0.1:{backend_port} failed"
        )),
        "{line}"
    );
    assert!(
        line.contains("the callee may or may not have run"),
        "{line}"
    );
    // The web job keeps serving what does not need the backend.
    let about = get(&format!("http://127.0.0.1:{web_port}/about"));
    assert_eq!(about.status, 200);
}

/// The probe (an rpc component) in job `one`, and in job `web` an HTTP
/// component that imports its interface (so other jobs may call it).
pub const PROBE_RPC_APP: &str = "[app]\nname = \"probe\"\n\n[components.probe]\nbinding = \"rpc\"\nsource = \"{wasm:fixture_trap_http}\"\n\n[components.edge]\nbinding = \"http\"\nsource = \"{wasm:fixture_edge_http}\"\n\n[jobs.one]\ncomponents = [\"probe\"]\n\n[jobs.web]\ncomponents = [\"edge\"]\n";

fn probe_backend() -> (amimono_tests::RpcBackend, String, String) {
    let backend = amimono_tests::RpcBackend::start(PROBE_RPC_APP, "one");
    let (url, revision) = (backend.url.clone(), backend.revision.clone());
    (backend, url, revision)
}

#[test]
fn the_callers_deadline_stops_a_busy_callee() {
    let (backend, call, revision) = probe_backend();
    let host = &backend.host;
    let started = Instant::now();
    // spin(10000): ten seconds of CPU, but the caller only waits 200 ms.
    let spin = "fixtures:probe/control@0.1.0#spin";
    let (status, _, body) = rpc_call(&call, "probe", &revision, spin, Some("200"), &[0x90, 0x4e]);
    let elapsed = started.elapsed();
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 504, "{body}");
    assert!(
        body.contains("did not finish within its deadline of 200 ms"),
        "{body}"
    );
    // Answered before the callee's 10 s spin was up (how soon after the
    // 200 ms depends on the machine's load: no tighter bound).
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert!(host.wait_for_log(
        "remote call stopped at its deadline",
        Duration::from_secs(5)
    ));
}

#[test]
fn a_trapping_callee_answers_500_and_keeps_serving() {
    let (backend, call, revision) = probe_backend();
    let host = &backend.host;
    let boom = "fixtures:probe/control@0.1.0#boom";
    let (status, _, body) = rpc_call(
        &call,
        "probe",
        &revision,
        boom,
        None,
        &[6, b'k', b'a', b'b', b'o', b'o', b'm'],
    );
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("component `probe` failed in `boom`"),
        "{body}"
    );
    assert!(host.wait_for_log("remote call failed", Duration::from_secs(5)));
    let whoami = "fixtures:probe/control@0.1.0#whoami";
    let (status, _, body) = rpc_call(&call, "probe", &revision, whoami, None, &[]);
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
        let line = log_line_of(&web, &request_id(&reply.body));
        assert!(line.contains("may or may not have run"), "{line}");
        let retries = web
            .stderr()
            .matches("retrying idempotent remote call")
            .count();
        assert_eq!(retries, if idempotent { 2 } else { 0 }, "{}", web.stderr());
    }
}
