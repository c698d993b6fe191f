//! The embedding API, exercised the way an embedder uses it: the
//! `embed-hello` binary as a real process (both routes, from the app
//! directory and from a bundle, Ctrl-C), and in this process the tower
//! services served by plain hyper on loopback (a trapping guest, calls from
//! another job's real `amimono run` process) and native calls that return
//! `err(…)`. Guests are built beforehand by `cargo xtask build`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use amimono::{Application, CallError, ClusterKey, Job};
use amimono_tests::otlp::{ERROR, INTERNAL, Received, Receiver, SERVER};
use amimono_tests::{Host, TEST_CLUSTER_KEY, free_port, get, hello_app, root, temp_app};
use embed_hello::{GreetError, Greeting};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wasmtime::component::Val;

/// The `embed-hello` binary built by `cargo xtask build`.
fn embed_bin() -> std::path::PathBuf {
    let path = root().join("target/release/embed-hello");
    assert!(
        path.exists(),
        "{} does not exist: run `cargo xtask build` first",
        path.display()
    );
    path
}

/// `embed-hello <args>` on a free port, waited for until it listens.
struct Embedded {
    child: Child,
    url: String,
    _data: tempfile::TempDir,
}

impl Embedded {
    fn start(args: &[&str]) -> Embedded {
        Embedded::start_with(args, &[])
    }

    /// [`Embedded::start`] with `env` besides.
    fn start_with(args: &[&str], env: &[(&str, &str)]) -> Embedded {
        let port = free_port();
        let data = tempfile::tempdir().unwrap();
        let mut child = Command::new(embed_bin())
            .current_dir(root())
            .args(args)
            .args(["--port", &port.to_string(), "--data-dir"])
            .arg(data.path())
            .env("AMIMONO_CACHE_DIR", root().join("target/amimono-cache"))
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        let line = receiver
            .recv_timeout(Duration::from_secs(120))
            .expect("embed-hello did not print its address");
        let url = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_string();
        assert_eq!(url, format!("http://127.0.0.1:{port}"));
        Embedded {
            child,
            url,
            _data: data,
        }
    }

    /// Sends SIGINT (Ctrl-C); its exit status.
    fn interrupt(&mut self) -> std::process::ExitStatus {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("embed-hello did not stop within 20 s of Ctrl-C");
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn both_routes_answer(embedded: &Embedded) {
    let page = get(&format!("{}/app/hello/world", embedded.url));
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.starts_with("Hello, world!"), "{page:?}");
    let native = get(&format!("{}/native/greet/world", embedded.url));
    assert_eq!(
        (native.status, native.body.as_str()),
        (200, "Hello, world!\n")
    );
    // The greeter's `err(…)` is the native handler's 400, not a failure.
    let refused = get(&format!("{}/native/greet/%20", embedded.url));
    assert_eq!(
        (refused.status, refused.body.as_str()),
        (400, "the name is empty\n")
    );
    // Routes the service does not have are the router's, not the component's.
    assert_eq!(get(&format!("{}/elsewhere", embedded.url)).status, 404);
}

#[test]
fn embed_hello_serves_the_component_and_the_native_route_and_stops_on_ctrl_c() {
    let mut embedded = Embedded::start(&["--app", "examples/hello"]);
    both_routes_answer(&embedded);
    let status = embedded.interrupt();
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// An embedder's job exports traces as `amimono run` does: a request
/// through the tower service is a server span, and a native typed call is a
/// span of its own (internal, named after the callee and function), sent to
/// a real OTLP/HTTP receiver that decodes the protobuf. The embedder sends
/// the last batch before it exits (`Job::export_traces`): with the default
/// 5 s batch delay, the spans are there as soon as the process is gone.
#[test]
fn an_embedders_requests_and_native_calls_are_spans_exported_before_it_exits() {
    let receiver = Receiver::start();
    let mut embedded = Embedded::start_with(
        &["--app", "examples/hello"],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.as_str())],
    );
    both_routes_answer(&embedded);
    let status = embedded.interrupt();
    assert_eq!(status.code(), Some(0), "{status:?}");
    let spans = receiver.received();
    let is = |span: &Received, kind: i32, component: &str| {
        span.kind == kind && span.component.as_deref() == Some(component)
    };
    assert!(
        spans.iter().any(|s| is(s, SERVER, "frontend")),
        "no span of the page: {spans:#?}"
    );
    let native: Vec<_> = spans
        .iter()
        .filter(|s| is(s, INTERNAL, "greeter"))
        .collect();
    // `both_routes_answer` calls `greet` twice natively: once answered, once
    // `err(…)` (a value, not a failure).
    assert_eq!(native.len(), 2, "{spans:#?}");
    for span in native {
        assert_eq!(span.name, "greeter.greet", "{span:#?}");
        assert!(span.parent_span_id.is_empty(), "no caller span: {span:#?}");
        assert_ne!(span.status, ERROR, "{span:#?}");
    }
}

