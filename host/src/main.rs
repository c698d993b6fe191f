//! The `amimono` binary: see [`amimono::cli`].

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    amimono::internals::mark_start();
    let cli = amimono::internals::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,wasmtime=warn,cranelift=warn")
    });
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match cli.log_format {
        amimono::internals::LogFormat::Json => logs
            .with_ansi(false)
            .event_format(amimono::internals::JsonLines)
            .init(),
        amimono::internals::LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(amimono::internals::execute(cli)) {
        Ok(code) => {
            // Exit now: tearing down the engine's instance pool (terabytes of
            // reserved address space) and the runtimes takes ~0.1 s and
            // serves no one — a drained job should be gone at once.
            use std::io::Write;
            let _ = std::io::stdout().flush();
            let _ = std::io::stderr().flush();
            std::process::exit(code)
        }
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
