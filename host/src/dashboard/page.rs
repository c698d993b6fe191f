//! The dashboard page: a view model built from the dashboard's state and
//! rendered with an askama template (`host/templates/dashboard.html`,
//! checked at compile time, every value HTML-escaped). The call graph is an
//! SVG laid out here: one column per job, its components stacked in it.

use super::advice::Advice;
use super::graph::EdgeStats;
use super::spans::{SpanRecord, WaterfallRow};
use askama::Template;
use std::collections::BTreeMap;

/// A component of the app.
pub struct ComponentCard {
    /// Its label.
    pub label: String,
    /// `http`, `rpc` or `none`.
    pub binding: String,
}

/// A job of the app.
pub struct JobCard {
    /// Its name.
    pub name: String,
    /// Its replicas.
    pub replicas: u32,
    /// Its admin listeners.
    pub admin: Vec<String>,
    /// Why its metrics could not be read, if they could not.
    pub unreachable: Option<String>,
    /// Its components.
    pub components: Vec<ComponentCard>,
}

/// A job's column in the graph.
pub struct GroupBox {
    /// The job.
    pub job: String,
    /// Left.
    pub x: u32,
    /// Height.
    pub height: u32,
}

/// A component in the graph.
pub struct NodeBox {
    /// Its label.
    pub label: String,
    /// Its job.
    pub job: String,
    /// Left.
    pub x: u32,
    /// Top.
    pub y: u32,
}

/// An edge in the graph.
pub struct EdgeLine {
    /// Caller.
    pub from: String,
    /// Callee.
    pub to: String,
    /// `local` or `remote`.
    pub placement: String,
    /// SVG path.
    pub path: String,
    /// Where its label goes.
    pub label_x: i64,
    /// Where its label goes.
    pub label_y: i64,
    /// What its label says.
    pub label: String,
    /// How its label is anchored (`start`, `middle`).
    pub anchor: &'static str,
}

/// One row of an edge or method table, formatted.
pub struct EdgeRow {
    /// Caller.
    pub from: String,
    /// Callee.
    pub to: String,
    /// Method, or `*`.
    pub method: String,
    /// `local` or `remote`.
    pub placement: String,
    /// Calls so far.
    pub calls: String,
    /// Calls per second.
    pub rate: String,
    /// Error rate.
    pub errors: String,
    /// Median.
    pub p50: String,
    /// 99th percentile.
    pub p99: String,
    /// Bytes per second.
    pub bytes: String,
}

/// One recent trace in the list.
pub struct TraceRow {
    /// Its id.
    pub id: String,
    /// Its root span's name.
    pub root: String,
    /// Its spans.
    pub spans: usize,
    /// The services it crossed.
    pub services: String,
    /// Its duration.
    pub duration: String,
}

/// One log line.
pub struct LogLineView {
    /// When.
    pub time: String,
    /// Level.
    pub level: String,
    /// What.
    pub message: String,
    /// Its trace, if any.
    pub trace_id: String,
}

/// The recent lines of one component (or of a job's host).
pub struct ComponentLogs {
    /// The component, or `job <name>`.
    pub source: String,
    /// Newest last.
    pub lines: Vec<LogLineView>,
}

/// The whole page.
#[derive(Template)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    /// The app's name.
    pub app: String,
    /// Its revision.
    pub revision: String,
    /// Seconds between page reloads.
    pub refresh_seconds: u32,
    /// How old the metrics are.
    pub scraped: String,
    /// Its jobs.
    pub jobs: Vec<JobCard>,
    /// Graph size.
    pub graph_width: u32,
    /// Graph size.
    pub graph_height: u32,
    /// Job columns.
    pub groups: Vec<GroupBox>,
    /// Components.
    pub nodes: Vec<NodeBox>,
    /// Edges.
    pub edges: Vec<EdgeLine>,
    /// Edge table.
    pub edge_rows: Vec<EdgeRow>,
    /// Method table.
    pub method_rows: Vec<EdgeRow>,
    /// Placement advice, best first.
    pub advice: Vec<Advice>,
    /// Recent traces.
    pub traces: Vec<TraceRow>,
    /// The trace shown as a waterfall.
    pub waterfall_id: String,
    /// Its rows.
    pub waterfall: Vec<WaterfallRow>,
    /// Recent log lines per component.
    pub logs: Vec<ComponentLogs>,
}

const COLUMN: u32 = 380;
const NODE_WIDTH: u32 = 180;
const NODE_HEIGHT: u32 = 44;
const ROW: u32 = 100;
const TOP: u32 = 40;

