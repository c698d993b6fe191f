//! The `amimono` command line: argument parsing and the commands' top level.
//! Results go to stdout; logs (tracing) and errors go to stderr.

use crate::app::App;
use crate::application::Application;
use crate::artifact_cache::engine_fingerprint;
use crate::bindings_file::Bindings;
use crate::bundle::{Bundle, build_components, is_bundle, write_bundle};
use crate::deploy::image::{parse_tag, write_image};
use crate::engine::{EngineUse, new_engine};
use crate::launcher::bindings::{localhost_bindings, ports_file};
use crate::launcher::up::{UpOptions, up};
use crate::manifest::Manifest;
use crate::placement::{CONFIG_JOB, FORCE_REMOTE_ENV, LOCAL_JOB, Placement};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Runs modular monoliths: an app's WebAssembly components as one process or many.
#[derive(Debug, Parser)]
#[command(name = "amimono", version, about)]
pub struct Cli {
    /// How log lines are written to stderr: `text`, or `json` (one object per line, with app, job, revision and component).
    #[arg(
        long,
        global = true,
        env = "AMIMONO_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    pub log_format: crate::observe::logs::LogFormat,
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
        /// Where the job's admin listener (`/healthz`, `/readyz`) listens [default: the bindings file's `[jobs.<job>] admin`, else a free loopback port].
        #[arg(long, env = "AMIMONO_ADMIN")]
        admin: Option<std::net::SocketAddr>,
        /// Which replica of the job this process is (0 to `replicas` − 1): picks its entries of the bindings file's lists.
        #[arg(long, env = "AMIMONO_REPLICA", default_value_t = 0)]
        replica: u32,
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
    /// Write an OCI image archive of a bundle and this `amimono` (for `podman load`, `docker load`, `kind load image-archive`, `skopeo copy oci-archive:`); prints its path, size, digest and name.
    Image {
        /// The bundle (`.amimono`).
        bundle: PathBuf,
        /// Where to write the archive [default: target/amimono/<app>-image.tar].
        #[arg(short = 'o', long)]
        out: Option<PathBuf>,
        /// The image's name [default: localhost/<app>:<revision>].
        #[arg(long)]
        tag: Option<String>,
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
    /// Write the manifests that deploy a bundle: Kubernetes (`kube`) or Compose (`compose`).
    Deploy {
        /// Where to deploy.
        #[command(subcommand)]
        target: DeployTarget,
    },
    /// GET a URL once and exit 0 on a 2xx answer (a container healthcheck: the image has no curl).
    Probe {
        /// The URL, e.g. http://127.0.0.1:9100/readyz.
        url: String,
        /// How long to wait for the answer, in milliseconds.
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
    /// Serve a web dashboard of a running app: jobs, the live call graph, placement advice, traces (it receives OTLP) and logs.
    Dashboard {
        /// The app (directory or manifest) or a bundle, or the bindings file of the running app (its jobs' admin listeners).
        target: PathBuf,
        /// The app, when TARGET is a bindings file not written by `amimono up` beside the app.
        #[arg(long)]
        app: Option<PathBuf>,
        /// The bindings file, when TARGET is the app [default: $AMIMONO_BINDINGS, else the one `amimono up` wrote].
        #[arg(long)]
        bindings: Option<PathBuf>,
        /// The named layout (`[layouts.<name>]`) the app runs [default: `[jobs]`].
        #[arg(long, env = "AMIMONO_LAYOUT")]
        layout: Option<String>,
        /// Where the dashboard listens.
        #[arg(long, default_value = "127.0.0.1:18200")]
        listen: std::net::SocketAddr,
        /// Listen off loopback too (the dashboard has no login and shows log lines).
        #[arg(long)]
        public: bool,
    },
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
        /// Also serve the dashboard here (e.g. 127.0.0.1:18200); the jobs send it their traces and log lines.
        #[arg(long)]
        dashboard: Option<std::net::SocketAddr>,
    },
}

/// Where `amimono deploy` deploys to.
#[derive(Debug, Subcommand)]
pub enum DeployTarget {
    /// Kubernetes manifests: per job a Deployment (or a StatefulSet with a volume claim where it keeps durable state) and a headless Service, a ConfigMap with the bindings file, and a stable Service per HTTP component selecting the revision to serve.
    Kube {
        /// The bundle (`.amimono`).
        bundle: PathBuf,
        #[command(flatten)]
        common: DeployArgs,
        /// The namespace of every object.
        #[arg(long, default_value = "default")]
        namespace: String,
        /// The revision the stable Services route traffic to [default: the bundle's].
        #[arg(long)]
        serve_revision: Option<String>,
        /// The directory to write the manifests into.
        #[arg(short = 'o', long = "out", default_value = "target/deploy/kube")]
        out: PathBuf,
    },
    /// A Compose file (compose.yaml): one service per job, the bindings file as a config, healthchecks, volumes for durable state.
    Compose {
        /// The bundle (`.amimono`).
        bundle: PathBuf,
        #[command(flatten)]
        common: DeployArgs,
        /// The compose file to write (the bindings file goes beside it).
        #[arg(
            short = 'o',
            long = "out",
            default_value = "target/deploy/compose.yaml"
        )]
        out: PathBuf,
    },
}

