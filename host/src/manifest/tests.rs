//! Manifest golden tests: every `host/tests/manifests/invalid/*.toml` must
//! fail with exactly the text in the `.err` file beside it. Regenerate the
//! `.err` files with `AMIMONO_BLESS=1 cargo test -p amimono manifest`.

use super::*;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/manifests/invalid")
}

#[test]
fn invalid_manifests_match_their_golden_errors() {
    let bless = std::env::var_os("AMIMONO_BLESS").is_some();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 8, "golden cases missing");
    let mut failures = Vec::new();
    for case in cases {
        let text = std::fs::read_to_string(&case).unwrap();
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let error = match Manifest::parse(Path::new(&name), text) {
            Ok(_) => format!("{name}: parsed, but should have failed"),
            Err(e) => e.to_string(),
        };
        let golden = case.with_extension("err");
        if bless {
            std::fs::write(&golden, format!("{error}\n")).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_default();
        if expected.trim_end() != error.trim_end() {
            failures.push(format!(
                "{name}:\n--- expected\n{expected}\n--- got\n{error}\n"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_hello_manifest_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello");
    let manifest = Manifest::load(&dir).unwrap();
    assert_eq!(manifest.app, "hello");
    assert_eq!(manifest.job_names(), ["backend", "web"]);
    let frontend = &manifest.components["frontend"];
    assert_eq!(frontend.binding, BindingType::Http);
    assert_eq!(frontend.job, "web");
    assert_eq!(manifest.components["greeter"].job, "backend");
    assert!(
        frontend
            .source
            .ends_with("target/wasm32-wasip2/release/hello_frontend.wasm")
    );
}

#[test]
fn binding_defaults_to_none_and_links_are_kept() {
    let text = "[app]\nname = \"x\"\n[components.a]\nsource = \"a.wasm\"\nlinks = { \"p:q/r\" = \"b\" }\n[components.b]\nsource = \"b.wasm\"\n[jobs.j]\ncomponents = [\"a\", \"b\"]\n";
    let manifest = Manifest::parse(Path::new("m.toml"), text.into()).unwrap();
    assert_eq!(manifest.components["a"].binding, BindingType::None);
    assert_eq!(manifest.components["a"].links["p:q/r"], "b");
}

#[test]
fn a_named_layout_replaces_the_jobs_when_selected() {
    let text = "[app]\nname = \"x\"\n[components.a]\nsource = \"a.wasm\"\n[components.b]\nsource = \"b.wasm\"\n[jobs.ja]\ncomponents = [\"a\"]\n[jobs.jb]\ncomponents = [\"b\"]\n[layouts.together.both]\ncomponents = [\"a\", \"b\"]\n";
    let mut manifest = Manifest::parse(Path::new("m.toml"), text.into()).unwrap();
    assert_eq!(manifest.job_names(), ["ja", "jb"]);
    assert_eq!(manifest.layout, None);
    assert_eq!(manifest.components["b"].job, "jb");
    manifest.select_layout("together").unwrap();
    assert_eq!(manifest.job_names(), ["both"]);
    assert_eq!(manifest.layout.as_deref(), Some("together"));
    assert_eq!(manifest.components["a"].job, "both");
    assert_eq!(manifest.components["b"].job, "both");
    let unknown = manifest.select_layout("nope").unwrap_err().to_string();
    assert!(unknown.contains("unknown layout `nope`"), "{unknown}");
    assert!(unknown.contains("`together`"), "{unknown}");
}

#[test]
fn replicas_default_to_one_and_are_read_per_layout() {
    let text = "[app]\nname = \"x\"\n\n[keyvalue]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n\n\
                [components.a]\nsource = \"a.wasm\"\nkeyvalue = [\"s\"]\n\n\
                [components.b]\nsource = \"b.wasm\"\n\n\
                [jobs.one]\ncomponents = [\"a\"]\nreplicas = 3\n\n\
                [jobs.two]\ncomponents = [\"b\"]\n\n\
                [layouts.all.both]\ncomponents = [\"a\", \"b\"]\nreplicas = 2\n";
    let mut manifest = Manifest::parse(Path::new("x.toml"), text.to_string()).unwrap();
    assert_eq!(manifest.jobs["one"].replicas, 3);
    assert_eq!(manifest.jobs["two"].replicas, 1);
    // Redis keeps the state off the job's machine: replicas are allowed.
    assert_eq!(
        local_state(&manifest.components["a"], &manifest.keyvalue),
        None
    );
    manifest.select_layout("all").unwrap();
    assert_eq!(manifest.jobs["both"].replicas, 2);
}
