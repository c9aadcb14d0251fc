//! `mcx bench`: load figures of the running system.

use clap::{Args, Subcommand};

use crate::error::CliError;

/// `mcx bench` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Provision N clients over HTTPS from a KMS and a GMS started in this
    /// process, a few at a time; print the time per client, each step's
    /// latency (KMS, GMS, building the client role) and the services' time
    /// per request.
    Provision(ProvisionArgs),
}

/// `mcx bench provision`.
#[derive(Debug, Args)]
pub(crate) struct ProvisionArgs {
    /// How many clients.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    clients: u32,
    /// Members per group (each client is in one group; groups of this size
    /// are generated).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    group_size: u32,
    /// Clients starting up at once (default: 4 per core).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    parallel: Option<u32>,
}

/// Runs a `mcx bench` command.
pub(crate) fn run(command: BenchCommand) -> Result<(), CliError> {
    match command {
        BenchCommand::Provision(args) => {
            let parallel = args.parallel.map_or_else(
                || std::thread::available_parallelism().map_or(2, usize::from) * 4,
                |p| p as usize,
            );
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| CliError::System(format!("cannot start the async runtime: {e}")))?;
            let report = rt.block_on(crate::bench::provision(
                args.clients as usize,
                args.group_size as usize,
                parallel,
            ))?;
            print!("{report}");
            Ok(())
        }
    }
}
