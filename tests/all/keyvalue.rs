//! Key-value stores: the hello visit counter (durable with SQLite, the
//! default; a failed greeting counts nothing), store grants, typed values
//! with compare-and-swap, indexes, increments that stay atomic under
//! concurrent writers — across requests with SQLite and across replicas with
//! Redis (a real `redis-server`) — and acknowledged SQLite writes that
//! survive a `kill -9` in the middle of a burst.

use amimono_tests::{Host, free_port, get, hello_app, hello_bindings, temp_app};
use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

#[test]
fn a_failed_greeting_counts_no_visit() {
    // Split hello: the frontend in `web`, the greeter in `backend`, visits
    // counted in SQLite.
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let (bindings, web_port, _) = hello_bindings(dir.path());
    let bindings = bindings.to_str().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let start_backend = || {
        let host = Host::start(
            &hello_app(),
            &[
                ("AMIMONO_JOB", "backend"),
                ("AMIMONO_BINDINGS", bindings),
                ("AMIMONO_DATA_DIR", data_dir),
            ],
            &[],
        );
        host.wait_running();
        host
    };
    let backend = start_backend();
    let web = Host::start(
        &hello_app(),
        &[
            ("AMIMONO_JOB", "web"),
            ("AMIMONO_BINDINGS", bindings),
            ("AMIMONO_DATA_DIR", data_dir),
        ],
        &["frontend"],
    );
    let hello = format!("http://127.0.0.1:{web_port}/hello/ada");
    let first = get(&hello);
    assert_eq!(first.status, 200, "{first:?}");
    assert!(first.body.contains("(visit 1)"), "{first:?}");
    // The greeter's job is killed: greetings fail, and count nothing.
    drop(backend);
    for _ in 0..3 {
        let failed = get(&hello);
        assert_eq!(failed.status, 500, "{failed:?}");
    }
    assert!(
        web.wait_for_log("greeter.greet-in", Duration::from_secs(5)),
        "{}",
        web.stderr()
    );
    // Back up: the next greeting is the second visit. (A call on a
    // connection the killed job left behind may still fail once; a failure
    // must not count, so retrying is safe and changes nothing.)
    let _backend = start_backend();
    let deadline = Instant::now() + Duration::from_secs(30);
    let second = loop {
        let reply = get(&hello);
        if reply.status == 200 || Instant::now() > deadline {
            break reply;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(second.status, 200, "{second:?}");
    assert!(second.body.contains("(visit 2)"), "{second:?}");
    // A name the greeter refuses (a greeter error, not a transport failure)
    // counts nothing either.
    let refused = get(&format!("http://127.0.0.1:{web_port}/hello/a%2Fb"));
    assert_eq!(refused.status, 400, "{refused:?}");
    let third = get(&hello);
    assert!(third.body.contains("(visit 3)"), "{third:?}");
}

fn caps_app(backend: &str) -> tempfile::TempDir {
    temp_app(&format!(
        "[app]\nname = \"kv\"\n\n[keyvalue]\n{backend}\n\n[components.caps]\nbinding = \"http\"\nsource = \"{{wasm:fixture_capabilities}}\"\nkeyvalue = [\"data\", \"other\"]\nconfig = {{ unused = \"1\" }}\n\n[jobs.one]\ncomponents = [\"caps\"]\n"
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

/// GETs `path` on `agent`: status and body, or `None` when the request got
/// no answer (connection refused or reset: the host is gone).
fn try_get(agent: &ureq::Agent, url: &str) -> Option<(u16, String)> {
    let mut response = agent.get(url).call().ok()?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().ok()?;
    Some((status, body))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

#[test]
fn acknowledged_sqlite_writes_survive_kill_9_in_the_middle_of_a_burst() {
    use std::os::unix::process::ExitStatusExt;
    let app = caps_app("backend = \"sqlite\"");
    let data = tempfile::tempdir().unwrap();
    let env = [
        ("AMIMONO_JOB", "one"),
        ("AMIMONO_DATA_DIR", data.path().to_str().unwrap()),
    ];
    let mut host = Host::start(app.path(), &env, &["caps"]);
    let url = host.url("caps").to_string();

    // Three threads set distinct keys, one increments a counter; each
    // records what got a 2xx answer, and stops at its first request without
    // an answer (the host is gone).
    let acknowledged: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let counted = Arc::new(AtomicU64::new(0));
    let increments_sent = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for t in 0..3 {
        let (url, acknowledged) = (url.clone(), acknowledged.clone());
        writers.push(std::thread::spawn(move || {
            let agent = agent();
            for i in 0u64.. {
                let (key, value) = (format!("t{t}-{i}"), format!("v{t}-{i}"));
                match try_get(&agent, &format!("{url}/kv/data/set/{key}/{value}")) {
                    Some((200..=299, body)) if body == "set" => {
                        acknowledged.lock().unwrap().push((key, value));
                    }
                    Some(_) => {}
                    None => break,
                }
            }
        }));
    }
    {
        let (url, counted, sent) = (url.clone(), counted.clone(), increments_sent.clone());
        writers.push(std::thread::spawn(move || {
            let agent = agent();
            loop {
                sent.fetch_add(1, Ordering::SeqCst);
                match try_get(&agent, &format!("{url}/kv/data/incr/hits")) {
                    Some((200..=299, body)) => {
                        let n: u64 = body.trim().parse().unwrap();
                        counted.fetch_max(n, Ordering::SeqCst);
                    }
                    Some(_) => {}
                    None => break,
                }
            }
        }));
    }

    // Kill -9 once enough writes were acknowledged, while every writer is
    // still sending.
    let deadline = Instant::now() + Duration::from_secs(120);
    while acknowledged.lock().unwrap().len() < 300 || counted.load(Ordering::SeqCst) < 100 {
        assert!(
            Instant::now() < deadline,
            "the burst did not get going; stderr:\n{}",
            host.stderr()
        );
        assert!(
            writers.iter().all(|w| !w.is_finished()),
            "a writer stopped before the kill; stderr:\n{}",
            host.stderr()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let killed = Command::new("kill")
        .args(["-KILL", &host.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    for writer in writers {
        writer.join().unwrap();
    }
    let status = host
        .wait_exit(Duration::from_secs(30))
        .expect("the killed host exits");
    assert_eq!(status.signal(), Some(9), "{status:?}");
    drop(host);
    // No clean shutdown: the write-ahead log is still there to recover.
    assert!(data.path().join("kv.sqlite-wal").exists());

    let acknowledged = acknowledged.lock().unwrap().clone();
    let counted = counted.load(Ordering::SeqCst);
    let sent = increments_sent.load(Ordering::SeqCst);
    let host = Host::start(app.path(), &env, &["caps"]);
    let url = host.url("caps");
    let agent = agent();
    let lost: Vec<&(String, String)> = acknowledged
        .iter()
        .filter(|(key, value)| {
            try_get(&agent, &format!("{url}/kv/data/get/{key}")) != Some((200, value.clone()))
        })
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes were lost after kill -9, e.g. {:?}",
        lost.len(),
        acknowledged.len(),
        &lost[..lost.len().min(5)]
    );
    // Every acknowledged increment is there; at most the ones sent.
    let (status, hits) = try_get(&agent, &format!("{url}/kv/data/get/hits")).unwrap();
    assert_eq!(status, 200, "{hits}");
    let hits: u64 = hits.parse().unwrap();
    assert!(
        (counted..=sent).contains(&hits),
        "counter {hits}: {counted} increments acknowledged, {sent} sent"
    );
}
