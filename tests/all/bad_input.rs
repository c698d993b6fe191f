//! Bad input gets a clear error naming the thing at fault, never a panic.

use amimono_tests::{free_port, run_amimono, temp_app, texts};

/// Runs `amimono call` on a temporary app and returns (exit code, stderr).
fn call_in(app: &tempfile::TempDir, args: &[&str]) -> (Option<i32>, String, String) {
    let mut full = vec!["call", app.path().to_str().unwrap()];
    full.extend_from_slice(args);
    let out = run_amimono(&full, &[]);
    let (stdout, stderr) = texts(&out);
    (out.status.code(), stdout, stderr)
}

fn run_local(app: &tempfile::TempDir) -> (Option<i32>, String) {
    let out = run_amimono(
        &["run", app.path().to_str().unwrap()],
        &[("AMIMONO_JOB", "_local")],
    );
    (out.status.code(), texts(&out).1)
}

fn assert_clean_failure(code: Option<i32>, stderr: &str) {
    assert_eq!(code, Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn malformed_manifest_names_file_line_and_column() {
    let app =
        temp_app("[app]\nname = \"x\"\n\n[components.a]\nsource = \"a.wasm\"\nbinding = \"htp\"\n");
    let (code, err) = run_local(&app);
    assert_clean_failure(code, &err);
    assert!(
        err.contains(
            "amimono.toml:6:11: unknown variant `htp`, expected one of `http`, `rpc`, `none`"
        ),
        "{err}"
    );
    assert!(err.contains("6 | binding = \"htp\""), "{err}");

    let app = temp_app("[app\nname = 1\n");
    let (code, err) = run_local(&app);
    assert_clean_failure(code, &err);
    assert!(err.contains("amimono.toml:1:5:"), "{err}");
}

#[test]
fn manifest_rules_are_all_reported_at_once() {
    let app = temp_app(
        "[app]\nname = \"Bad_Name\"\n\n[components.a]\nsource = \"{wasm:hello_phrasebook}\"\n\n[components.b]\nsource = \"{wasm:hello_phrasebook}\"\n\n[jobs.one]\ncomponents = [\"a\", \"zz\"]\n\n[jobs.two]\ncomponents = [\"a\"]\n",
    );
    let (code, err) = run_local(&app);
    assert_clean_failure(code, &err);
    assert!(err.contains("invalid manifest (4 problems)"), "{err}");
    assert!(err.contains(":2:8: invalid app name `Bad_Name`"), "{err}");
    assert!(
        err.contains(":11:20: job `one` lists component `zz`, which the manifest does not define"),
        "{err}"
    );
    assert!(
        err.contains(":14:15: component `a` placed multiple times: in job `one` and in job `two`"),
        "{err}"
    );
    assert!(
        err.contains(":7:13: component `b` is not placed in any job"),
        "{err}"
    );
}

#[test]
fn schema_problems_in_several_tables_are_all_reported_at_once() {
    // Unknown keys in three tables and a value of the wrong type in a fourth.
    let app = temp_app(
        "[app]\nname = \"x\"\nversion = \"1\"\n\n[components.a]\nsource = \"a.wasm\"\nport = 8080\n\n[components.b]\nsource = \"b.wasm\"\ncall_timeout_ms = \"soon\"\n\n[jobs.one]\ncomponents = [\"a\", \"b\"]\ncolor = \"red\"\n",
    );
    let (code, err) = run_local(&app);
    assert_clean_failure(code, &err);
    assert!(err.contains("invalid manifest (4 problems)"), "{err}");
    assert!(
        err.contains(
            "amimono.toml:3:1: unknown field `version`, expected `name` or `call_timeout_ms`"
        ),
        "{err}"
    );
    assert!(
        err.contains("amimono.toml:7:1: unknown field `port`"),
        "{err}"
    );
    assert!(
        err.contains("amimono.toml:11:19: invalid type: string \"soon\", expected u64"),
        "{err}"
    );
    assert!(
        err.contains("amimono.toml:15:1: unknown field `color`, expected `components`"),
        "{err}"
    );
    assert!(err.contains("11 | call_timeout_ms = \"soon\""), "{err}");
}

#[test]
fn missing_manifest_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_amimono(
        &["run", dir.path().to_str().unwrap()],
        &[("AMIMONO_JOB", "_local")],
    );
    let (_, err) = texts(&out);
    assert_clean_failure(out.status.code(), &err);
    assert!(err.contains("cannot read manifest"), "{err}");
    assert!(err.contains("amimono.toml"), "{err}");
    // The OS error once, in that line, not again as a cause.
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}

#[test]
fn missing_wasm_file_names_the_component_and_how_to_build_it() {
    let app = temp_app(
        "[app]\nname = \"x\"\n\n[components.cart]\nsource = \"nope/cart.wasm\"\nbuild = \"make cart\"\n\n[jobs.one]\ncomponents = [\"cart\"]\n",
    );
    let (code, err) = run_local(&app);
    assert_clean_failure(code, &err);
    assert!(
        err.contains("amimono.toml:5:10: component `cart`: wasm file"),
        "{err}"
    );
    assert!(err.contains("nope/cart.wasm` does not exist"), "{err}");
    assert!(err.contains("build it first: `make cart`"), "{err}");
}

#[test]
fn a_file_that_is_not_a_component_is_named() {
    let app = temp_app(
        "[app]\nname = \"x\"\n\n[components.junk]\nsource = \"junk.wasm\"\n\n[jobs.one]\ncomponents = [\"junk\"]\n",
    );
    std::fs::write(app.path().join("junk.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let (code, err) = run_local(&app);
    assert_clean_failure(code, &err);
    assert!(err.contains("component `junk`"), "{err}");
    assert!(
        err.contains("is not a usable WebAssembly component"),
        "{err}"
    );
}

#[test]
fn http_binding_without_a_handler_is_refused() {
    let app = temp_app(
        "[app]\nname = \"x\"\n\n[components.phrasebook]\nbinding = \"http\"\nsource = \"{wasm:hello_phrasebook}\"\n\n[jobs.one]\ncomponents = [\"phrasebook\"]\n",
    );
    let (code, err) = run_local(&app);
    assert_clean_failure(code, &err);
    assert!(err.contains("component `phrasebook` has binding `http` but does not export `wasi:http/incoming-handler`"), "{err}");
}

#[test]
fn unresolved_import_names_the_component_and_the_import() {
    let app = temp_app(
        "[app]\nname = \"x\"\n\n[components.frontend]\nbinding = \"http\"\nsource = \"{wasm:hello_frontend}\"\n\n[components.greeter]\nbinding = \"rpc\"\nsource = \"{wasm:hello_greeter}\"\n\n[jobs.one]\ncomponents = [\"frontend\", \"greeter\"]\n",
    );
    let (code, err) = run_local(&app);
    assert_clean_failure(code, &err);
    assert!(
        err.contains("component `greeter` imports `hello:app/phrasebook@0.1.0`, but no component of the app exports it"),
        "{err}"
    );
    let (code, _, err) = call_in(&app, &["greeter", "greet", "\"x\""]);
    assert_clean_failure(code, &err);
    assert!(err.contains("hello:app/phrasebook@0.1.0"), "{err}");
}

const TWO_PHRASEBOOKS: &str = "[app]\nname = \"x\"\n\n[components.greeter]\nbinding = \"rpc\"\nsource = \"{wasm:hello_greeter}\"\nLINKS\n\n[components.phrasebook]\nbinding = \"rpc\"\nsource = \"{wasm:hello_phrasebook}\"\n\n[components.spare-phrasebook]\nbinding = \"rpc\"\nsource = \"{wasm:hello_phrasebook}\"\n\n[jobs.one]\ncomponents = [\"greeter\", \"phrasebook\", \"spare-phrasebook\"]\n";

#[test]
fn ambiguous_exporter_asks_for_a_link_and_a_link_resolves_it() {
    let app = temp_app(&TWO_PHRASEBOOKS.replace("LINKS", ""));
    let (code, _, err) = call_in(&app, &["greeter", "greet", "\"x\""]);
    assert_clean_failure(code, &err);
    assert!(
        err.contains("component `greeter` imports `hello:app/phrasebook@0.1.0`, which several components export: `phrasebook`, `spare-phrasebook`"),
        "{err}"
    );
    assert!(err.contains("[components.greeter.links]"), "{err}");

    let app = temp_app(&TWO_PHRASEBOOKS.replace(
        "LINKS",
        "links = { \"hello:app/phrasebook\" = \"spare-phrasebook\" }",
    ));
    let (code, out, err) = call_in(&app, &["greeter", "greet", "\"x\""]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("Hello, x!"), "{out}");
}

#[test]
fn a_link_to_a_component_that_does_not_export_the_interface_is_refused() {
    let app = temp_app(
        "[app]\nname = \"x\"\n\n[components.frontend]\nbinding = \"http\"\nsource = \"{wasm:hello_frontend}\"\n\n[components.greeter]\nbinding = \"rpc\"\nsource = \"{wasm:hello_greeter}\"\nlinks = { \"hello:app/phrasebook\" = \"frontend\" }\n\n[components.phrasebook]\nbinding = \"rpc\"\nsource = \"{wasm:hello_phrasebook}\"\n\n[jobs.one]\ncomponents = [\"frontend\", \"greeter\", \"phrasebook\"]\n",
    );
    let (code, err) = run_local(&app);
    assert_clean_failure(code, &err);
    assert!(
        err.contains("component `greeter` links `hello:app/phrasebook@0.1.0` to `frontend`, but `frontend` does not export it (it exports: `wasi:http/incoming-handler@0.2.12`)"),
        "{err}"
    );

    let app = temp_app(&TWO_PHRASEBOOKS.replace(
        "LINKS",
        "links = { \"hello:app/phrasebook\" = \"greeter\" }",
    ));
    let (code, _, err) = call_in(&app, &["greeter", "greet", "\"x\""]);
    assert_clean_failure(code, &err);
    assert!(
        err.contains("component `greeter` cannot link an import to itself"),
        "{err}"
    );
}

#[test]
fn wit_mismatch_between_importer_and_exporter_is_named() {
    let app = temp_app(
        "[app]\nname = \"x\"\n\n[components.greeter]\nbinding = \"rpc\"\nsource = \"{wasm:hello_greeter}\"\n\n[components.phrasebook]\nbinding = \"rpc\"\nsource = \"{wasm:fixture_mismatch_phrasebook}\"\n\n[jobs.one]\ncomponents = [\"greeter\", \"phrasebook\"]\n",
    );
    let (code, err) = run_local(&app);
    assert_clean_failure(code, &err);
    let (code, _, err2) = call_in(&app, &["greeter", "greet", "\"x\""]);
    assert_clean_failure(code, &err2);
    for err in [err, err2] {
        assert!(
            err.contains("component `greeter` imports `hello:app/phrasebook@0.1.0` from `phrasebook`, but their WIT differ"),
            "{err}"
        );
        assert!(err.contains("phrase"), "{err}");
    }
}

#[test]
fn bad_job_arguments_are_reported() {
    let out = run_amimono(
        &["run", "examples/hello"],
        &[
            ("AMIMONO_JOB", "_local"),
            ("AMIMONO_BINDINGS", "/nonexistent/b.toml"),
        ],
    );
    let (_, err) = texts(&out);
    assert_clean_failure(out.status.code(), &err);
    assert!(
        err.contains("cannot read bindings file `/nonexistent/b.toml`"),
        "{err}"
    );
}

/// `amimono run examples/hello` (every job) with the bindings file `path`.
fn run_hello_with_bindings(path: &std::path::Path) -> (Option<i32>, String) {
    let out = run_amimono(
        &["run", "examples/hello"],
        &[
            ("AMIMONO_JOB", "_local"),
            ("AMIMONO_BINDINGS", path.to_str().unwrap()),
        ],
    );
    (out.status.code(), texts(&out).1)
}

#[test]
fn a_missing_bindings_file_is_one_line_naming_the_file_and_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.toml");
    let (code, err) = run_hello_with_bindings(&path);
    assert_clean_failure(code, &err);
    let expected = format!(
        "error: cannot read bindings file `{}` (AMIMONO_BINDINGS): No such file or directory (os error 2)",
        path.display()
    );
    assert_eq!(err.trim_end(), expected, "{err}");
}

#[test]
fn a_bindings_file_that_is_not_utf8_names_the_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.toml");
    std::fs::write(
        &path,
        b"[components.frontend]\ntype = \"http\"\ninternal = \"127.0.0.1:8\xff80\"\n",
    )
    .unwrap();
    let (code, err) = run_hello_with_bindings(&path);
    assert_clean_failure(code, &err);
    assert!(
        err.contains(&format!(
            "{}:3:24: the file is not UTF-8 text: byte 0xFF (at byte offset 59) is not valid UTF-8",
            path.display()
        )),
        "{err}"
    );
    assert!(err.contains("AMIMONO_BINDINGS"), "{err}");
}

const TWO_HTTP_PROBES: &str = "[app]\nname = \"x\"\n\n[components.probe]\nbinding = \"http\"\nsource = \"{wasm:fixture_trap_http}\"\n\n[components.second-probe]\nbinding = \"http\"\nsource = \"{wasm:fixture_trap_http}\"\n\n[jobs.one]\ncomponents = [\"probe\", \"second-probe\"]\n";

#[test]
fn two_http_components_given_one_address_are_named_before_binding() {
    let app = temp_app(TWO_HTTP_PROBES);
    let port = free_port();
    let bindings = app.path().join("b.toml");
    std::fs::write(
        &bindings,
        format!(
            "[components.probe]\ntype = \"http\"\ninternal = \"127.0.0.1:{port}\"\n\n[components.second-probe]\ntype = \"http\"\ninternal = \"127.0.0.1:{port}\"\n"
        ),
    )
    .unwrap();
    let out = run_amimono(
        &["run", app.path().to_str().unwrap()],
        &[
            ("AMIMONO_JOB", "one"),
            ("AMIMONO_BINDINGS", bindings.to_str().unwrap()),
        ],
    );
    let (_, err) = texts(&out);
    assert_clean_failure(out.status.code(), &err);
    assert!(
        err.contains(&format!(
            "b.toml:7:12: components `probe` (http) and `second-probe` (http) of job `one` both listen on 127.0.0.1:{port}"
        )),
        "{err}"
    );
    assert!(!err.contains("Address already in use"), "{err}");
}

#[test]
fn an_idempotent_function_that_is_not_exported_is_named() {
    let app = temp_app(
        "[app]\nname = \"x\"\n\n[components.frontend]\nbinding = \"http\"\nsource = \"{wasm:hello_frontend}\"\nkeyvalue = [\"visits\"]\n\n[components.greeter]\nbinding = \"rpc\"\nsource = \"{wasm:hello_greeter}\"\nidempotent = [\"greet\", \"hello:app/greeter#greet-everyone\"]\n\n[components.phrasebook]\nbinding = \"rpc\"\nsource = \"{wasm:hello_phrasebook}\"\nidempotent = [\"hello:app/phrasebook#phrase\", \"prase\"]\n\n[jobs.one]\ncomponents = [\"frontend\", \"greeter\", \"phrasebook\"]\n",
    );
    let (code, err) = run_local(&app);
    assert_clean_failure(code, &err);
    assert!(
        err.contains("component `greeter` marks `hello:app/greeter#greet-everyone` idempotent, but exports no such function (it exports: hello:app/greeter#greet"),
        "{err}"
    );
    assert!(
        err.contains("component `phrasebook` marks `prase` idempotent"),
        "{err}"
    );
}
