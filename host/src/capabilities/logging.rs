//! Logs of components into the host's `tracing` log, with the component's
//! label and job: `wasi:logging/logging` calls, and each line a component
//! writes to its stdout (level info) or stderr (level warn). Each member of
//! a graph gets its own streams, so a line names the component that wrote it.

use super::{Capability, JobCapability, JobSetup, MemberInterface};
use crate::host_state::HostState;
use crate::observe::traces::TraceContext;
use crate::wasmtime_error::IntoAnyhow;
use anyhow::Result;
use bytes::Bytes;
use std::sync::Arc;
use wasmtime::component::{ComponentType, Lift, Linker, Resource};
use wasmtime_wasi::p2::{DynOutputStream, OutputStream, Pollable, StreamResult};

/// Longest line kept before it is logged anyway.
const MAX_LINE: usize = 16 << 10;

/// `level` of `wasi:logging/logging`.
#[derive(Debug, Clone, Copy, ComponentType, Lift)]
#[component(enum)]
#[repr(u8)]
#[allow(dead_code, reason = "values are lifted from the guest")]
enum Level {
    #[component(name = "trace")]
    Trace,
    #[component(name = "debug")]
    Debug,
    #[component(name = "info")]
    Info,
    #[component(name = "warn")]
    Warn,
    #[component(name = "error")]
    Error,
    #[component(name = "critical")]
    Critical,
}

fn log(level: Level, label: &str, job: &str, trace: &TraceContext, context: &str, message: &str) {
    let trace_id = trace.trace_id();
    let trace_id = trace_id.as_deref();
    macro_rules! emit {
        ($macro:ident) => {
            tracing::$macro!(target: "guest", component = %label, job = %job, trace_id, context = %context, "{message}")
        };
    }
    match level {
        Level::Trace => emit!(trace),
        Level::Debug => emit!(debug),
        Level::Info => emit!(info),
        Level::Warn => emit!(warn),
        Level::Error | Level::Critical => emit!(error),
    }
}

/// `wasi:logging/logging`.
pub const LOGGING: MemberInterface = MemberInterface::new("wasi:logging/logging", "logging");
/// `wasi:cli/stdout`: lines logged at info.
pub const STDOUT: MemberInterface = MemberInterface::new("wasi:cli/stdout", "cli-stdout");
/// `wasi:cli/stderr`: lines logged at warn.
pub const STDERR: MemberInterface = MemberInterface::new("wasi:cli/stderr", "cli-stderr");

/// Log lines and standard streams, per component. Granted to every component.
pub struct Logging;

#[async_trait::async_trait]
impl Capability for Logging {
    fn name(&self) -> &'static str {
        "logging"
    }

    fn interfaces(&self) -> &'static [MemberInterface] {
        &[LOGGING, STDOUT, STDERR]
    }

    async fn open(&self, job: &JobSetup<'_>) -> Result<Arc<dyn JobCapability>> {
        Ok(Arc::new(OpenLogging {
            job: job.facts.job.clone(),
        }))
    }
}

struct OpenLogging {
    job: String,
}

impl JobCapability for OpenLogging {
    fn add_to_linker(
        &self,
        linker: &mut Linker<HostState>,
        interface: MemberInterface,
        import_name: &str,
        label: &str,
    ) -> Result<()> {
        match interface {
            STDOUT => add_stdio(linker, import_name, label, &self.job, Stream::Stdout),
            STDERR => add_stdio(linker, import_name, label, &self.job, Stream::Stderr),
            _ => add_logging(linker, import_name, label, &self.job),
        }
    }
}

/// Defines `wasi:logging/logging` for member `label` under `import_name`.
fn add_logging(
    linker: &mut Linker<HostState>,
    import_name: &str,
    label: &str,
    job: &str,
) -> Result<()> {
    let mut instance = super::member_instance(linker, import_name)?;
    let (label, job) = (label.to_string(), job.to_string());
    instance
        .func_wrap(
            "log",
            move |store, (level, context, message): (Level, String, String)| {
                log(
                    level,
                    &label,
                    &job,
                    store.data().trace(),
                    &context,
                    &message,
                );
                Ok(())
            },
        )
        .anyhow()?;
    Ok(())
}

/// Which standard stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// stdout: lines logged at info.
    Stdout,
    /// stderr: lines logged at warn.
    Stderr,
}

/// Defines `wasi:cli/stdout` or `wasi:cli/stderr` for member `label`.
fn add_stdio(
    linker: &mut Linker<HostState>,
    import_name: &str,
    label: &str,
    job: &str,
    stream: Stream,
) -> Result<()> {
    let mut instance = super::member_instance(linker, import_name)?;
    let function = match stream {
        Stream::Stdout => "get-stdout",
        Stream::Stderr => "get-stderr",
    };
    let (label, job): (Arc<str>, Arc<str>) = (label.into(), job.into());
    instance
        .func_wrap(function, move |mut store, (): ()| {
            let trace_id = store.data().trace().trace_id();
            let output: DynOutputStream = Box::new(LineLog {
                label: label.clone(),
                job: job.clone(),
                trace_id,
                stream,
                pending: Vec::new(),
            });
            let resource: Resource<DynOutputStream> = store.data_mut().table().push(output)?;
            Ok((resource,))
        })
        .anyhow()?;
    Ok(())
}

/// An output stream that logs each complete line.
struct LineLog {
    label: Arc<str>,
    job: Arc<str>,
    /// The trace of the work the instance did when it took the stream.
    trace_id: Option<String>,
    stream: Stream,
    pending: Vec<u8>,
}

impl LineLog {
    fn emit(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches(['\r', '\n']);
        match self.stream {
            Stream::Stdout => {
                tracing::info!(target: "guest", component = %self.label, job = %self.job, trace_id = self.trace_id.as_deref(), stream = "stdout", "{text}")
            }
            Stream::Stderr => {
                tracing::warn!(target: "guest", component = %self.label, job = %self.job, trace_id = self.trace_id.as_deref(), stream = "stderr", "{text}")
            }
        }
    }

    fn emit_complete_lines(&mut self) {
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.emit(&line);
        }
        if self.pending.len() > MAX_LINE {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line);
        }
    }
}

#[async_trait::async_trait]
impl Pollable for LineLog {
    async fn ready(&mut self) {}
}

impl OutputStream for LineLog {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.pending.extend_from_slice(&bytes);
        self.emit_complete_lines();
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LINE)
    }
}

impl Drop for LineLog {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line);
        }
    }
}
