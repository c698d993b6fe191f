//! Endpoint sets with an injected resolver: selection, ejection and
//! re-admission, resolution and re-resolution.

use super::*;
use crate::remote::resilience::FIRST_OPEN;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU32;

/// A resolver answering from a table, counting its lookups.
#[derive(Default)]
struct Table {
    answers: Mutex<BTreeMap<String, std::io::Result<Vec<SocketAddr>>>>,
    lookups: AtomicU32,
}

impl Table {
    fn set(&self, host: &str, addresses: &[&str]) {
        let addresses = addresses.iter().map(|a| a.parse().unwrap()).collect();
        self.answers
            .lock()
            .unwrap()
            .insert(host.to_string(), Ok(addresses));
    }

    fn fail(&self, host: &str) {
        self.answers
            .lock()
            .unwrap()
            .insert(host.to_string(), Err(std::io::Error::other("no such host")));
    }

    fn lookups(&self) -> u32 {
        self.lookups.load(Ordering::SeqCst)
    }
}

impl Resolve for Table {
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> Resolving<'a> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let answer = match self.answers.lock().unwrap().get(host) {
            Some(Ok(addresses)) => Ok(addresses
                .iter()
                .map(|a| SocketAddr::new(a.ip(), port))
                .collect()),
            Some(Err(e)) => Err(std::io::Error::other(e.to_string())),
            None => Ok(Vec::new()),
        };
        Box::pin(async move { answer })
    }
}

fn endpoints(urls: &[&str], table: &Arc<Table>) -> Endpoints {
    let urls: Vec<String> = urls.iter().map(|u| u.to_string()).collect();
    Endpoints::new("greeter", &urls, table.clone()).unwrap()
}

/// The address of the endpoint `pick` chose (panics if none).
fn picked(endpoints: &Endpoints, now: Instant) -> String {
    match endpoints.pick(now, &[], true) {
        Pick::Endpoint(endpoint) => endpoint.address.clone(),
        other => panic!("nothing picked: {other:?}"),
    }
}

fn addresses(endpoints: &Endpoints) -> Vec<String> {
    endpoints
        .current()
        .iter()
        .map(|e| e.address.clone())
        .collect()
}

const A: &str = "http://127.0.0.1:9000";
const B: &str = "http://127.0.0.1:9001";

#[test]
fn calls_go_round_robin_over_the_endpoints() {
    let table = Arc::new(Table::default());
    let set = endpoints(&[A, B], &table);
    let now = Instant::now();
    let picks: Vec<String> = (0..6).map(|_| picked(&set, now)).collect();
    assert_eq!(picks.iter().filter(|p| *p == A).count(), 3, "{picks:?}");
    assert_eq!(picks.iter().filter(|p| *p == B).count(), 3, "{picks:?}");
    // Alternating: never the same one twice in a row.
    assert!(picks.windows(2).all(|w| w[0] != w[1]), "{picks:?}");
}

#[test]
fn an_ejected_endpoint_is_skipped_then_probed_and_readmitted() {
    let table = Arc::new(Table::default());
    let set = endpoints(&[A, B], &table);
    let t0 = Instant::now();
    let a = set.current()[0].clone();
    assert_eq!(a.address, A);
    a.breaker.eject(t0);
    assert!(set.any_admitted());
    for _ in 0..4 {
        assert_eq!(picked(&set, t0), B);
    }
    // After the ejection, one call probes it; the others keep going to B.
    let t1 = t0 + FIRST_OPEN;
    let picks: Vec<String> = (0..4).map(|_| picked(&set, t1)).collect();
    assert_eq!(picks.iter().filter(|p| *p == A).count(), 1, "{picks:?}");
    // The probe succeeded: A is back in the rotation.
    a.breaker.succeeded();
    let picks: Vec<String> = (0..4).map(|_| picked(&set, t1)).collect();
    assert_eq!(picks.iter().filter(|p| *p == A).count(), 2, "{picks:?}");
}

