//! `amimono image`: the hello bundle's image archive, loaded into podman and
//! run for real as a non-root user on a read-only root filesystem.

use amimono_tests::{Podman, build_bundle, free_port, get, podman_ok, run_amimono, texts};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Builds the hello bundle into `dir`; its path and revision.
fn bundle(dir: &Path) -> (PathBuf, String) {
    build_bundle(Path::new("examples/hello"), dir)
}

/// What `amimono image` printed.
struct Written {
    path: PathBuf,
    digest: String,
    tag: String,
}

/// `amimono image bundle -o out --tag tag`, which must succeed.
fn image(bundle: &Path, out: &Path, tag: &str) -> Written {
    let output = run_amimono(
        &[
            "image",
            bundle.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--tag",
            tag,
        ],
        &[],
    );
    let (stdout, stderr) = texts(&output);
    assert!(output.status.success(), "{stderr}");
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no `{name}` line in {stdout}"))
            .to_string()
    };
    let path = field("image ");
    let path = path.split(" (").next().unwrap();
    Written {
        path: PathBuf::from(path),
        digest: field("digest "),
        tag: field("tag "),
    }
}

#[test]
fn the_image_loads_into_podman_under_its_tag_and_runs_as_non_root_on_a_read_only_root() {
    let dir = tempfile::tempdir().unwrap();
    let (bundle, revision) = bundle(dir.path());
    let mut podman = Podman::new();
    let tag = podman.image_name();
    let written = image(&bundle, &dir.path().join("image.tar"), &tag);
    assert_eq!(written.path, dir.path().join("image.tar"));
    assert_eq!(written.tag, tag);
    assert!(written.digest.starts_with("sha256:"), "{}", written.digest);

    let loaded = podman.load(&written.path);
    assert!(loaded.contains(&format!("Loaded image: {tag}")), "{loaded}");
    let digest = podman_ok(&["image", "inspect", "--format", "{{.Digest}}", &tag]);
    assert_eq!(digest.trim(), written.digest);
    let user = podman_ok(&["image", "inspect", "--format", "{{.Config.User}}", &tag]);
    assert_eq!(user.trim(), "65532:65532");

    let config = podman_ok(&[
        "run",
        "--rm",
        "--read-only",
        "--network",
        "none",
        "--user",
        "65532:65532",
        "-e",
        "AMIMONO_JOB=_config",
        &tag,
    ]);
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["app"], "hello", "{config}");
    assert_eq!(config["revision"], revision.as_str(), "{config}");
}

#[test]
fn the_local_job_serves_hello_from_a_read_only_container_with_data_on_a_tmpfs() {
    let dir = tempfile::tempdir().unwrap();
    let (bundle, _) = bundle(dir.path());
    let mut podman = Podman::new();
    let tag = podman.image_name();
    let written = image(&bundle, &dir.path().join("image.tar"), &tag);
    podman.load(&written.path);

    let port = free_port();
    let bindings = dir.path().join("bindings.toml");
    std::fs::write(
        &bindings,
        format!(
            "[components.frontend]\ntype = \"http\"\ninternal = \"127.0.0.1:{port}\"\nexternal = \"http://127.0.0.1:{port}\"\n"
        ),
    )
    .unwrap();
    let container = podman.name("local", false);
    podman_ok(&[
        "run",
        "-d",
        "--name",
        &container,
        "--read-only",
        "--tmpfs",
        "/data",
        "--tmpfs",
        "/tmp",
        "-v",
        &format!("{}:/etc/amimono/bindings.toml:ro", bindings.display()),
        "-e",
        "AMIMONO_JOB=_local",
        "-e",
        "AMIMONO_BINDINGS=/etc/amimono/bindings.toml",
        // The host's network: no bridge, NAT or firewall rules needed
        // (podman's `-p 127.0.0.1:<port>:<port>` with `0.0.0.0:<port>` in
        // the bindings works too, where netavark and iptables are set up).
        "--network",
        "host",
        &tag,
    ]);
    let (running, logs) = podman.wait_for_log(&container, "job running", Duration::from_secs(60));
    assert!(running, "{logs}");
    let reply = get(&format!("http://127.0.0.1:{port}/hello/world"));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.body.starts_with("Hello, world!"), "{reply:?}");
    // The bundle's precompiled graphs fit the engine in the image: the same binary.
    let logs = podman.logs(&container);
    assert!(!logs.contains("compiling instead"), "{logs}");
}

#[test]
fn the_same_bundle_gives_the_same_archive_and_digest() {
    let dir = tempfile::tempdir().unwrap();
    let (bundle, revision) = bundle(dir.path());
    let first = image(&bundle, &dir.path().join("a.tar"), "localhost/hello:dev");
    let second = image(&bundle, &dir.path().join("b.tar"), "localhost/hello:dev");
    assert_eq!(first.digest, second.digest);
    assert!(
        std::fs::read(&first.path).unwrap() == std::fs::read(&second.path).unwrap(),
        "the two archives differ"
    );

    // Without -o and --tag: target/amimono/<app>-image.tar (in the working
    // directory), named localhost/<app>:<revision>.
    let cwd = tempfile::tempdir().unwrap();
    let output = amimono_tests::amimono()
        .current_dir(cwd.path())
        .args(["image", bundle.to_str().unwrap()])
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("image target/amimono/hello-image.tar ("),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("\ntag localhost/hello:{revision}\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("\ndigest {}\n", first.digest)),
        "{stdout}"
    );
    assert!(cwd.path().join("target/amimono/hello-image.tar").is_file());
}

#[test]
fn what_is_not_a_bundle_and_a_bad_tag_are_refused_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let damaged = dir.path().join("damaged.amimono");
    std::fs::write(&damaged, vec![b'x'; 4096]).unwrap();
    let missing = dir.path().join("missing.amimono");
    for not_a_bundle in [
        "examples/hello",
        missing.to_str().unwrap(),
        damaged.to_str().unwrap(),
    ] {
        let out = run_amimono(&["image", not_a_bundle], &[]);
        let (_, stderr) = texts(&out);
        assert!(!out.status.success(), "{not_a_bundle}");
        assert!(stderr.contains(&format!("`{not_a_bundle}`")), "{stderr}");
        assert!(stderr.contains("amimono build"), "{stderr}");
    }

    let (bundle, _) = bundle(dir.path());
    let out = run_amimono(
        &["image", bundle.to_str().unwrap(), "--tag", "Hello:Dev"],
        &[],
    );
    let (_, stderr) = texts(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("`Hello:Dev` is not an image reference"),
        "{stderr}"
    );
}
