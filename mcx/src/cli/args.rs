//! Argument groups shared by several subcommands.

use clap::Args;

use crate::error::CliError;
use crate::input;

/// Which key period: a number, a time, or (neither given) now.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub(crate) struct PeriodArgs {
    /// Key period number (KeyPeriodNo). Default: the period containing now.
    #[arg(long, value_name = "N")]
    pub(crate) period_no: Option<u64>,
    /// Use the key period containing this time, in Unix seconds (UTC).
    #[arg(long, value_name = "UNIX_SECS")]
    pub(crate) at: Option<u64>,
}

impl PeriodArgs {
    /// The key period number, for a community with this period length and
    /// offset (seconds).
    pub(crate) fn resolve(&self, key_period: u64, key_period_offset: u64) -> Result<u64, CliError> {
        if let Some(n) = self.period_no {
            return Ok(n);
        }
        let (what, at) = match self.at {
            Some(at) => ("--at", at),
            None => ("current time", input::now_unix()?),
        };
        mcx_ibc::uid::key_period_no(at, key_period, key_period_offset)
            .map_err(|err| CliError::value(what, err))
    }
}

/// The message to sign or verify: exactly one source.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct MessageArgs {
    /// The message as hex octets (may be empty: "").
    #[arg(long, value_name = "HEX")]
    pub(crate) msg_hex: Option<String>,
    /// The message as the octets of FILE, as is ('-' for stdin).
    #[arg(long, value_name = "FILE")]
    pub(crate) msg_file: Option<String>,
    /// The message as the UTF-8 octets of TEXT (no newline added).
    #[arg(long, value_name = "TEXT")]
    pub(crate) msg_text: Option<String>,
}

impl MessageArgs {
    /// The message octets.
    pub(crate) fn read(&self) -> Result<Vec<u8>, CliError> {
        match (&self.msg_hex, &self.msg_file, &self.msg_text) {
            (Some(hex), _, _) => input::hex("--msg-hex", hex),
            (_, Some(path), _) => input::read_bytes(path),
            (_, _, Some(text)) => Ok(text.as_bytes().to_vec()),
            // clap requires one of the three.
            (None, None, None) => Err(CliError::invalid(
                "message",
                "give --msg-hex, --msg-file or --msg-text",
            )),
        }
    }
}
