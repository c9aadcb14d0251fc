//! `mcx`: a command-line tool for 3GPP TS 33.180 (MCPTT) security.
//!
//! A thin adapter over the `mcx_ibc` library: it parses hex and JSON, calls
//! the library and prints hex and JSON. It holds no cryptographic logic of
//! its own. See `mcx --help`.
#![forbid(unsafe_code)]

mod admin;
mod bench;
mod bench_setup;
mod cli;
mod decrypt;
mod demo;
mod dumpcap;
mod error;
mod identity;
mod input;
mod keyfile;
mod kpi;
mod output;
mod pcap;
mod regroup;
mod sip_trace;
mod system;
mod tls;
mod topology;
mod voice;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

/// jemalloc, not glibc malloc: at a 10,000-member call glibc's allocator
/// (consolidating and unlinking free chunks) was a quarter of an MC
/// server's time; jemalloc's per-thread caches made every role cheaper per
/// member (docs/BENCHMARKS.md, "The allocator").
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(&err),
    };
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            report(&err.to_string());
            ExitCode::FAILURE
        }
    }
}

/// Prints `error: <message>` on one line of stderr.
fn report(message: &str) {
    let line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    // Nothing sensible is left to do if stderr itself is gone.
    let _ = writeln!(std::io::stderr().lock(), "error: {line}");
}

/// Handles a clap parse result that is not a command: help and version go
/// out as clap renders them; usage errors become one line and exit 2.
fn usage_error(err: &clap::Error) -> ExitCode {
    let code = u8::try_from(err.exit_code()).unwrap_or(2);
    match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
        }
        _ => {
            // clap's rendering: "error: ..." and indented details, then a
            // blank line, "Usage: ..." and a hint. Keep what precedes
            // "Usage:" and fold it onto one line.
            let rendered = err.render().to_string();
            let detail: Vec<&str> = rendered
                .lines()
                .take_while(|line| !line.starts_with("Usage:"))
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .collect();
            let detail = detail.join(" ");
            let detail = detail.strip_prefix("error: ").unwrap_or(&detail);
            report(&format!("{detail} (see --help)"));
        }
    }
    ExitCode::from(code)
}