/// Lays out the graph: (width, height, columns, nodes, edges).
pub fn layout(
    jobs: &[JobCard],
    edges: &[EdgeStats],
) -> (u32, u32, Vec<GroupBox>, Vec<NodeBox>, Vec<EdgeLine>) {
    let mut groups = Vec::new();
    let mut nodes = Vec::new();
    let mut centre: BTreeMap<&str, (i64, i64, usize)> = BTreeMap::new();
    let tallest = jobs.iter().map(|j| j.components.len()).max().unwrap_or(1) as u32;
    let height = TOP + tallest * ROW + 20;
    for (column, job) in jobs.iter().enumerate() {
        let x = 20 + column as u32 * COLUMN;
        groups.push(GroupBox {
            job: job.name.clone(),
            x,
            height: height - 20,
        });
        for (row, component) in job.components.iter().enumerate() {
            let node = NodeBox {
                label: component.label.clone(),
                job: job.name.clone(),
                x: x + 20,
                y: TOP + row as u32 * ROW,
            };
            centre.insert(
                &component.label,
                (
                    i64::from(node.x + NODE_WIDTH / 2),
                    i64::from(node.y + NODE_HEIGHT / 2),
                    column,
                ),
            );
            nodes.push(node);
        }
    }
    let lines = edges
        .iter()
        .filter_map(|edge| {
            let &(x1, y1, c1) = centre.get(edge.caller.as_str())?;
            let &(x2, y2, c2) = centre.get(edge.component.as_str())?;
            // Between columns: side to side; inside one: bottom to top, bowed.
            let (sx, sy, ex, ey, bow) = if c1 == c2 {
                (
                    x1,
                    y1 + i64::from(NODE_HEIGHT / 2),
                    x2,
                    y2 - i64::from(NODE_HEIGHT / 2),
                    40,
                )
            } else if c1 < c2 {
                let half = i64::from(NODE_WIDTH / 2);
                (x1 + half, y1, x2 - half, y2, 0)
            } else {
                let half = i64::from(NODE_WIDTH / 2);
                (x1 - half, y1, x2 + half, y2, 0)
            };
            let (mx, my) = ((sx + ex) / 2 + bow, (sy + ey) / 2);
            Some(EdgeLine {
                from: edge.caller.clone(),
                to: edge.component.clone(),
                placement: edge.placement.clone(),
                path: format!("M {sx} {sy} Q {mx} {my} {ex} {ey}"),
                label_x: mx + if bow > 0 { 8 } else { 0 },
                label_y: my - 8,
                anchor: if bow > 0 { "start" } else { "middle" },
                label: format!(
                    "{} /s · p50 {} · p99 {}",
                    rate(edge.calls_per_second),
                    micros(edge.p50_micros),
                    micros(edge.p99_micros)
                ),
            })
        })
        .collect();
    let width = 40 + jobs.len().max(1) as u32 * COLUMN;
    (width, height, groups, nodes, lines)
}

/// A rate, e.g. `12.5`.
pub fn rate(per_second: f64) -> String {
    format!("{per_second:.1}")
}

/// A latency, e.g. `85 µs` or `1.2 ms`, or `–`.
pub fn micros(value: Option<f64>) -> String {
    match value {
        None => "–".into(),
        Some(v) if v >= 1000.0 => format!("{:.1} ms", v / 1000.0),
        Some(v) => format!("{v:.0} µs"),
    }
}

/// A byte rate.
pub fn bytes(per_second: f64) -> String {
    if per_second >= 1024.0 * 1024.0 {
        format!("{:.1} MiB/s", per_second / (1024.0 * 1024.0))
    } else if per_second >= 1024.0 {
        format!("{:.1} KiB/s", per_second / 1024.0)
    } else {
        format!("{per_second:.0} B/s")
    }
}

/// An edge or method formatted for the tables.
pub fn row(edge: &EdgeStats) -> EdgeRow {
    EdgeRow {
        from: edge.caller.clone(),
        to: edge.component.clone(),
        method: edge.method.clone(),
        placement: edge.placement.clone(),
        calls: format!("{:.0}", edge.calls),
        rate: rate(edge.calls_per_second),
        errors: format!("{:.1} %", edge.error_rate * 100.0),
        p50: micros(edge.p50_micros),
        p99: micros(edge.p99_micros),
        bytes: bytes(edge.bytes_per_second),
    }
}

/// A trace in the recent list.
pub fn trace_row(id: &str, spans: &[SpanRecord]) -> TraceRow {
    let root = spans
        .iter()
        .find(|s| !spans.iter().any(|p| p.span_id == s.parent_id))
        .map_or_else(String::new, |s| s.name.clone());
    let start = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
    let end = spans.iter().map(|s| s.end_ns).max().unwrap_or(start);
    let mut services: Vec<&str> = spans.iter().map(|s| s.service.as_str()).collect();
    services.sort_unstable();
    services.dedup();
    TraceRow {
        id: id.to_string(),
        root,
        spans: spans.len(),
        services: services.join(", "),
        duration: micros(Some((end - start) as f64 / 1000.0)),
    }
}