#[test]
fn embed_hello_served_by_axum_serve_answers_the_same_and_stops_on_ctrl_c() {
    let mut embedded = Embedded::start(&["--app", "examples/hello", "--server", "axum"]);
    both_routes_answer(&embedded);
    let status = embedded.interrupt();
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn embed_hello_runs_from_the_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("hello.amimono");
    let out = amimono_tests::run_amimono(
        &[
            "build",
            hello_app().to_str().unwrap(),
            "--out",
            bundle.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    let mut embedded = Embedded::start(&["--bundle", bundle.to_str().unwrap()]);
    both_routes_answer(&embedded);
    assert_eq!(embedded.interrupt().code(), Some(0));
}

/// A multi-threaded runtime for the in-process tests (the client side is
/// the harness's blocking HTTP client, on the test thread).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Serves `service` with plain hyper (`TowerToHyperService`) on loopback
/// port `port` (0: one the system picks); its URL.
fn serve_on_port<S, B>(runtime: &tokio::runtime::Runtime, port: u16, service: S) -> String
where
    S: tower_service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<B>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    runtime.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let service = hyper_util::service::TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    url
}

/// The probe app with tight connection limits for the whole app.
const LIMITED_PROBE_APP: &str = "[app]\nname = \"probe\"\n\n[limits]\nheader_read_timeout_ms = 300\nmax_headers = 8\n\n[components.probe]\nbinding = \"http\"\nsource = \"{wasm:fixture_trap_http}\"\n\n[jobs.one]\ncomponents = [\"probe\"]\n";

#[test]
fn a_router_served_by_job_serve_gets_the_apps_connection_limits_and_drains() {
    use amimono::{Listeners, Stopped};
    let app = temp_app(LIMITED_PROBE_APP);
    let data = tempfile::tempdir().unwrap();
    let runtime = runtime();
    let job: Job = runtime
        .block_on(
            Application::open(app.path())
                .unwrap()
                .job("one")
                .data_dir(data.path())
                .prepare(),
        )
        .unwrap();
    let job = std::sync::Arc::new(job);
    let router = axum::Router::new()
        .nest_service("/app", job.http_service("probe").unwrap())
        .route("/native", axum::routing::get(|| async { "native\n" }));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let address = listener.local_addr().unwrap();
    let url = format!("http://{address}");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = runtime.spawn({
        let job = job.clone();
        async move {
            let listeners = Listeners::new().service(listener, router);
            job.serve(listeners, async {
                let _ = stopped.await;
            })
            .await
        }
    });
    let page = get(&format!("{url}/app/"));
    assert_eq!((page.status, page.body.as_str()), (200, "ok\n"));
    let native = get(&format!("{url}/native"));
    assert_eq!((native.status, native.body.as_str()), (200, "native\n"));
    // The app's `max_headers` holds for the native route too: the accept
    // loop refuses before the router sees the request.
    let many: Vec<(String, String)> = (0..12)
        .map(|i| (format!("x-h{i}"), "1".to_string()))
        .collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let refused = amimono_tests::request("GET", &format!("{url}/native"), &many, b"");
    assert_eq!(refused.status, 431, "{refused:?}");
    // A client that sends nothing is closed at the app's header-read
    // timeout (300 ms; the default is 5 s).
    let mut silent = std::net::TcpStream::connect(address).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut byte = [0u8; 1];
    let read = std::io::Read::read(&mut silent, &mut byte);
    assert!(
        matches!(read, Ok(0))
            || matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "the silent connection was not closed within 3 s: {read:?}"
    );
    // Shutdown: the job drains (nothing in flight) and the listener closes.
    stop.send(()).unwrap();
    let outcome = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(20), serving).await })
        .expect("Job::serve did not return within 20 s of shutdown")
        .unwrap()
        .unwrap();
    assert_eq!(outcome, Stopped::Drained);
    assert!(
        std::net::TcpStream::connect(address).is_err(),
        "the listener still accepts after the drain"
    );
}

