//! `haven`: one binary, many roles. This file only parses the command line and dispatches;
//! each subcommand wires library crates together.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod up;
mod verify;

/// Haven: an event-sourced safeguarding platform for a multi-academy trust.
#[derive(Debug, Parser)]
#[command(name = "haven", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run everything in one process: the event log, gRPC on one port, the HTTP gateway.
    Up(UpArgs),
    /// Event log tools.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
}

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Where the event log keeps its data.
    #[arg(long, default_value = "./haven-data")]
    pub data_dir: PathBuf,
    /// Address for every gRPC service (with gRPC health and reflection).
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub grpc_addr: SocketAddr,
    /// Address for the HTTP gateway (/healthz, /readyz).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
}

#[derive(Debug, Subcommand)]
enum LogCommand {
    /// Recompute the hash chain over every stored event; report the first break or OK.
    Verify {
        /// The data directory of a stopped node.
        #[arg(long, default_value = "./haven-data")]
        data_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("haven: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Up(args) => runtime.block_on(up::run(args)),
        Command::Log {
            command: LogCommand::Verify { data_dir },
        } => verify::run(&data_dir),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("haven: {error:#}");
            ExitCode::FAILURE
        }
    }
}
