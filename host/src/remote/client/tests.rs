//! The client against real loopback listeners: where calls go when an
//! address refuses connections, and which failures are retried.

use super::*;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A callee answering every call 200 with no results; counts the calls.
async fn answering() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_: hyper::Request<Incoming>| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::new(),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, calls)
}

/// A callee that takes each connection and closes it without answering
/// (the request was sent: the callee may have run); counts connections.
async fn hanging_up() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let mut buffer = [0u8; 4096];
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buffer).await;
            drop(stream);
        }
    });
    (url, connections)
}

/// An address where nothing listens (connections are refused).
async fn refusing() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

fn target(urls: &[&str]) -> RemoteTarget {
    let urls: Vec<String> = urls.iter().map(|u| u.to_string()).collect();
    RemoteTarget::with_urls("greeter", &urls, Duration::from_secs(10)).unwrap()
}

fn function(idempotent: bool) -> RemoteFunction {
    RemoteFunction {
        qualified: "t:t/greeter@0.1.0#poke".to_string(),
        name: "poke".to_string(),
        params: Vec::new(),
        results: Vec::new(),
        idempotent,
    }
}

fn client() -> RemoteClient {
    RemoteClient::new("rev", "web", Authentication::Disabled)
}

#[tokio::test]
async fn a_call_refused_by_one_address_goes_to_another_whatever_the_function() {
    let (live, calls) = answering().await;
    let dead = refusing().await;
    let target = target(&[&dead, &live]);
    let client = client();
    for _ in 0..6 {
        client
            .call(&target, &function(false), &[], &mut [])
            .await
            .unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 6);
    // Ejected at the first refusal: calls no longer try it.
    let ejected = &target.endpoints().current()[0];
    assert_eq!(ejected.address, dead);
    assert!(!ejected.breaker.is_closed());
    assert!(target.circuit_closed());
}

#[tokio::test]
async fn when_every_address_refuses_calls_fail_then_fail_fast_naming_them() {
    let (one, two) = (refusing().await, refusing().await);
    let target = target(&[&one, &two]);
    let client = client();
    let first = client
        .call(&target, &function(false), &[], &mut [])
        .await
        .unwrap_err();
    assert!(
        matches!(first, RemoteCallError::Transport { .. }),
        "{first}"
    );
    let next = client
        .call(&target, &function(false), &[], &mut [])
        .await
        .unwrap_err();
    let RemoteCallError::CircuitOpen { address, .. } = &next else {
        panic!("{next}");
    };
    assert_eq!(address, &format!("{one}, {two}"));
    assert!(
        next.to_string()
            .contains("not sent: the callee failed repeatedly at every address"),
        "{next}"
    );
}

#[tokio::test]
async fn a_call_that_was_sent_is_retried_elsewhere_only_when_idempotent() {
    let (one, first_connections) = hanging_up().await;
    let (two, second_connections) = hanging_up().await;
    let client = client();
    // Not idempotent: one attempt, whatever the other address.
    let once = target(&[&one, &two]);
    let error = client
        .call(&once, &function(false), &[], &mut [])
        .await
        .unwrap_err();
    assert!(
        matches!(error, RemoteCallError::Transport { .. }),
        "{error}"
    );
    let connections =
        || first_connections.load(Ordering::SeqCst) + second_connections.load(Ordering::SeqCst);
    assert_eq!(connections(), 1);
    // Idempotent: retried, the first retry at the other address.
    let again = target(&[&one, &two]);
    let error = client
        .call(&again, &function(true), &[], &mut [])
        .await
        .unwrap_err();
    assert!(
        matches!(error, RemoteCallError::Transport { .. }),
        "{error}"
    );
    assert_eq!(connections(), 1 + IDEMPOTENT_ATTEMPTS as usize);
    assert!(first_connections.load(Ordering::SeqCst) >= 2);
    assert!(second_connections.load(Ordering::SeqCst) >= 1);
}
