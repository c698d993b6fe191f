//! The process's log output: human-readable lines (the default) or one JSON
//! object per line (`--log-format json`, `AMIMONO_LOG_FORMAT=json`), for log
//! collectors. A JSON line holds `time` (RFC 3339, UTC), `level`, `target`,
//! `message`, the process's `app`, `job`, `revision` and `replica` (once
//! `amimono run` has loaded the app: [`set_process`]), and every field of
//! the event — `component` among them: components' stdout, stderr and
//! `wasi:logging` lines are events with their label
//! ([`crate::capabilities::logging`]), as are the host's lines about one
//! component.

use serde_json::{Map, Value};
use std::fmt::Write as _;
use std::sync::OnceLock;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// What every JSON line says about the process.
#[derive(Debug, Clone)]
pub struct ProcessFields {
    /// The app's name.
    pub app: String,
    /// The job this process runs.
    pub job: String,
    /// The app's revision.
    pub revision: String,
    /// This replica's index.
    pub replica: u32,
}

static PROCESS: OnceLock<ProcessFields> = OnceLock::new();

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Records the format this process writes logs in (once), so the jobs
/// `amimono up` starts write theirs the same way.
pub fn set_format(format: LogFormat) {
    let _ = FORMAT.set(format);
}

/// The format this process writes logs in.
pub fn format() -> LogFormat {
    FORMAT.get().copied().unwrap_or_default()
}

impl LogFormat {
    /// Its name on the command line and in `AMIMONO_LOG_FORMAT`.
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// Sets the process's fields (once; later calls are ignored).
pub fn set_process(fields: ProcessFields) {
    let _ = PROCESS.set(fields);
}

/// One JSON log line as a text line (`time LEVEL target: message k=v…`,
/// without the process's own fields), for `amimono up` relaying JSON lines
/// to a text terminal; `None` if it is not a JSON object.
pub fn json_line_as_text(line: &str) -> Option<String> {
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(line) else {
        return None;
    };
    let text = |key: &str| object.get(key).and_then(Value::as_str).unwrap_or("");
    let mut out = format!(
        "{} {:>5} {}: {}",
        text("time"),
        text("level").to_ascii_uppercase(),
        text("target"),
        text("message")
    );
    const SHOWN: [&str; 8] = [
        "time", "level", "target", "message", "app", "job", "revision", "replica",
    ];
    for (key, value) in object.iter().filter(|(k, _)| !SHOWN.contains(&k.as_str())) {
        match value {
            Value::String(s) => out.push_str(&format!(" {key}={s}")),
            other => out.push_str(&format!(" {key}={other}")),
        }
    }
    Some(out)
}

/// Formats each event as one JSON object.
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        writeln!(writer, "{}", Value::Object(json_object(event)))
    }
}

/// The JSON object of one event.
fn json_object(event: &Event<'_>) -> Map<String, Value> {
    let mut object = Map::new();
    let mut time = String::new();
    if SystemTime.format_time(&mut Writer::new(&mut time)).is_ok() {
        object.insert("time".into(), Value::String(time));
    }
    let metadata = event.metadata();
    object.insert(
        "level".into(),
        Value::String(metadata.level().as_str().to_ascii_lowercase()),
    );
    object.insert("target".into(), Value::String(metadata.target().into()));
    if let Some(process) = PROCESS.get() {
        object.insert("app".into(), Value::String(process.app.clone()));
        object.insert("job".into(), Value::String(process.job.clone()));
        object.insert("revision".into(), Value::String(process.revision.clone()));
        object.insert("replica".into(), Value::from(process.replica));
    }
    let mut fields = Fields(Map::new());
    event.record(&mut fields);
    // An event's own fields win over the process's (a guest line names
    // its component's job, which is this process's anyway).
    object.extend(fields.0);
    object
}

/// Collects an event's fields as JSON values.
struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().into(), Value::String(value.into()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::Bool(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.0.insert(field.name().into(), Value::String(text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn each_event_is_one_json_object_with_the_process_and_its_fields() {
        set_process(ProcessFields {
            app: "hello".into(),
            job: "backend".into(),
            revision: "abc123".into(),
            replica: 1,
        });
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .event_format(JsonLines)
            .with_writer(captured.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "guest", component = %"greeter", status = 503u16, "a \"quoted\" line");
            tracing::info!("second");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        let first = &lines[0];
        assert_eq!(first["level"], "warn");
        assert_eq!(first["target"], "guest");
        assert_eq!(first["message"], "a \"quoted\" line");
        assert_eq!(first["component"], "greeter");
        assert_eq!(first["status"], 503);
        assert_eq!(first["app"], "hello");
        assert_eq!(first["job"], "backend");
        assert_eq!(first["revision"], "abc123");
        assert_eq!(first["replica"], 1);
        assert!(
            first["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{first}"
        );
        assert_eq!(lines[1]["message"], "second");
    }
}
