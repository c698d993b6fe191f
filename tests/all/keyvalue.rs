//! Key-value stores: the hello visit counter (durable with SQLite, the
//! default), store grants, typed values with compare-and-swap, indexes, and
//! increments that stay atomic under concurrent writers — across requests
//! with SQLite and across replicas with Redis (a real `redis-server`).

use amimono_tests::{Host, free_port, get, hello_app, temp_app};
use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

#[test]
fn the_visit_counter_counts_per_name_and_survives_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let env = [
        ("AMIMONO_JOB", "_local"),
        ("AMIMONO_DATA_DIR", data.path().to_str().unwrap()),
    ];
    {
        let host = Host::start(&hello_app(), &env, &["frontend"]);
        let url = host.url("frontend");
        assert!(get(&format!("{url}/hello/world")).body.contains("visit 1"));
        let second = get(&format!("{url}/hello/world")).body;
        assert!(
            second.contains("Hello, world!") && second.contains("visit 2"),
            "{second}"
        );
        assert!(get(&format!("{url}/hello/ada")).body.contains("visit 1"));
    }
    assert!(data.path().join("hello.sqlite").exists());
    let host = Host::start(&hello_app(), &env, &["frontend"]);
    let third = get(&format!("{}/hello/world", host.url("frontend"))).body;
    assert!(third.contains("visit 3"), "{third}");
}

fn caps_app(backend: &str) -> tempfile::TempDir {
    temp_app(&format!(
        "[app]\nname = \"kv\"\n\n[keyvalue]\n{backend}\n\n[components.caps]\nbinding = \"http\"\nsource = \"{{wasm:fixture_capabilities}}\"\nkeyvalue = [\"data\", \"other\"]\nconfig = {{ unused = \"1\" }}\nallowed_outbound_hosts = [\"http://127.0.0.1:1\"]\n\n[jobs.one]\ncomponents = [\"caps\"]\n"
    ))
}

#[test]
fn stores_are_granted_by_name_and_typed_values_and_indexes_work() {
    let app = caps_app("backend = \"memory\"");
    let host = Host::start(app.path(), &[("AMIMONO_JOB", "one")], &["caps"]);
    let url = host.url("caps");
    assert_eq!(get(&format!("{url}/kv/data/set/k/v1")).body, "set");
    assert_eq!(get(&format!("{url}/kv/data/get/k")).body, "v1");
    assert_eq!(get(&format!("{url}/kv/other/get/k")).body, "<none>");
    let denied = get(&format!("{url}/kv/secret/get/k"));
    assert_eq!(denied.status, 500, "{denied:?}");
    assert!(
        denied.body.contains("access to the store is denied"),
        "{denied:?}"
    );
    assert!(host.wait_for_log(
        "refused to open a key-value store the manifest does not grant",
        Duration::from_secs(5)
    ));
    // Typed read-modify-write with compare-and-swap.
    for n in 1..=3 {
        assert_eq!(
            get(&format!("{url}/kv/data/push/list/item{n}")).body,
            n.to_string()
        );
    }
    // A secondary index follows record updates.
    assert_eq!(
        get(&format!("{url}/kv/data/user/u1/a@x.org")).body,
        "stored"
    );
    assert_eq!(
        get(&format!("{url}/kv/data/user/u2/a@x.org")).body,
        "stored"
    );
    assert_eq!(
        get(&format!("{url}/kv/data/by-email/a@x.org")).body,
        "u1,u2"
    );
    assert_eq!(
        get(&format!("{url}/kv/data/user/u1/b@x.org")).body,
        "stored"
    );
    assert_eq!(get(&format!("{url}/kv/data/by-email/a@x.org")).body, "u2");
    assert_eq!(get(&format!("{url}/kv/data/by-email/b@x.org")).body, "u1");
}

/// Sends `threads × per_thread` increments of one counter to the `urls`
/// (round-robin), concurrently; every count returned.
fn hammer(urls: &[String], threads: usize, per_thread: usize, path: &str) -> Vec<u64> {
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let url = urls[t % urls.len()].clone();
            let path = path.to_string();
            std::thread::spawn(move || {
                (0..per_thread)
                    .map(|_| {
                        let reply = get(&format!("{url}{path}"));
                        assert_eq!(reply.status, 200, "{reply:?}");
                        reply.body.trim().parse::<u64>().unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect()
}

fn assert_all_distinct(counts: Vec<u64>) {
    let n = counts.len() as u64;
    let distinct: BTreeSet<u64> = counts.into_iter().collect();
    assert_eq!(
        distinct.len() as u64,
        n,
        "an increment was lost or duplicated"
    );
    assert_eq!(distinct.iter().next_back().copied(), Some(n));
}

#[test]
fn sqlite_increments_are_atomic_across_concurrent_requests_and_processes() {
    let app = caps_app("backend = \"sqlite\"");
    let data = tempfile::tempdir().unwrap();
    let env = [
        ("AMIMONO_JOB", "one"),
        ("AMIMONO_DATA_DIR", data.path().to_str().unwrap()),
    ];
    // Two processes on one database file.
    let a = Host::start(app.path(), &env, &["caps"]);
    let b = Host::start(app.path(), &env, &["caps"]);
    let urls = [a.url("caps").to_string(), b.url("caps").to_string()];
    assert_all_distinct(hammer(&urls, 8, 25, "/kv/data/incr/hits"));
    // Typed compare-and-swap under contention loses nothing either.
    let lengths = hammer(&urls, 4, 10, "/kv/data/push/list/x");
    assert_all_distinct(lengths);
}

/// A `redis-server` on a free loopback port, stopped on drop.
struct RedisServer {
    child: Child,
    url: String,
}

impl RedisServer {
    fn start() -> RedisServer {
        let port = free_port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("starting redis-server (`cargo xtask test` installs Debian's redis-server)");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn redis_increments_are_atomic_across_replicas() {
    let redis = RedisServer::start();
    let app = caps_app(&format!("backend = \"redis\"\nurl = \"{}\"", redis.url));
    let env = [("AMIMONO_JOB", "one")];
    let replicas: Vec<Host> = (0..2)
        .map(|_| Host::start(app.path(), &env, &["caps"]))
        .collect();
    let urls: Vec<String> = replicas.iter().map(|h| h.url("caps").to_string()).collect();
    assert_all_distinct(hammer(&urls, 8, 25, "/kv/data/incr/hits"));
    assert_all_distinct(hammer(&urls, 4, 10, "/kv/data/push/list/x"));
    // What one replica writes, the other reads.
    assert_eq!(
        get(&format!("{}/kv/data/set/shared/yes", urls[0])).body,
        "set"
    );
    assert_eq!(get(&format!("{}/kv/data/get/shared", urls[1])).body, "yes");
    let keys = get(&format!("{}/kv/data/keys", urls[1])).body;
    assert!(keys.lines().any(|k| k == "shared"), "{keys}");
}
