//! The raw hyper baseline of PF2: a minimal HTTP/1.1 server that answers
//! every POST by echoing its body, with the headers an amimono callee adds
//! (content type and a revision of the same length). It runs in its own
//! process, like an `amimono run` callee, with the same kind of runtime
//! (multi-threaded tokio, one worker per core) and keep-alive connections
//! with `TCP_NODELAY`.
//!
//! Started as `amimono-bench --raw-echo-server <port>` (0 = any free port);
//! prints `listening on <address>` on stdout once it accepts connections and
//! exits when its stdin is closed, so it never outlives the benchmark.

use amimono::remote::protocol::{CONTENT_TYPE, HEADER_REVISION};
use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::io::Write;
use tokio::net::TcpListener;

/// The command-line flag that selects this mode.
pub const FLAG: &str = "--raw-echo-server";

/// A revision of the length the host's has (16 hex digits).
const DUMMY_REVISION: &str = "0000000000000000";

/// Serves on `127.0.0.1:<port>` until stdin is closed.
pub fn run(port: u16) -> Result<()> {
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        std::process::exit(0);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(port))
}

async fn serve(port: u16) -> Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("listening on 127.0.0.1:{port}"))?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", listener.local_addr()?)?;
        out.flush()?;
    }
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), hyper::service::service_fn(echo))
                .await;
        });
    }
}

async fn echo(
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let mut response = hyper::Response::new(Full::new(body));
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static(CONTENT_TYPE),
    );
    headers.insert(
        HeaderName::from_static(HEADER_REVISION),
        HeaderValue::from_static(DUMMY_REVISION),
    );
    Ok(response)
}
