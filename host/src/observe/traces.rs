//! Traces: a span per inbound HTTP request, per remote call (client side
//! and server side) and per sampled local call, exported over OTLP
//! (HTTP/protobuf, the `opentelemetry-otlp` crate) when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//! is set. The W3C `traceparent` is taken from incoming requests and sent
//! with remote calls and with the components' outgoing HTTP requests.
//!
//! Unset, no tracer exists and no span is made: an incoming `traceparent`
//! is only passed on unchanged, so a trace started upstream stays whole.
//! The usual `OTEL_*` variables are honoured by the OpenTelemetry SDK
//! (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`,
//! `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`); the service name defaults to
//! `<app>/<job>`.

use crate::observe::metrics::JobIdentity;
use anyhow::{Context as _, Result, bail};
use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{
    Span as _, SpanContext, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use std::borrow::Cow;
use wasmtime_wasi_http::{WasiHttpHooks, default_send_request};

/// The span attribute naming the component a span ran in.
pub const COMPONENT_ATTRIBUTE: &str = "amimono.component";

/// Where a job's spans go: an OTLP exporter, or nowhere (the default).
#[derive(Clone, Default)]
pub struct Tracing {
    tracer: Option<SdkTracer>,
    provider: Option<SdkTracerProvider>,
}

impl std::fmt::Debug for Tracing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracing")
            .field("exporting", &self.is_on())
            .finish()
    }
}