/// What `amimono deploy kube` and `compose` share.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// The image holding amimono and the bundle (`amimono image --tag`).
    #[arg(long)]
    image: String,
    /// The named layout (`[layouts.<name>]`) whose jobs to deploy [default: `[jobs]`].
    #[arg(long, env = "AMIMONO_LAYOUT")]
    layout: Option<String>,
    /// Deploy only this job (repeatable) [default: every job of the layout].
    #[arg(long = "job")]
    jobs: Vec<String>,
    /// Refuse a bundle whose revision is not this one.
    #[arg(long)]
    expect_revision: Option<String>,
}

impl DeployArgs {
    fn plan_options(&self) -> crate::deploy::plan::PlanOptions {
        crate::deploy::plan::PlanOptions {
            layout: self.layout.clone(),
            jobs: self.jobs.clone(),
            expect_revision: self.expect_revision.clone(),
        }
    }

    fn image(&self) -> Result<crate::deploy::ImageRef> {
        Ok(crate::deploy::ImageRef::parse(&self.image)?)
    }
}

/// Prints the files a command wrote, one per line.
fn print_written(files: &[PathBuf]) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    for file in files {
        writeln!(out, "wrote {}", file.display()).context("writing to stdout")?;
    }
    Ok(0)
}

/// Opens `path` with the named `layout`'s jobs in force, if given.
/// The app and the bindings file `amimono dashboard TARGET` shows: TARGET
/// is the app (its bindings file given, in the environment, or the one
/// `amimono up` wrote beside it) or a bindings file (its app given, or the
/// one `amimono up` wrote it for).
fn dashboard_paths(
    target: &Path,
    app: Option<PathBuf>,
    bindings: Option<PathBuf>,
) -> Result<(PathBuf, PathBuf)> {
    let is_bindings_file = target.is_file()
        && !is_bundle(target)
        && target.file_name().is_some_and(|n| n != "amimono.toml")
        && std::fs::read_to_string(target)
            .is_ok_and(|text| !text.lines().any(|l| l.trim() == "[app]"));
    if is_bindings_file {
        let app = match app {
            Some(app) => app,
            None => target
                .parent()
                .filter(|dir| dir.file_name().is_some_and(|n| n == ".amimono"))
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .with_context(|| {
                    format!(
                        "{} is a bindings file: name its app with --app",
                        target.display()
                    )
                })?,
        };
        return Ok((app, target.to_path_buf()));
    }
    let bindings = bindings
        .or_else(|| std::env::var_os("AMIMONO_BINDINGS").map(PathBuf::from))
        .unwrap_or_else(|| ports_file(target).with_file_name("bindings.toml"));
    if !bindings.is_file() {
        anyhow::bail!(
            "no bindings file at {}: start the app with `amimono up {}` (or name its bindings file with --bindings)",
            bindings.display(),
            target.display()
        );
    }
    Ok((target.to_path_buf(), bindings))
}

fn open(path: &Path, layout: Option<&str>) -> Result<Application> {
    let application = Application::open(path)?;
    match layout {
        Some(layout) => application.with_layout(layout),
        None => Ok(application),
    }
}

