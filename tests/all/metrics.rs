//! Metrics, scraped by a real Prometheus server (Debian's `prometheus`,
//! which `cargo xtask test` installs): the hello app split into its two
//! jobs, every request measuring its colocated calls
//! (`AMIMONO_LOCAL_SAMPLE_RATIO=1`), and Prometheus' HTTP API asked for
//! the `frontend → greeter` edge (remote) and `greeter → phrasebook`
//! (local, inside the backend job).

use amimono_tests::{Host, free_port, get, hello_app, hello_bindings, try_get};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The split hello app with an admin listener per job: (web, backend,
/// web admin, backend admin).
pub(crate) fn split_hello(dir: &Path, env: &[(&str, &str)]) -> (Host, Host, String, String) {
    let (bindings, _, _) = hello_bindings(dir);
    let (web_admin, backend_admin) = (free_port(), free_port());
    let mut text = std::fs::read_to_string(&bindings).unwrap();
    text.push_str(&format!(
        "\n[jobs.web]\nadmin = \"127.0.0.1:{web_admin}\"\n\n[jobs.backend]\nadmin = \"127.0.0.1:{backend_admin}\"\n"
    ));
    std::fs::write(&bindings, text).unwrap();
    let bindings = bindings.to_str().unwrap();
    let data = dir.to_str().unwrap();
    let start = |job: &str, http: &[&str]| {
        let mut all = vec![
            ("AMIMONO_JOB", job),
            ("AMIMONO_BINDINGS", bindings),
            ("AMIMONO_DATA_DIR", data),
        ];
        all.extend_from_slice(env);
        Host::start(&hello_app(), &all, http)
    };
    let backend_host = start("backend", &[]);
    backend_host.wait_running();
    let web_host = start("web", &["frontend"]);
    web_host.wait_running();
    (
        web_host,
        backend_host,
        format!("127.0.0.1:{web_admin}"),
        format!("127.0.0.1:{backend_admin}"),
    )
}

/// A Prometheus server scraping `targets` every second, stopped on drop.
struct Prometheus {
    child: Child,
    url: String,
    _data: tempfile::TempDir,
}

impl Prometheus {
    fn start(targets: &[&str]) -> Prometheus {
        let data = tempfile::tempdir().unwrap();
        let config = data.path().join("prometheus.yml");
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: amimono\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                data.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting prometheus (`cargo xtask test` installs Debian's prometheus)");
        let server = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _data: data,
        };
        let until = Instant::now() + Duration::from_secs(60);
        while !try_get(&format!("{}/-/ready", server.url)).is_ok_and(|r| r.status == 200) {
            assert!(
                Instant::now() < until,
                "prometheus did not get ready within 60 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        server
    }

    /// The samples of instant query `query`: (labels, value) each.
    fn query(&self, query: &str) -> Vec<(serde_json::Value, f64)> {
        let reply = get(&format!(
            "{}/api/v1/query?query={}",
            self.url,
            percent_encode(query)
        ));
        assert_eq!(reply.status, 200, "{}", reply.body);
        let answer: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|sample| {
                let value = sample["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN);
                (sample["metric"].clone(), value)
            })
            .collect()
    }

    /// Waits (60 s at most) until `query` has a sample of at least `least`.
    fn wait_for(&self, query: &str, least: f64) -> Vec<(serde_json::Value, f64)> {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let samples = self.query(query);
            if samples.iter().any(|(_, v)| *v >= least) {
                return samples;
            }
            assert!(
                Instant::now() < until,
                "Prometheus has no sample ≥ {least} for {query} within 60 s; last answer: {samples:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn prometheus_scrapes_the_remote_and_the_local_edges_of_the_split_hello_app() {
    let dir = tempfile::tempdir().unwrap();
    let (web, _backend, web_admin, backend_admin) =
        split_hello(dir.path(), &[("AMIMONO_LOCAL_SAMPLE_RATIO", "1")]);
    let prometheus = Prometheus::start(&[&web_admin, &backend_admin]);
    for name in ["ada", "bob", "cy"] {
        let reply = get(&format!("{}/hello/{name}", web.url("frontend")));
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(
            reply.body.starts_with(&format!("Hello, {name}!")),
            "{}",
            reply.body
        );
    }
    let remote = prometheus.wait_for(
        r#"sum(amimono_method_count{caller="frontend",component="greeter",placement="remote"})"#,
        3.0,
    );
    assert_eq!(remote[0].1, 3.0, "{remote:?}");
    let local = prometheus.wait_for(
        r#"amimono_method_count{caller="greeter",component="phrasebook",placement="local"}"#,
        3.0,
    );
    let (labels, _) = local
        .iter()
        .find(|(labels, _)| labels["method"] == "hello:app/phrasebook@0.1.0#phrase")
        .unwrap_or_else(|| panic!("no phrase calls: {local:?}"));
    assert_eq!(labels["job"], "amimono", "{labels}");
    assert_eq!(
        labels["instance"].as_str(),
        Some(backend_admin.as_str()),
        "the local edge is measured in the backend job: {labels}"
    );
    // Every request went through the frontend: ingress by status.
    prometheus.wait_for(
        r#"amimono_http_requests_total{component="frontend",status="200"}"#,
        3.0,
    );
    // The sampling ratio is exported, so counts can be read as estimates.
    prometheus.wait_for("amimono_local_sample_ratio", 1.0);
}

#[test]
fn with_sampling_off_local_calls_are_not_measured_and_remote_ones_are() {
    let dir = tempfile::tempdir().unwrap();
    let (web, _backend, web_admin, backend_admin) = split_hello(dir.path(), &[]);
    let reply = get(&format!("{}/hello/dee", web.url("frontend")));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let web_metrics = get(&format!("http://{web_admin}/metrics"));
    assert_eq!(web_metrics.status, 200);
    assert!(
        web_metrics.body.contains(
            r#"amimono_method_count{caller="frontend",component="greeter",method="hello:app/greeter@0.1.0#greet-in",placement="remote"} 1"#
        ),
        "{}",
        web_metrics.body
    );
    let backend_metrics = get(&format!("http://{backend_admin}/metrics"));
    assert!(
        !backend_metrics.body.contains(r#"placement="local""#),
        "{}",
        backend_metrics.body
    );
    assert!(
        backend_metrics
            .body
            .contains("amimono_local_sample_ratio 0"),
        "{}",
        backend_metrics.body
    );
    assert!(
        backend_metrics
            .body
            .contains(r#"amimono_instances_created_total{component="greeter"}"#),
        "{}",
        backend_metrics.body
    );
}
