//! `amimono deploy kube|compose`: the manifests of real bundles, compared
//! with golden files (`AMIMONO_BLESS=1` regenerates them; the revision is
//! replaced by `<revision>` and its first 8 characters by `<rev>`, since
//! it changes with every build of the components) and validated against
//! the Kubernetes OpenAPI schema by `kubernetes-validate --strict` (PyPI,
//! offline; `cargo xtask test` installs it). Bad input: each a clear error
//! naming the thing at fault.

use amimono_tests::{build_bundle, kubernetes_validate, root, run_amimono, temp_app, texts};
use std::path::{Path, PathBuf};

/// Runs `amimono deploy <args>`, which must succeed; the files it wrote.
fn deploy(args: &[&str]) -> Vec<PathBuf> {
    let mut all = vec!["deploy"];
    all.extend_from_slice(args);
    let out = run_amimono(&all, &[]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("wrote "))
        .map(PathBuf::from)
        .collect()
}

/// Runs `amimono deploy <args>`, which must fail; its stderr.
fn deploy_fails(args: &[&str]) -> String {
    let mut all = vec!["deploy"];
    all.extend_from_slice(args);
    let out = run_amimono(&all, &[]);
    let (_, stderr) = texts(&out);
    assert!(!out.status.success(), "succeeded: {args:?}");
    stderr
}

/// `text` with the revision (and its short form) replaced by placeholders.
fn normalized(text: &str, revision: &str) -> String {
    text.replace(revision, "<revision>")
        .replace(&revision[..8], "<rev>")
}

