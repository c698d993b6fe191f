//! The dashboard's OTLP receiver: `POST /v1/traces` bodies (OTLP
//! HTTP/protobuf, decoded with the OpenTelemetry project's definitions in
//! `opentelemetry-proto`) kept as the most recent traces, each drawn as a
//! waterfall.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};

/// Traces kept.
pub const KEPT_TRACES: usize = 100;
/// Spans kept per trace.
pub const SPANS_PER_TRACE: usize = 200;

/// One span as received.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SpanRecord {
    /// Hex span id.
    pub span_id: String,
    /// Hex parent span id (empty for a root).
    pub parent_id: String,
    /// The span's name.
    pub name: String,
    /// The service (`<app>/<job>`) that sent it.
    pub service: String,
    /// The component it ran in.
    pub component: String,
    /// Unix start, ns.
    pub start_ns: u64,
    /// Unix end, ns.
    pub end_ns: u64,
    /// Whether its status is an error.
    pub failed: bool,
}

/// The most recent traces, newest last.
#[derive(Debug, Default)]
pub struct SpanStore {
    traces: BTreeMap<String, Vec<SpanRecord>>,
    order: VecDeque<String>,
}

fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    })
}

impl SpanStore {
    /// Adds the spans of one OTLP export body; an error if it is not one.
    pub fn receive(&mut self, body: &[u8]) -> Result<usize, prost::DecodeError> {
        let request = ExportTraceServiceRequest::decode(body)?;
        let mut received = 0;
        for resource_spans in request.resource_spans {
            let resource = resource_spans.resource.unwrap_or_default();
            let service = text(&resource.attributes, "service.name").unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    let trace_id = hex::encode(&span.trace_id);
                    let record = SpanRecord {
                        span_id: hex::encode(&span.span_id),
                        parent_id: hex::encode(&span.parent_span_id),
                        component: text(&span.attributes, "amimono.component").unwrap_or_default(),
                        name: span.name,
                        service: service.clone(),
                        start_ns: span.start_time_unix_nano,
                        end_ns: span.end_time_unix_nano.max(span.start_time_unix_nano),
                        // OTLP status code 2 is ERROR.
                        failed: span.status.is_some_and(|s| s.code == 2),
                    };
                    self.add(trace_id, record);
                    received += 1;
                }
            }
        }
        Ok(received)
    }

    fn add(&mut self, trace_id: String, span: SpanRecord) {
        if !self.traces.contains_key(&trace_id) {
            if self.order.len() >= KEPT_TRACES
                && let Some(oldest) = self.order.pop_front()
            {
                self.traces.remove(&oldest);
            }
            self.order.push_back(trace_id.clone());
        }
        let spans = self.traces.entry(trace_id).or_default();
        if spans.len() < SPANS_PER_TRACE {
            spans.push(span);
        }
    }

    /// The recent traces, newest first: (trace id, its spans).
    pub fn recent(&self, count: usize) -> Vec<(&str, &[SpanRecord])> {
        self.order
            .iter()
            .rev()
            .take(count)
            .filter_map(|id| Some((id.as_str(), self.traces.get(id)?.as_slice())))
            .collect()
    }

    /// One trace's spans.
    pub fn trace(&self, id: &str) -> Option<&[SpanRecord]> {
        self.traces.get(id).map(Vec::as_slice)
    }
}

/// One row of a waterfall: a span placed on the trace's time line.
#[derive(Debug, Clone, Serialize)]
pub struct WaterfallRow {
    /// The span.
    pub span: SpanRecord,
    /// Nesting depth (0 for roots and spans whose parent was not received).
    pub depth: usize,
    /// Start, % of the trace's duration from its start.
    pub offset_percent: f64,
    /// Duration, % of the trace's duration (at least a sliver).
    pub width_percent: f64,
    /// Duration, µs.
    pub micros: f64,
}

/// The spans of one trace in start order, each under its parent.
pub fn waterfall(spans: &[SpanRecord]) -> Vec<WaterfallRow> {
    let start = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
    let end = spans.iter().map(|s| s.end_ns).max().unwrap_or(start);
    let total = end.saturating_sub(start).max(1) as f64;
    let by_id: BTreeMap<&str, &SpanRecord> =
        spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let depth = |span: &SpanRecord| {
        let mut depth = 0;
        let mut parent = span.parent_id.as_str();
        while let Some(up) = by_id.get(parent) {
            depth += 1;
            parent = up.parent_id.as_str();
            if depth > SPANS_PER_TRACE {
                break;
            }
        }
        depth
    };
    let mut ordered: Vec<&SpanRecord> = spans.iter().collect();
    ordered.sort_by_key(|s| (s.start_ns, std::cmp::Reverse(s.end_ns)));
    ordered
        .into_iter()
        .map(|span| WaterfallRow {
            depth: depth(span),
            offset_percent: (span.start_ns - start) as f64 / total * 100.0,
            width_percent: ((span.end_ns - span.start_ns) as f64 / total * 100.0).max(0.5),
            micros: (span.end_ns - span.start_ns) as f64 / 1000.0,
            span: span.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: &str, start: u64, end: u64) -> SpanRecord {
        SpanRecord {
            span_id: id.into(),
            parent_id: parent.into(),
            name: id.into(),
            service: "hello/web".into(),
            component: "frontend".into(),
            start_ns: start,
            end_ns: end,
            failed: false,
        }
    }

    #[test]
    fn a_waterfall_nests_children_under_their_parents_in_time() {
        let spans = [
            span("b", "a", 100, 600),
            span("a", "", 0, 1000),
            span("c", "b", 200, 300),
        ];
        let rows = waterfall(&spans);
        let names: Vec<(&str, usize)> = rows
            .iter()
            .map(|r| (r.span.name.as_str(), r.depth))
            .collect();
        assert_eq!(names, [("a", 0), ("b", 1), ("c", 2)]);
        assert_eq!(rows[1].offset_percent, 10.0);
        assert_eq!(rows[1].width_percent, 50.0);
    }

    #[test]
    fn old_traces_make_room_for_new_ones_and_garbage_is_refused() {
        let mut store = SpanStore::default();
        for i in 0..(KEPT_TRACES + 5) {
            store.add(format!("{i:032x}"), span("a", "", 0, 1));
        }
        assert_eq!(store.recent(usize::MAX).len(), KEPT_TRACES);
        assert_eq!(store.recent(1)[0].0, format!("{:032x}", KEPT_TRACES + 4));
        assert!(store.trace(&format!("{:032x}", 0)).is_none());
        assert!(store.receive(b"\xff\xff\xff not protobuf").is_err());
    }
}
