//! `amimono call`: WAVE in, WAVE out, exit status by outcome.

use amimono_tests::{run_amimono, texts};

fn call(args: &[&str]) -> (Option<i32>, String, String) {
    let mut full = vec!["call", "examples/hello"];
    full.extend_from_slice(args);
    let out = run_amimono(&full, &[]);
    let (stdout, stderr) = texts(&out);
    (out.status.code(), stdout, stderr)
}

#[test]
fn greet_world_prints_the_record_as_wave() {
    let (code, out, err) = call(&["greeter", "greet", "\"world\""]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out.trim(),
        r#"ok({name: "world", message: "Hello, world!", language: "en"})"#
    );
}

#[test]
fn an_err_result_is_printed_and_exits_2() {
    let (code, out, _) = call(&["greeter", "greet", "\"\""]);
    assert_eq!(code, Some(2));
    assert_eq!(out.trim(), "err(empty-name)");
    let (code, out, _) = call(&["greeter", "greet-in", "\"x\"", "some(\"tlh\")"]);
    assert_eq!(code, Some(2));
    assert_eq!(out.trim(), r#"err(unknown-language("tlh"))"#);
}

#[test]
fn lists_options_and_several_arguments() {
    let (code, out, err) = call(&["greeter", "greet-all", r#"["ada", "", "bob"]"#]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out.trim(),
        r#"[ok({name: "ada", message: "Hello, ada!", language: "en"}), err(empty-name), ok({name: "bob", message: "Hello, bob!", language: "en"})]"#
    );
    let (code, out, err) = call(&["greeter", "greet-in", r#""Jo", some("de")"#]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(r#"message: "Hallo, Jo!""#), "{out}");
    let (code, out, _) = call(&["phrasebook", "phrase", "none"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        out.trim(),
        r#"some({language: "en", template: "Hello, {name}!"})"#
    );
    let (code, out, _) = call(&["phrasebook", "phrase", r#"some("xx")"#]);
    assert_eq!((code, out.trim()), (Some(0), "none"));
    let (code, out, _) = call(&["phrasebook", "hello:app/phrasebook#languages"]);
    assert_eq!((code, out.trim()), (Some(0), r#"["de", "en", "es", "fr"]"#));
}

#[test]
fn unknown_function_lists_what_exists() {
    let (code, _, err) = call(&["greeter", "greeet", "\"x\""]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("component `greeter` exports no function `greeet`"),
        "{err}"
    );
    assert!(err.contains("hello:app/greeter@0.1.0#greet"), "{err}");
}

#[test]
fn unknown_component_lists_labels() {
    let (code, _, err) = call(&["gretter", "greet", "\"x\""]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no component `gretter`"), "{err}");
    assert!(err.contains("frontend, greeter, phrasebook"), "{err}");
}

#[test]
fn arguments_that_do_not_fit_name_the_parameters() {
    let (code, _, err) = call(&["greeter", "greet", "42"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("arguments for `hello:app/greeter@0.1.0#greet` do not match its parameters (name: string)"), "{err}");
    let (code, _, err) = call(&["greeter", "greet"]);
    assert_eq!(code, Some(1), "{err}");
}

#[test]
fn a_call_that_runs_past_its_request_timeout_is_stopped() {
    let app = amimono_tests::temp_app(
        "[app]\nname = \"probe\"\n\n[components.probe]\nsource = \"{wasm:fixture_trap_http}\"\nlimits = { request_timeout_ms = 300 }\n\n[jobs.one]\ncomponents = [\"probe\"]\n",
    );
    let out = amimono_tests::run_amimono(
        &[
            "call",
            app.path().to_str().unwrap(),
            "probe",
            "spin",
            "60000",
        ],
        &[],
    );
    let (_, stderr) = amimono_tests::texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("did not finish `fixtures:probe/control@0.1.0#spin` within its request_timeout_ms of 300 ms"),
        "{stderr}"
    );
}