/// Where the app's durable data lives: `$AMIMONO_DATA_DIR`, else the
/// application's default (beside the manifest or the bundle).
fn data_dir(application: &Application) -> PathBuf {
    std::env::var_os(DATA_DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| application.default_data_dir())
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

fn load_bindings(path: Option<&Path>, application: &Application) -> Result<Option<Bindings>> {
    path.map(|p| application.load_bindings(p)).transpose()
}

/// Runs the parsed command line; returns the process exit status.
pub async fn execute(cli: Cli) -> Result<i32> {
    crate::observe::logs::set_format(cli.log_format);
    match cli.command {
        Command::Run {
            app,
            job,
            bindings,
            layout,
            admin,
            replica,
        } => {
            // The engine (its instance pool above all) is built while the
            // app or bundle is read: start-up is on the critical path.
            let engine = match job.as_deref() {
                Some(job) if job != CONFIG_JOB => {
                    Some(std::thread::spawn(|| new_engine(EngineUse::Serving)))
                }
                _ => None,
            };
            let application = open(&app, layout.as_deref())?;
            let job = job.with_context(|| {
                format!(
                    "no job given: set AMIMONO_JOB (or --job) to one of {}, or `{LOCAL_JOB}` to run every job in one process, `{CONFIG_JOB}` to print the config",
                    application.jobs().iter().map(|j| format!("`{j}`")).collect::<Vec<_>>().join(", ")
                )
            })?;
            let bindings = load_bindings(bindings.as_deref(), &application)?;
            if job == CONFIG_JOB {
                let config = application.config_json(bindings.as_ref());
                let mut out = std::io::stdout().lock();
                serde_json::to_writer_pretty(&mut out, &config).context("writing the config")?;
                writeln!(out).context("writing the config")?;
                return Ok(0);
            }
            let force_remote = std::env::var(FORCE_REMOTE_ENV).is_ok_and(|v| v == "1");
            // Unknown jobs are reported before waiting for the engine.
            Placement::for_job(application.app(), &job)?;
            let engine = match engine {
                Some(building) => building
                    .join()
                    .map_err(|_| anyhow::anyhow!("creating the wasmtime engine panicked"))??,
                None => new_engine(EngineUse::Serving)?,
            };
            let options = crate::run::RunOptions {
                force_remote,
                bindings,
                admin,
                replica,
            };
            crate::run::run(engine, &application, &job, options, &data_dir(&application)).await
        }
        Command::Call {
            app,
            label,
            function,
            args,
            bindings,
        } => {
            let application = open(&app, None)?;
            let mut builder = application
                .local()
                .engine(new_engine(EngineUse::OneShot)?)
                .data_dir(data_dir(&application))
                .lazy(true);
            if let Some(bindings) = load_bindings(bindings.as_deref(), &application)? {
                builder = builder.bindings(bindings);
            }
            let job = builder.prepare().await?;
            let outcome = crate::invoke::call(&job, &label, &function, &args).await;
            // One call and the process exits: export its spans first.
            job.export_traces().await;
            let outcome = outcome?;
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
        Command::Image { bundle, out, tag } => {
            let started = std::time::Instant::now();
            let tag = tag.as_deref().map(parse_tag).transpose()?;
            let engine = new_engine(EngineUse::Serving)?;
            let written = write_image(
                &bundle,
                out.as_deref(),
                tag,
                &engine_fingerprint(&engine),
                &mut progress,
            )?;
            progress(format!(
                "wrote the image in {:.1} s",
                started.elapsed().as_secs_f64()
            ));
            writeln!(
                std::io::stdout().lock(),
                "image {} ({} MiB)\ndigest {}\ntag {}",
                written.path.display(),
                written.bytes.div_ceil(1 << 20),
                written.manifest_digest,
                written.name
            )
            .context("writing to stdout")?;
            Ok(0)
        }
        Command::Bindings {
            app: path,
            base_port,
            pin_revision,
            layout,
        } => {
            let application = open(&path, layout.as_deref())?;
            let text = localhost_bindings(
                application.app(),
                base_port,
                &ports_file(&path),
                pin_revision,
            )?;
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
        Command::Deploy { target } => match target {
            DeployTarget::Kube {
                bundle,
                common,
                namespace,
                serve_revision,
                out,
            } => {
                let options = crate::deploy::kube::KubeOptions {
                    image: common.image()?,
                    namespace,
                    serve_revision,
                };
                let written =
                    crate::deploy::write_kube(&bundle, &common.plan_options(), &options, &out)?;
                print_written(&written)
            }
            DeployTarget::Compose {
                bundle,
                common,
                out,
            } => {
                let written = crate::deploy::write_compose(
                    &bundle,
                    &common.plan_options(),
                    &common.image()?,
                    &out,
                )?;
                print_written(&written)
            }
        },
        Command::Probe { url, timeout_ms } => {
            match crate::probe::probe(&url, std::time::Duration::from_millis(timeout_ms)).await {
                Ok(()) => Ok(0),
                Err(e) => {
                    eprintln!("amimono probe: {e:#}");
                    Ok(1)
                }
            }
        }
        Command::Dashboard {
            target,
            app,
            bindings,
            layout,
            listen,
            public,
        } => {
            let (app_path, bindings_path) = dashboard_paths(&target, app, bindings)?;
            let application = open(&app_path, layout.as_deref())?;
            let app = application.app().clone();
            let bindings = Bindings::load(&bindings_path, &app)?;
            let dashboard = crate::dashboard::Dashboard::new(app, &bindings)?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("the dashboard cannot listen on {listen}"))?;
            let address = listener.local_addr().context("the dashboard's address")?;
            writeln!(std::io::stdout().lock(), "dashboard: http://{address}/")
                .context("writing to stdout")?;
            progress(format!(
                "reading the metrics of {} admin listener(s) from {}; jobs send traces here with OTEL_EXPORTER_OTLP_ENDPOINT=http://{address}",
                dashboard.targets().len(),
                bindings_path.display()
            ));
            let signals = crate::run::Signals::new();
            tokio::select! {
                served = dashboard.serve(listener, public) => served.map(|()| 0),
                () = signals.next() => Ok(0),
            }
        }
        Command::Up {
            app,
            base_port,
            out,
            layout,
            dashboard,
        } => {
            let manifest = Manifest::load(&app)?;
            let bundle = out.unwrap_or_else(|| default_bundle_path(&manifest.app));
            let options = UpOptions {
                app,
                bundle,
                base_port,
                layout,
                dashboard,
            };
            up(&options, &mut progress).await
        }
    }
}
