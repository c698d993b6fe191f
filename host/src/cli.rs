//! The `amimono` command line: argument parsing and the commands' top level.
//! Results go to stdout; logs (tracing) and errors go to stderr.

use crate::app::App;
use crate::bindings_file::Bindings;
use crate::config_json::app_config;
use crate::placement::{CONFIG_JOB, FORCE_REMOTE_ENV, LOCAL_JOB, Placement};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Runs modular monoliths: an app's WebAssembly components as one process or many.
#[derive(Debug, Parser)]
#[command(name = "amimono", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one job of an app (or `_local`: all of them in one process; `_config`: print the app config as JSON).
    Run {
        /// The app: a directory holding `amimono.toml`, or the manifest file.
        app: PathBuf,
        /// The job to run.
        #[arg(long, env = "AMIMONO_JOB")]
        job: Option<String>,
        /// The bindings file (TOML) with each component's addresses.
        #[arg(long, env = "AMIMONO_BINDINGS")]
        bindings: Option<PathBuf>,
    },
    /// Call an exported function of a component and print the result as WAVE.
    ///
    /// Exits 0 when the call returns, 2 when it returns a `result` that is `err`, 1 when it cannot be made or the component traps.
    Call {
        /// The app: a directory holding `amimono.toml`, or the manifest file.
        app: PathBuf,
        /// The component's label.
        label: String,
        /// The function: `name`, or `interface#name` when several interfaces have one.
        function: String,
        /// The arguments as WAVE values (e.g. '"world"' for a string), one per parameter.
        args: Vec<String>,
        /// The bindings file, for the URLs the runtime interface reports.
        #[arg(long, env = "AMIMONO_BINDINGS")]
        bindings: Option<PathBuf>,
    },
}

/// Exit status for a call that returned `err(...)`.
pub const EXIT_ERR_RESULT: i32 = 2;

fn load_bindings(path: Option<&Path>, app: &App) -> Result<Option<Bindings>> {
    path.map(|p| Bindings::load(p, app).map_err(anyhow::Error::from))
        .transpose()
}

/// Runs the parsed command line; returns the process exit status.
pub async fn execute(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Run { app, job, bindings } => {
            let app = App::load(&app)?;
            let job = job.with_context(|| {
                format!(
                    "no job given: set AMIMONO_JOB (or --job) to one of {}, or `{LOCAL_JOB}` to run every job in one process, `{CONFIG_JOB}` to print the config",
                    app.manifest.job_names().iter().map(|j| format!("`{j}`")).collect::<Vec<_>>().join(", ")
                )
            })?;
            let bindings = load_bindings(bindings.as_deref(), &app)?;
            if job == CONFIG_JOB {
                let config = app_config(&app, bindings.as_ref());
                let mut out = std::io::stdout().lock();
                serde_json::to_writer_pretty(&mut out, &config).context("writing the config")?;
                writeln!(out).context("writing the config")?;
                return Ok(0);
            }
            let force_remote = std::env::var(FORCE_REMOTE_ENV).is_ok_and(|v| v == "1");
            let placement = Placement::for_job(&app, &job)?.with_force_remote(force_remote);
            crate::run::run(app, placement, bindings).await?;
            Ok(0)
        }
        Command::Call {
            app,
            label,
            function,
            args,
            bindings,
        } => {
            let app = App::load(&app)?;
            let bindings = load_bindings(bindings.as_deref(), &app)?;
            let facts = Arc::new(crate::run::runtime_facts(
                &app,
                LOCAL_JOB,
                bindings.as_ref(),
                &BTreeMap::new(),
            ));
            let outcome = crate::invoke::call(&app, facts, &label, &function, &args).await?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", outcome.wave).context("writing the result")?;
            Ok(if outcome.is_err { EXIT_ERR_RESULT } else { 0 })
        }
    }
}