#[test]
fn when_every_endpoint_is_ejected_the_nearest_probe_is_named() {
    let table = Arc::new(Table::default());
    let set = endpoints(&[A, B], &table);
    let t0 = Instant::now();
    let current = set.current();
    current[0].breaker.eject(t0);
    current[1].breaker.eject(t0 + Duration::from_millis(100));
    assert!(!set.any_admitted());
    match set.pick(t0 + Duration::from_millis(200), &[], true) {
        Pick::Ejected(wait) => assert_eq!(wait, FIRST_OPEN - Duration::from_millis(200)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        set.describe(),
        "http://127.0.0.1:9000, http://127.0.0.1:9001"
    );
}

#[test]
fn tried_endpoints_are_avoided_and_reused_only_when_allowed() {
    let table = Arc::new(Table::default());
    let set = endpoints(&[A, B], &table);
    let now = Instant::now();
    let a = set.current()[0].clone();
    let b = set.current()[1].clone();
    for _ in 0..3 {
        match set.pick(now, std::slice::from_ref(&a), false) {
            Pick::Endpoint(e) => assert!(Arc::ptr_eq(&e, &b)),
            other => panic!("{other:?}"),
        }
    }
    let both = [a, b];
    assert!(matches!(set.pick(now, &both, false), Pick::Ejected(_)));
    assert!(matches!(set.pick(now, &both, true), Pick::Endpoint(_)));
}

#[tokio::test]
async fn literal_addresses_are_never_resolved() {
    let table = Arc::new(Table::default());
    let set = endpoints(&["http://127.0.0.1:9000/"], &table);
    set.refresh_if_due().await;
    set.resolve_now().await;
    assert_eq!(table.lookups(), 0);
    let endpoint = set.current()[0].clone();
    assert_eq!(endpoint.address, A);
    assert_eq!(
        endpoint.uri.to_string(),
        "http://127.0.0.1:9000/amimono/v1/call/greeter"
    );
    assert!(endpoint.host.is_none());
}

#[tokio::test]
async fn a_name_spreads_calls_over_every_address_it_resolves_to() {
    let table = Arc::new(Table::default());
    table.set("backend", &["10.0.0.2:0", "10.0.0.1:0", "10.0.0.2:0"]);
    let set = endpoints(&["http://backend:9000/base"], &table);
    assert!(matches!(
        set.pick(Instant::now(), &[], true),
        Pick::NoAddress
    ));
    set.refresh_if_due().await;
    assert_eq!(
        addresses(&set),
        [
            "http://backend:9000/base (10.0.0.1:9000)",
            "http://backend:9000/base (10.0.0.2:9000)"
        ]
    );
    let endpoint = set.current()[0].clone();
    assert_eq!(
        endpoint.uri.to_string(),
        "http://10.0.0.1:9000/base/amimono/v1/call/greeter"
    );
    assert_eq!(
        endpoint.host.as_ref().and_then(|h| h.to_str().ok()),
        Some("backend:9000")
    );
    let now = Instant::now();
    let picks: Vec<String> = (0..4).map(|_| picked(&set, now)).collect();
    assert!(picks.windows(2).all(|w| w[0] != w[1]), "{picks:?}");
    // Names and literal URLs mix: every endpoint of every URL.
    let mixed = endpoints(&["http://backend:9000", B], &table);
    mixed.resolve_now().await;
    assert_eq!(mixed.current().len(), 3);
}

#[tokio::test]
async fn names_are_resolved_again_only_when_the_last_resolution_is_old() {
    let table = Arc::new(Table::default());
    table.set("backend", &["10.0.0.1:0"]);
    let set = endpoints(&["http://backend:9000"], &table);
    let start = Instant::now();
    set.refresh_if_due_at(start).await;
    assert_eq!(table.lookups(), 1);
    // Calls soon after do not resolve.
    for _ in 0..10 {
        set.refresh_if_due_at(start).await;
    }
    assert_eq!(table.lookups(), 1);
    // A call after REFRESH_EVERY starts one resolution in the background.
    table.set("backend", &["10.0.0.1:0", "10.0.0.3:0"]);
    let later = Instant::now() + REFRESH_EVERY + Duration::from_secs(1);
    set.refresh_if_due_at(later).await;
    set.refresh_if_due_at(later).await;
    for _ in 0..1000 {
        if set.current().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(table.lookups(), 2);
    assert_eq!(set.current().len(), 2);
}

#[tokio::test]
async fn re_resolving_keeps_the_state_of_addresses_still_there() {
    let table = Arc::new(Table::default());
    table.set("backend", &["10.0.0.1:0", "10.0.0.2:0"]);
    let set = endpoints(&["http://backend:9000"], &table);
    set.resolve_now().await;
    let first = set.current()[0].clone();
    first.breaker.eject(Instant::now());
    // 10.0.0.2 went away, 10.0.0.3 came.
    table.set("backend", &["10.0.0.3:0", "10.0.0.1:0"]);
    set.resolve_now().await;
    let now = set.current();
    assert_eq!(
        addresses(&set),
        [
            "http://backend:9000 (10.0.0.1:9000)",
            "http://backend:9000 (10.0.0.3:9000)"
        ]
    );
    assert!(
        Arc::ptr_eq(&now[0], &first),
        "the same endpoint, still ejected"
    );
    assert!(!now[0].breaker.is_closed());
}

#[tokio::test]
async fn a_name_that_stops_resolving_keeps_its_addresses() {
    let table = Arc::new(Table::default());
    table.set("backend", &["10.0.0.1:0"]);
    let set = endpoints(&["http://backend:9000"], &table);
    set.resolve_now().await;
    table.fail("backend");
    set.resolve_now().await;
    assert_eq!(addresses(&set), ["http://backend:9000 (10.0.0.1:9000)"]);
    table.set("backend", &[]);
    set.resolve_now().await;
    assert_eq!(set.current().len(), 1);
}

#[tokio::test]
async fn a_name_that_never_resolved_is_not_looked_up_on_every_call() {
    let table = Arc::new(Table::default());
    table.fail("backend");
    let set = endpoints(&["http://backend:9000"], &table);
    let start = Instant::now();
    set.refresh_if_due_at(start).await;
    for _ in 0..10 {
        set.refresh_if_due_at(start).await;
        assert!(matches!(set.pick(start, &[], true), Pick::NoAddress));
    }
    assert_eq!(table.lookups(), 1);
    assert_eq!(set.describe(), "http://backend:9000");
}

#[test]
fn only_plain_http_urls_with_a_host_are_taken() {
    let table = Arc::new(Table::default());
    let new = |url: &str| Endpoints::new("greeter", &[url.to_string()], table.clone());
    assert!(
        new("https://backend:9000")
            .unwrap_err()
            .contains("plain `http://` URLs")
    );
    assert!(new("not a url").is_err());
    assert!(Endpoints::new("greeter", &[], table.clone()).is_err());
    let v6 = new("http://[::1]:9000").unwrap();
    assert_eq!(v6.current().len(), 1, "an IPv6 literal is not a name");
}