const PROBE_APP: &str = "[app]\nname = \"probe\"\n\n[components.probe]\nbinding = \"http\"\nsource = \"{wasm:fixture_trap_http}\"\n\n[jobs.one]\ncomponents = [\"probe\"]\n";

#[test]
fn a_trap_through_the_tower_service_is_a_generic_500_and_the_next_request_is_fine() {
    let app = temp_app(PROBE_APP);
    let data = tempfile::tempdir().unwrap();
    let runtime = runtime();
    let job: Job = runtime
        .block_on(
            Application::open(app.path())
                .unwrap()
                .job("one")
                .data_dir(data.path())
                .prepare(),
        )
        .unwrap();
    let service = runtime
        .block_on(async { job.http_service("probe") })
        .unwrap();
    let url = serve_on_port(&runtime, 0, service);
    assert_eq!(get(&format!("{url}/")).status, 200);
    let trapped = get(&format!("{url}/trap"));
    assert_eq!(trapped.status, 500, "{trapped:?}");
    assert!(trapped.body.contains("request id"), "{trapped:?}");
    assert!(
        !trapped.body.contains("probe") && !trapped.body.contains("panicked"),
        "the client learns nothing internal: {trapped:?}"
    );
    for _ in 0..3 {
        let reply = get(&format!("{url}/"));
        assert_eq!((reply.status, reply.body.as_str()), (200, "ok\n"));
    }
    // A component the job does not serve over HTTP is an error naming it.
    let e = job.http_service("nope").unwrap_err().to_string();
    assert!(
        e.contains("no HTTP component `nope`") && e.contains("probe"),
        "{e}"
    );
}

#[test]
fn native_calls_return_err_values_and_report_bad_calls_by_name() {
    let data = tempfile::tempdir().unwrap();
    let runtime = runtime();
    let job = runtime
        .block_on(
            Application::open(hello_app())
                .unwrap()
                .local()
                .data_dir(data.path())
                .prepare(),
        )
        .unwrap();
    runtime.block_on(async {
        let greet = embed_hello::greet_function(&job).await.unwrap();
        let (greeting,) = greet.call(("world".to_string(),)).await.unwrap();
        assert_eq!(
            greeting,
            Ok(Greeting {
                name: "world".into(),
                message: "Hello, world!".into(),
                language: "en".into()
            })
        );
        let (refused,) = greet.call((" ".to_string(),)).await.unwrap();
        assert_eq!(refused, Err(GreetError::EmptyName));
        // One instance kept for many calls.
        let mut instance = greet.instance().await.unwrap();
        for name in ["a", "b", "c"] {
            let (greeting,) = instance.call((name.to_string(),)).await.unwrap();
            assert_eq!(greeting.unwrap().message, format!("Hello, {name}!"));
        }
        // The untyped form, with wasmtime values.
        let results = job
            .call(
                "greeter",
                "greet-in",
                &[
                    Val::String("monde".into()),
                    Val::Option(Some(Box::new(Val::String("xx".into())))),
                ],
            )
            .await
            .unwrap();
        let [Val::Result(Err(Some(error)))] = results.as_slice() else {
            panic!("expected err(…): {results:?}");
        };
        assert_eq!(
            **error,
            Val::Variant(
                "unknown-language".into(),
                Some(Box::new(Val::String("xx".into())))
            )
        );
        // Wrong Rust types, unknown functions and components: errors that say so.
        let wrong = job
            .typed_call::<(u32,), (String,)>("greeter", "greet")
            .await
            .err()
            .unwrap();
        assert!(matches!(wrong, CallError::WrongTypes { .. }), "{wrong}");
        let unknown = job.call("greeter", "nope", &[]).await.unwrap_err();
        assert!(
            matches!(unknown, CallError::UnknownFunction { .. })
                && unknown.to_string().contains("greet-in"),
            "{unknown}"
        );
        let missing = job.call("nobody", "greet", &[]).await.unwrap_err();
        assert!(
            matches!(missing, CallError::UnknownComponent { .. }),
            "{missing}"
        );
        let count = job.call("greeter", "greet", &[]).await.unwrap_err();
        assert!(matches!(count, CallError::BadArguments { .. }), "{count}");
    });
}

