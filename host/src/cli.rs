//! The `amimono` command line: argument parsing and the commands' top level.
//! Results go to stdout; logs (tracing) and errors go to stderr.

use crate::app::App;
use crate::bindings_file::Bindings;
use crate::bundle::{Bundle, build_components, is_bundle, write_bundle};
use crate::capabilities::CapabilityContext;
use crate::capabilities::config::SecretSource;
use crate::config_json::app_config;
use crate::engine::{EngineUse, new_engine};
use crate::launcher::bindings::{localhost_bindings, ports_file};
use crate::launcher::up::{UpOptions, up};
use crate::manifest::Manifest;
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
    /// Run one job of an app or bundle (or `_local`: all of them in one process; `_config`: print the app config as JSON).
    Run {
        /// The app (a directory holding `amimono.toml`, or the manifest) or a bundle (`.amimono`).
        app: PathBuf,
        /// The job to run.
        #[arg(long, env = "AMIMONO_JOB")]
        job: Option<String>,
        /// The bindings file (TOML) with each component's addresses.
        #[arg(long, env = "AMIMONO_BINDINGS")]
        bindings: Option<PathBuf>,
        /// The named layout (`[layouts.<name>]`) whose jobs to use [default: `[jobs]`].
        #[arg(long, env = "AMIMONO_LAYOUT")]
        layout: Option<String>,
    },
    /// Call an exported function of a component and print the result as WAVE.
    ///
    /// Exits 0 when the call returns, 2 when it returns a `result` that is `err`, 1 when it cannot be made or the component traps.
    Call {
        /// The app (directory or manifest) or a bundle.
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
    /// Build every component, compose and precompile every job, and write one bundle; prints its path and revision.
    Build {
        /// The app: a directory holding `amimono.toml`, or the manifest.
        app: PathBuf,
        /// Where to write the bundle [default: target/amimono/<app>.amimono].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Describe a bundle: revision, jobs, components, imports and exports, links.
    Inspect {
        /// The bundle (`.amimono`).
        bundle: PathBuf,
    },
    /// Write a bindings file for running every job on localhost (ports persist beside the app).
    Bindings {
        /// The app (directory or manifest) or a bundle.
        app: PathBuf,
        /// First port to hand out [default: the persisted one, else 18000].
        #[arg(long)]
        base_port: Option<u16>,
        /// Pin the file to the app's revision: hosts of another revision refuse to start with it.
        #[arg(long)]
        pin_revision: bool,
        /// The named layout (`[layouts.<name>]`) whose jobs to use [default: `[jobs]`].
        #[arg(long, env = "AMIMONO_LAYOUT")]
        layout: Option<String>,
    },
    /// Print a new random cluster key (for AMIMONO_CLUSTER_KEY: every job of a deployment needs the same one).
    ClusterKey,
    /// Build if needed and run every job as its own process on localhost until Ctrl-C.
    Up {
        /// The app: a directory holding `amimono.toml`, or the manifest.
        app: PathBuf,
        /// First port to hand out [default: the persisted one, else 18000].
        #[arg(long)]
        base_port: Option<u16>,
        /// Where to write the bundle [default: target/amimono/<app>.amimono].
        #[arg(long)]
        out: Option<PathBuf>,
        /// The named layout (`[layouts.<name>]`) whose jobs to use [default: `[jobs]`].
        #[arg(long, env = "AMIMONO_LAYOUT")]
        layout: Option<String>,
    },
}

/// An app opened from a directory, a manifest or a bundle.
enum Opened {
    App(Box<App>),
    Bundle(Box<Bundle>),
}

impl Opened {
    /// Opens `path` with the named `layout`'s jobs in force, if given.
    fn open(path: &Path, layout: Option<&str>) -> Result<Opened> {
        let mut opened = if is_bundle(path) {
            Opened::Bundle(Box::new(Bundle::open(path)?))
        } else {
            Opened::App(Box::new(App::load(path)?))
        };
        if let Some(layout) = layout {
            let app = match &mut opened {
                Opened::App(app) => app.as_mut(),
                Opened::Bundle(bundle) => &mut bundle.app,
            };
            *app = app.with_layout(layout)?;
        }
        Ok(opened)
    }

    fn app(&self) -> &App {
        match self {
            Opened::App(app) => app,
            Opened::Bundle(bundle) => &bundle.app,
        }
    }

    /// Where the app's durable data lives: `$AMIMONO_DATA_DIR`, else
    /// `.amimono/data` beside the manifest, else `<bundle>.data` beside a bundle.
    fn data_dir(&self) -> PathBuf {
        if let Some(dir) = std::env::var_os(DATA_DIR_ENV) {
            return PathBuf::from(dir);
        }
        match self {
            Opened::App(app) => app.manifest.dir.join(".amimono").join("data"),
            Opened::Bundle(bundle) => bundle.path.with_extension("data"),
        }
    }

    fn bundle(&self) -> Option<&Bundle> {
        match self {
            Opened::App(_) => None,
            Opened::Bundle(bundle) => Some(bundle),
        }
    }
}

/// Environment variable naming the directory of durable data (key-value).
pub const DATA_DIR_ENV: &str = "AMIMONO_DATA_DIR";

/// The default bundle path: `target/amimono/<app>.amimono`.
fn default_bundle_path(app_name: &str) -> PathBuf {
    Path::new("target")
        .join("amimono")
        .join(format!("{app_name}.{}", crate::bundle::EXTENSION))
}

fn progress(line: String) {
    eprintln!("amimono: {line}");
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
        Command::Run {
            app,
            job,
            bindings,
            layout,
        } => {
            // The engine (its instance pool above all) is built while the
            // app or bundle is read: start-up is on the critical path.
            let engine = match job.as_deref() {
                Some(job) if job != CONFIG_JOB => {
                    Some(std::thread::spawn(|| new_engine(EngineUse::Serving)))
                }
                _ => None,
            };
            let opened = Opened::open(&app, layout.as_deref())?;
            let app = opened.app();
            let job = job.with_context(|| {
                format!(
                    "no job given: set AMIMONO_JOB (or --job) to one of {}, or `{LOCAL_JOB}` to run every job in one process, `{CONFIG_JOB}` to print the config",
                    app.manifest.job_names().iter().map(|j| format!("`{j}`")).collect::<Vec<_>>().join(", ")
                )
            })?;
            let bindings = load_bindings(bindings.as_deref(), app)?;
            if job == CONFIG_JOB {
                let config = app_config(app, bindings.as_ref());
                let mut out = std::io::stdout().lock();
                serde_json::to_writer_pretty(&mut out, &config).context("writing the config")?;
                writeln!(out).context("writing the config")?;
                return Ok(0);
            }
            let force_remote = std::env::var(FORCE_REMOTE_ENV).is_ok_and(|v| v == "1");
            let placement = Placement::for_job(app, &job)?.with_force_remote(force_remote);
            let engine = match engine {
                Some(building) => building
                    .join()
                    .map_err(|_| anyhow::anyhow!("creating the wasmtime engine panicked"))??,
                None => new_engine(EngineUse::Serving)?,
            };
            crate::run::run(
                engine,
                app,
                placement,
                bindings,
                opened.bundle(),
                &opened.data_dir(),
            )
            .await
        }
        Command::Call {
            app,
            label,
            function,
            args,
            bindings,
        } => {
            let opened = Opened::open(&app, None)?;
            let app = opened.app();
            let bindings = load_bindings(bindings.as_deref(), app)?;
            let facts = Arc::new(crate::run::runtime_facts(
                app,
                LOCAL_JOB,
                bindings.as_ref(),
                &BTreeMap::new(),
            ));
            let keyvalue = crate::capabilities::keyvalue::open_for(
                app,
                app.components.keys(),
                &opened.data_dir(),
            )
            .await?;
            let capabilities = Arc::new(CapabilityContext::new(
                app,
                facts,
                app.components.keys(),
                &SecretSource::from_environment()?,
                keyvalue,
            )?);
            let outcome = crate::invoke::call(app, capabilities, &label, &function, &args).await?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", outcome.wave).context("writing the result")?;
            Ok(if outcome.is_err { EXIT_ERR_RESULT } else { 0 })
        }
        Command::Build { app, out } => {
            let manifest = Manifest::load(&app)?;
            build_components(&manifest, &mut progress)?;
            let app = App::load(&app)?;
            let out = out.unwrap_or_else(|| default_bundle_path(app.name()));
            let engine = new_engine(EngineUse::Serving)?;
            let outcome = write_bundle(&app, &engine, &out, &mut progress)?;
            let mut stdout = std::io::stdout().lock();
            writeln!(
                stdout,
                "bundle {} ({} KiB)\nrevision {}",
                outcome.path.display(),
                outcome.bytes / 1024,
                outcome.revision
            )
            .context("writing to stdout")?;
            Ok(0)
        }
        Command::Inspect { bundle } => {
            if !is_bundle(&bundle) {
                anyhow::bail!(
                    "`{}` is not a bundle file (`.{}`): build one with `amimono build <app>`",
                    bundle.display(),
                    crate::bundle::EXTENSION
                );
            }
            let bundle = Bundle::open(&bundle)?;
            let engine = new_engine(EngineUse::Serving)?;
            let text = crate::inspect::describe(&bundle, &engine)?;
            std::io::stdout()
                .lock()
                .write_all(text.as_bytes())
                .context("writing to stdout")?;
            Ok(0)
        }
        Command::Bindings {
            app: path,
            base_port,
            pin_revision,
            layout,
        } => {
            let opened = Opened::open(&path, layout.as_deref())?;
            let text =
                localhost_bindings(opened.app(), base_port, &ports_file(&path), pin_revision)?;
            std::io::stdout()
                .lock()
                .write_all(text.as_bytes())
                .context("writing to stdout")?;
            Ok(0)
        }
        Command::ClusterKey => {
            let key =
                crate::remote::auth::ClusterKey::generate().context("making a cluster key")?;
            writeln!(std::io::stdout().lock(), "{key}").context("writing to stdout")?;
            Ok(0)
        }
        Command::Up {
            app,
            base_port,
            out,
            layout,
        } => {
            let manifest = Manifest::load(&app)?;
            let bundle = out.unwrap_or_else(|| default_bundle_path(&manifest.app));
            let options = UpOptions {
                app,
                bundle,
                base_port,
                layout,
            };
            up(&options, &mut progress).await
        }
    }
}
