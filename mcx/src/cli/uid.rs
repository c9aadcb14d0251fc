//! `mcx uid`: the MIKEY-SAKKE UID of a user in a key period.

use clap::Args;
use mcx_ibc::uid::{key_period_start, mikey_sakke_uid};
use serde::Serialize;

use super::args::PeriodArgs;
use crate::error::CliError;
use crate::keyfile::{KeyFile, PublicFile};
use crate::output;

/// `mcx uid`: prints the UID as hex (or JSON with `--json`).
///
/// UID = SHA-256(0x00 || "MIKEY-SAKKE-UID" || L0 || URI || L1 || KMS URI || L2 ||
/// key period || L3 || offset || L4 || key period number || L5), TS 33.180 F.2.1.
/// The KMS values come from --community or from --kms-uri, --key-period and
/// --key-period-offset.
#[derive(Debug, Args)]
pub(crate) struct UidArgs {
    /// The user's MC service user ID URI (e.g. sip:alice@example.org).
    #[arg(long, value_name = "URI")]
    uri: String,
    /// Take the KMS URI, key period and offset from a community, public or user keys file ('-' for stdin).
    #[arg(long, value_name = "FILE", visible_alias = "community-public",
          conflicts_with_all = ["kms_uri", "key_period", "key_period_offset"])]
    community: Option<String>,
    /// KMS URI (e.g. kms.example.org).
    #[arg(long, value_name = "URI", required_unless_present = "community")]
    kms_uri: Option<String>,
    /// User key period length in seconds (UserKeyPeriod).
    #[arg(long, value_name = "SECS", required_unless_present = "community")]
    key_period: Option<u64>,
    /// User key period offset in seconds (UserKeyOffset).
    #[arg(long, value_name = "SECS", required_unless_present = "community")]
    key_period_offset: Option<u64>,
    /// Key period.
    #[command(flatten)]
    period: PeriodArgs,
    /// Print JSON {"uid", "key_period_no", "key_period_start", "key_period_end"}
    /// (times in Unix seconds, null before 1970) instead of the UID hex.
    #[arg(long)]
    json: bool,
}

/// `mcx uid --json` output.
#[derive(Debug, Serialize)]
struct UidJson {
    /// The UID, 32 octets hex.
    uid: String,
    /// The key period number used.
    key_period_no: u64,
    /// Start of the key period, Unix seconds.
    key_period_start: Option<u64>,
    /// End of the key period (start of the next), Unix seconds.
    key_period_end: Option<u64>,
}

/// Runs `mcx uid`.
pub(crate) fn run(args: &UidArgs) -> Result<(), CliError> {
    let (kms_uri, key_period, offset) = match (
        &args.community,
        &args.kms_uri,
        args.key_period,
        args.key_period_offset,
    ) {
        (Some(path), ..) => {
            let file = PublicFile::load(path)?;
            (file.kms_uri, file.key_period, file.key_period_offset)
        }
        (None, Some(kms_uri), Some(key_period), Some(offset)) => {
            (kms_uri.clone(), key_period, offset)
        }
        // clap requires these without --community.
        _ => {
            return Err(CliError::invalid(
                "uid",
                "give --community, or --kms-uri, --key-period and --key-period-offset",
            ));
        }
    };
    let period_no = args.period.resolve(key_period, offset)?;
    let uid = mikey_sakke_uid(&args.uri, &kms_uri, key_period, offset, period_no)
        .map_err(|err| CliError::value("uid", err))?;
    if args.json {
        let start = |n: u64| key_period_start(n, key_period, offset).ok();
        output::json(&UidJson {
            uid: hex::encode(uid),
            key_period_no: period_no,
            key_period_start: start(period_no),
            key_period_end: period_no.checked_add(1).and_then(start),
        })
    } else {
        output::line(&hex::encode(uid))
    }
}