#[test]
fn another_jobs_process_calls_the_rpc_service_on_the_embedders_listener() {
    let dir = tempfile::tempdir().unwrap();
    let (bindings, _web, backend) = amimono_tests::hello_bindings(dir.path());
    let runtime = runtime();
    let application = Application::open(hello_app()).unwrap();
    let job = runtime
        .block_on(
            application
                .job("backend")
                .bindings(application.load_bindings(&bindings).unwrap())
                .cluster_key(ClusterKey::from_bytes(TEST_CLUSTER_KEY.as_bytes()).unwrap())
                .data_dir(dir.path().join("data"))
                .prepare(),
        )
        .unwrap();
    assert_eq!(job.rpc_components(), ["greeter"]);
    let service = runtime.block_on(async { job.rpc_service() }).unwrap();
    serve_on_port(&runtime, backend, service);
    // The web job is a real `amimono run` process: its calls to the
    // greeter cross to this process, signed with the cluster key.
    let web = Host::start(
        &hello_app(),
        &[
            ("AMIMONO_JOB", "web"),
            ("AMIMONO_BINDINGS", bindings.to_str().unwrap()),
        ],
        &["frontend"],
    );
    let page = get(&format!("{}/hello/world", web.url("frontend")));
    assert_eq!(page.status, 200, "{page:?} {}", web.stderr());
    assert!(page.body.starts_with("Hello, world!"), "{page:?}");
    // Unsigned calls are refused here too.
    let unsigned = amimono_tests::request(
        "POST",
        &format!("http://127.0.0.1:{backend}/amimono/v1/call/greeter"),
        &[],
        b"",
    );
    assert_eq!(unsigned.status, 401, "{unsigned:?}");
}

#[test]
fn errors_from_opening_and_preparing_are_matched_by_their_root_types() {
    let data = tempfile::tempdir().unwrap();
    let runtime = runtime();
    let app = Application::open(hello_app()).unwrap();
    let unknown_job = runtime
        .block_on(app.job("nope").data_dir(data.path()).prepare())
        .err()
        .unwrap();
    assert!(
        unknown_job.downcast_ref::<amimono::UnknownJob>().is_some(),
        "{unknown_job:#}"
    );
    let unknown_layout = Application::open(hello_app())
        .unwrap()
        .with_layout("nope")
        .err()
        .unwrap();
    assert!(
        unknown_layout
            .downcast_ref::<amimono::UnknownLayout>()
            .is_some(),
        "{unknown_layout:#}"
    );
    let with_secret = temp_app(&PROBE_APP.replace(
        "binding = \"http\"\n",
        "binding = \"http\"\nsecrets = [\"embed-test-token\"]\n",
    ));
    let missing_secret = runtime
        .block_on(
            Application::open(with_secret.path())
                .unwrap()
                .job("one")
                .data_dir(data.path())
                .secrets(amimono::SecretSource::default())
                .prepare(),
        )
        .err()
        .unwrap();
    assert!(
        matches!(
            missing_secret.downcast_ref::<amimono::CapabilityError>(),
            Some(amimono::CapabilityError::MissingSecret { component, secret })
                if component == "probe" && secret == "embed-test-token"
        ),
        "{missing_secret:#}"
    );
}
