//! `amimono probe <url>`: one `GET`, exit 0 on a 2xx answer. A container
//! healthcheck for images with no shell or curl (Compose runs it inside
//! the container against the job's admin listener).

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// Most bytes of an answer read (to show why a probe failed).
const MAX_ANSWER: usize = 4096;

/// Asks `url` once within `timeout`: `Ok` on a 2xx status, else an error
/// saying what answered.
pub async fn probe(url: &str, timeout: Duration) -> Result<()> {
    let uri: hyper::Uri = url
        .parse()
        .with_context(|| format!("`{url}` is not a URL"))?;
    if uri.scheme_str() != Some("http") {
        bail!("`{url}`: probes use plain `http://` URLs");
    }
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let request = hyper::Request::get(uri)
        .body(Empty::new())
        .context("building the request")?;
    let ask = async {
        let response = client.request(request).await?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .unwrap_or_default();
        Ok::<_, hyper_util::client::legacy::Error>((status, body))
    };
    let (status, body) = tokio::time::timeout(timeout, ask)
        .await
        .with_context(|| format!("{url}: no answer within {} ms", timeout.as_millis()))?
        .with_context(|| format!("{url}: cannot connect"))?;
    if !status.is_success() {
        bail!(
            "{url} answered {status}: {}",
            String::from_utf8_lossy(&body).trim()
        );
    }
    Ok(())
}