/// Whether the environment asks for traces: an OTLP endpoint is set and the
/// SDK is not disabled.
fn wanted(variable: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| variable(name).is_some_and(|v| !v.trim().is_empty());
    let disabled = variable("OTEL_SDK_DISABLED").is_some_and(|v| v.trim() == "true")
        || variable("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim() == "none");
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

impl Tracing {
    /// No tracer: no span is made, nothing is exported.
    pub fn off() -> Tracing {
        Tracing::default()
    }

    /// An OTLP exporter if the environment names an endpoint, else
    /// [`off`](Self::off).
    pub fn from_environment(identity: &JobIdentity<'_>) -> Result<Tracing> {
        let variable = |name: &str| std::env::var(name).ok();
        if !wanted(variable) {
            return Ok(Tracing::off());
        }
        for name in [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            if let Some(protocol) = variable(name)
                && protocol.trim() != "http/protobuf"
            {
                bail!(
                    "{name}={protocol} is not supported: Amimono exports traces over OTLP \
                     http/protobuf (unset it, or set it to http/protobuf)"
                );
            }
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .build()
            .context("setting up the OTLP trace exporter (OTEL_EXPORTER_OTLP_ENDPOINT)")?;
        let mut resource = Resource::builder().with_attributes([
            KeyValue::new("service.namespace", identity.app.to_string()),
            KeyValue::new("service.version", identity.revision.to_string()),
            KeyValue::new("service.instance.id", identity.replica.to_string()),
            KeyValue::new("amimono.app", identity.app.to_string()),
            KeyValue::new("amimono.job", identity.job.to_string()),
            KeyValue::new("amimono.revision", identity.revision.to_string()),
            KeyValue::new("amimono.replica", i64::from(identity.replica)),
        ]);
        if variable("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name(format!("{}/{}", identity.app, identity.job));
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        let tracer = provider.tracer("amimono");
        Ok(Tracing {
            tracer: Some(tracer),
            provider: Some(provider),
        })
    }

    /// Whether spans are made.
    pub fn is_on(&self) -> bool {
        self.tracer.is_some()
    }

    /// Starts a span under `parent`, its name and attributes made only if
    /// spans are made. Off, the "span" is `parent` itself, passed on.
    pub fn start(
        &self,
        parent: &TraceContext,
        kind: SpanKind,
        describe: impl FnOnce() -> (Cow<'static, str>, Vec<KeyValue>),
    ) -> ActiveSpan {
        let Some(tracer) = &self.tracer else {
            return ActiveSpan {
                span: None,
                context: parent.clone(),
            };
        };
        let (name, attributes) = describe();
        let parent = match &parent.0 {
            Some(context) => Context::new().with_remote_span_context(context.clone()),
            None => Context::new(),
        };
        let span = tracer
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(attributes)
            .start_with_context(tracer, &parent);
        let context = TraceContext::of(span.span_context());
        ActiveSpan {
            span: Some(span),
            context,
        }
    }

    /// Exports the spans still buffered and waits for that (bounded by the
    /// exporter's timeout, `OTEL_EXPORTER_OTLP_TIMEOUT`); tracing goes on.
    /// Runs off the async threads: the exporter blocks.
    pub async fn export_buffered(&self) {
        let Some(provider) = self.provider.clone() else {
            return;
        };
        let flushed = tokio::task::spawn_blocking(move || provider.force_flush()).await;
        if let Ok(Err(e)) = flushed {
            tracing::warn!(error = %e, "exporting the last spans to the OTLP endpoint failed");
        }
    }
}

/// A span being recorded; it ends when dropped.
pub struct ActiveSpan {
    span: Option<opentelemetry_sdk::trace::Span>,
    context: TraceContext,
}

impl ActiveSpan {
    /// What work under this span carries: the span itself, or the parent
    /// passed on when no span is made.
    pub fn context(&self) -> &TraceContext {
        &self.context
    }

    /// Marks the span failed.
    pub fn fail(&mut self, description: impl Into<Cow<'static, str>>) {
        if let Some(span) = &mut self.span {
            span.set_status(Status::error(description));
        }
    }

    /// Adds an attribute known only at the end (a status code).
    pub fn attribute(&mut self, attribute: impl FnOnce() -> KeyValue) {
        if let Some(span) = &mut self.span {
            span.set_attribute(attribute());
        }
    }
}

/// The trace a piece of work belongs to: its parent span's context, or none.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TraceContext(Option<SpanContext>);

/// The headers of the W3C trace context.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

impl TraceContext {
    /// No trace.
    pub fn none() -> TraceContext {
        TraceContext(None)
    }

    fn of(context: &SpanContext) -> TraceContext {
        TraceContext(context.is_valid().then(|| context.clone()))
    }

    /// The span active in the calling code's OpenTelemetry context (an
    /// embedder's own span around a native call), if any.
    pub fn current() -> TraceContext {
        // Borrowed, not cloned: this runs on every native call.
        Context::map_current(|current| TraceContext::of(current.span().span_context()))
    }

    /// The context an incoming request's `traceparent` and `tracestate`
    /// carry (none if absent or malformed).
    pub fn from_headers(headers: &HeaderMap) -> TraceContext {
        if !headers.contains_key(TRACEPARENT) {
            return TraceContext::none();
        }
        let context = TraceContextPropagator::new().extract(&Headers(headers));
        TraceContext::of(context.span().span_context())
    }

    /// Sets `traceparent` and `tracestate` in `headers` (replacing any).
    pub fn insert_into(&self, headers: &mut HeaderMap) {
        let Some(context) = &self.0 else {
            return;
        };
        let context = Context::new().with_remote_span_context(context.clone());
        TraceContextPropagator::new().inject_context(&context, &mut HeadersMut(headers));
    }

    /// The trace id in hex, as log lines carry it.
    pub fn trace_id(&self) -> Option<String> {
        self.0.as_ref().map(|c| c.trace_id().to_string())
    }
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeadersMut<'a>(&'a mut HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The `wasi:http` hooks of an instance: its outgoing requests carry the
/// trace of the work it is doing.
#[derive(Default)]
pub struct PropagatingHooks {
    /// The trace of the request or call the instance serves now.
    pub trace: TraceContext,
}

impl WasiHttpHooks for PropagatingHooks {
    fn send_request(
        &mut self,
        mut request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        _ = fut;
        self.trace.insert_into(request.headers_mut());
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A native call continues the embedder's span: the current
    /// OpenTelemetry context is where its parent comes from.
    #[test]
    fn the_current_context_is_the_callers_span_or_none() {
        assert_eq!(TraceContext::current(), TraceContext::none());
        let mut headers = HeaderMap::new();
        headers.insert(
            TRACEPARENT,
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        let embedder = TraceContext::from_headers(&headers);
        let Some(span) = &embedder.0 else {
            panic!("the traceparent was not read");
        };
        let _attached = Context::new()
            .with_remote_span_context(span.clone())
            .attach();
        assert_eq!(TraceContext::current(), embedder);
    }

    #[test]
    fn an_endpoint_turns_tracing_on_unless_the_sdk_is_disabled() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(!wanted(env(&[])));
        assert!(!wanted(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])));
        assert!(wanted(env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:4318"
        )])));
        assert!(wanted(env(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://127.0.0.1:4318/v1/traces"
        )])));
        assert!(!wanted(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_SDK_DISABLED", "true")
        ])));
    }

    #[test]
    fn a_traceparent_is_read_and_written_back_unchanged() {
        let mut headers = HeaderMap::new();
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        headers.insert(TRACEPARENT, HeaderValue::from_static(value));
        let context = TraceContext::from_headers(&headers);
        assert_eq!(
            context.trace_id().as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        let mut out = HeaderMap::new();
        context.insert_into(&mut out);
        assert_eq!(
            out.get(TRACEPARENT).and_then(|v| v.to_str().ok()),
            Some(value)
        );
    }

    #[test]
    fn a_malformed_traceparent_is_no_trace() {
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static("00-zz-11-01"));
        assert_eq!(TraceContext::from_headers(&headers), TraceContext::none());
    }

    #[test]
    fn off_a_span_passes_its_parent_on() {
        let mut headers = HeaderMap::new();
        headers.insert(
            TRACEPARENT,
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        let parent = TraceContext::from_headers(&headers);
        let span = Tracing::off().start(&parent, SpanKind::Server, || unreachable!());
        assert_eq!(span.context(), &parent);
    }
}