/// Compares `file` (normalized) with the golden file `name`, or writes it
/// under `AMIMONO_BLESS=1`.
fn golden(file: &Path, revision: &str, name: &str) -> Result<(), String> {
    let text = normalized(&std::fs::read_to_string(file).unwrap(), revision);
    let path = root().join("tests/golden/deploy").join(name);
    if std::env::var_os("AMIMONO_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
        return Ok(());
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected == text {
        Ok(())
    } else {
        Err(format!(
            "{} differs from {} (AMIMONO_BLESS=1 regenerates it):\n--- expected\n{expected}\n--- got\n{text}",
            file.display(),
            path.display()
        ))
    }
}

/// Asserts that `kubernetes-validate --strict` accepts every file.
fn assert_valid_kubernetes(files: &[PathBuf]) {
    let out = std::process::Command::new(kubernetes_validate())
        .args(["--strict", "--kubernetes-version", "1.33.0"])
        .args(files)
        .output()
        .expect("running kubernetes-validate");
    let (stdout, stderr) = texts(&out);
    assert!(
        out.status.success(),
        "kubernetes-validate refused the manifests:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("passed") || stderr.contains("passed"),
        "{stdout}{stderr}"
    );
}

#[test]
fn hello_manifests_match_their_golden_files_and_the_kubernetes_schema() {
    let dir = tempfile::tempdir().unwrap();
    let (bundle, revision) = build_bundle(&root().join("examples/hello"), dir.path());
    let out = dir.path().join("kube");
    let files = deploy(&[
        "kube",
        bundle.to_str().unwrap(),
        "--image",
        "localhost/hello:dev",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        files,
        [
            out.join(format!("hello-{}.yaml", &revision[..8])),
            out.join("hello-serve.yaml")
        ]
    );
    let text = std::fs::read_to_string(&files[0]).unwrap();
    // The web job keeps its visit counts in SQLite: a StatefulSet with a
    // volume claim; the backend is a Deployment.
    assert!(text.contains("kind: StatefulSet"), "{text}");
    assert!(text.contains("kind: Deployment"), "{text}");
    let problems: Vec<String> = [
        golden(&files[0], &revision, "hello/revision.yaml"),
        golden(&files[1], &revision, "hello/serve.yaml"),
    ]
    .into_iter()
    .filter_map(Result::err)
    .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_valid_kubernetes(&files);
}

/// An app with replicas, a Redis key-value store, a secret, a memory
/// budget, a worker and a named layout.
const SHOP: &str = "[app]\nname = \"shop\"\n\n\
    [limits]\nmemory_budget_mib = 300\nshutdown_grace_ms = 8000\n\n\
    [keyvalue]\nbackend = \"redis\"\nurl = \"redis://redis.example:6379\"\n\n\
    [components.frontend]\nbinding = \"http\"\nkeyvalue = [\"visits\"]\nsource = \"{wasm:hello_frontend}\"\n\n\
    [components.greeter]\nbinding = \"rpc\"\nsecrets = [\"api-token\"]\nsource = \"{wasm:hello_greeter}\"\n\n\
    [components.phrasebook]\nbinding = \"rpc\"\nsource = \"{wasm:hello_phrasebook}\"\n\n\
    [components.ticker]\nkeyvalue = [\"worker\"]\nsource = \"{wasm:fixture_worker}\"\n\n\
    [jobs.web]\ncomponents = [\"frontend\"]\nreplicas = 2\n\n\
    [jobs.backend]\ncomponents = [\"greeter\", \"phrasebook\", \"ticker\"]\nreplicas = 3\n\n\
    [layouts.one.all]\ncomponents = [\"frontend\", \"greeter\", \"phrasebook\", \"ticker\"]\nreplicas = 2\n";

#[test]
fn replicas_secrets_budgets_and_layouts_reach_the_manifests() {
    let app = temp_app(SHOP);
    let (bundle, revision) = build_bundle(app.path(), app.path());
    let out = app.path().join("kube");
    let files = deploy(&[
        "kube",
        bundle.to_str().unwrap(),
        "--image",
        "registry.example.com/team/shop:1.0",
        "--namespace",
        "shop-prod",
        "-o",
        out.to_str().unwrap(),
    ]);
    let layout_out = app.path().join("kube-one");
    let layout_files = deploy(&[
        "kube",
        bundle.to_str().unwrap(),
        "--image",
        "registry.example.com/team/shop:1.0",
        "--layout",
        "one",
        "-o",
        layout_out.to_str().unwrap(),
    ]);
    let compose = app.path().join("compose/compose.yaml");
    let compose_files = deploy(&[
        "compose",
        bundle.to_str().unwrap(),
        "--image",
        "registry.example.com/team/shop:1.0",
        "-o",
        compose.to_str().unwrap(),
    ]);
    let problems: Vec<String> = [
        golden(&files[0], &revision, "shop/revision.yaml"),
        golden(&files[1], &revision, "shop/serve.yaml"),
        golden(&layout_files[0], &revision, "shop/layout-one.yaml"),
        golden(&compose_files[0], &revision, "shop/compose.yaml"),
        golden(&compose_files[1], &revision, "shop/bindings.toml"),
    ]
    .into_iter()
    .filter_map(Result::err)
    .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let text = std::fs::read_to_string(&files[0]).unwrap();
    // Redis holds the state: Deployments with replicas, no StatefulSet.
    assert!(!text.contains("kind: StatefulSet"), "{text}");
    assert!(text.contains("replicas: 3"), "{text}");
    // The secret is a reference, never a value.
    assert!(text.contains("name: AMIMONO_SECRET_API_TOKEN"), "{text}");
    assert!(text.contains("name: shop-secrets"), "{text}");
    assert!(!text.contains("kind: Secret"), "{text}");
    let mut all = files.clone();
    all.extend(layout_files);
    assert_valid_kubernetes(&all);
}

#[test]
fn bad_input_is_refused_naming_the_thing_at_fault() {
    let dir = tempfile::tempdir().unwrap();
    let (bundle, revision) = build_bundle(&root().join("examples/hello"), dir.path());
    let bundle = bundle.to_str().unwrap();
    let out = dir.path().join("kube");
    let out = out.to_str().unwrap();
    let kube = |extra: &[&str]| {
        let mut args = vec!["kube", bundle, "-o", out];
        args.extend_from_slice(extra);
        deploy_fails(&args)
    };
    let err = kube(&["--image", "localhost/hello:dev", "--layout", "nope"]);
    assert!(err.contains("unknown layout `nope`"), "{err}");
    let err = kube(&["--image", "localhost/hello:dev", "--job", "nope"]);
    assert!(err.contains("unknown job `nope`"), "{err}");
    assert!(err.contains("`backend`, `web`"), "{err}");
    let err = kube(&["--image", "Not An/Image::ref"]);
    assert!(
        err.contains("`Not An/Image::ref` is not an image reference"),
        "{err}"
    );
    let err = kube(&[
        "--image",
        "localhost/hello:dev",
        "--expect-revision",
        "0123456789abcdef",
    ]);
    assert!(
        err.contains(&format!(
            "is revision {revision}, but the deployment is pinned to revision 0123456789abcdef"
        )),
        "{err}"
    );
    let err = kube(&["--image", "localhost/hello:dev", "--namespace", "Prod_1"]);
    assert!(
        err.contains("namespace `Prod_1` is not a valid Kubernetes name"),
        "{err}"
    );
    let err = kube(&[
        "--image",
        "localhost/hello:dev",
        "--serve-revision",
        "latest",
    ]);
    assert!(
        err.contains("`--serve-revision latest` is not a revision"),
        "{err}"
    );
    // An app directory is not a bundle.
    let err = deploy_fails(&[
        "compose",
        root().join("examples/hello").to_str().unwrap(),
        "--image",
        "localhost/hello:dev",
        "-o",
        out,
    ]);
    assert!(err.contains("is not a bundle (`.amimono`)"), "{err}");
    assert!(err.contains("amimono build"), "{err}");
    // Nothing was written by the refused commands.
    assert!(!Path::new(out).exists());
}

#[test]
fn replicas_on_a_job_with_local_durable_state_are_refused_at_build() {
    let app = temp_app(&SHOP.replace(
        "backend = \"redis\"\nurl = \"redis://redis.example:6379\"",
        "backend = \"sqlite\"",
    ));
    let out = run_amimono(&["build", app.path().to_str().unwrap()], &[]);
    let (_, stderr) = texts(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("job `web` has `replicas = 2`, but its component `frontend` keeps durable state on the job's machine (key-value store `visits` in SQLite)"),
        "{stderr}"
    );
    assert!(stderr.contains("backend = \"redis\""), "{stderr}");
}
