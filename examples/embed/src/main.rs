//! The `embed-hello` binary: `embed-hello [--app DIR | --bundle FILE] [--port N]
//! [--server job|axum]`. Prints `listening on http://…` when it accepts;
//! Ctrl-C (or SIGTERM) stops accepting, lets requests in flight finish, and
//! exits 0. The axum `Router` is served by `Job::serve` (the job's per-core
//! threads and connection limits) or, with `--server axum`, by
//! `axum::serve` on tokio's multi-thread runtime.

use amimono::{Application, Listeners, Stopped};
use anyhow::{Context, Result};
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// An axum service embedding the hello app.
#[derive(Debug, Parser)]
#[command(name = "embed-hello", about)]
struct Args {
    /// The hello app's directory (used when no bundle is given).
    #[arg(long, default_value = "examples/hello")]
    app: PathBuf,
    /// The hello app's bundle (`amimono build examples/hello`): no compiling at start.
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// Where the app keeps durable data [default: beside the app or bundle].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The loopback port to listen on.
    #[arg(long, default_value_t = 18100)]
    port: u16,
    /// What serves the router: `job` (`Job::serve`, one runtime per core,
    /// the app's connection limits) or `axum` (`axum::serve`).
    #[arg(long, value_enum, default_value_t = Server::Job)]
    server: Server,
}

/// What serves the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Server {
    /// `Job::serve` with `Listeners::service`.
    Job,
    /// `axum::serve` on this process's multi-thread runtime.
    Axum,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,wasmtime=warn,cranelift=warn")
            }),
        )
        .init();
    let args = Args::parse();
    let application = Application::open(args.bundle.as_ref().unwrap_or(&args.app))?;
    let address = SocketAddr::from(([127, 0, 0, 1], args.port));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("listening on {address}"))?;
    let mut builder = application
        .local()
        .url("frontend", &format!("http://{address}/app"));
    if let Some(dir) = args.data_dir {
        builder = builder.data_dir(dir);
    }
    let job = builder.prepare().await?;
    let greet = embed_hello::greet_function(&job).await?;
    let router = embed_hello::router(&job, greet)?;
    println!("listening on http://{address}");
    match args.server {
        Server::Job => {
            // Drains itself: no new connections, requests in flight finish
            // within the job's shutdown grace.
            let listeners = Listeners::new().service(listener, router);
            if job.serve(listeners, shutdown_signal()).await? == Stopped::Undrained {
                tracing::warn!("stopped with requests in flight");
            }
        }
        Server::Axum => {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown_signal())
                .await
                .context("serving")?;
            // Requests the frontend still runs (e.g. a guest streaming its body).
            if !job.drain(Duration::from_secs(5)).await {
                tracing::warn!(
                    in_flight = job.in_flight(),
                    "stopped with requests in flight"
                );
            }
        }
    }
    // Spans leave in batches: send the last ones before the process ends.
    job.export_traces().await;
    tracing::info!("stopped");
    // Exit at once: unmapping the engine's instance pool (terabytes of
    // reserved address space) on drop takes a second and serves no one.
    std::process::exit(0)
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
