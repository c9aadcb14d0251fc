//! `mcx kms`: generate a community, publish its public values, issue keys.

use clap::{Args, Subcommand};
use mcx_ibc::kms::Community;
use mcx_ibc::uid::UID_LEN;
use mcx_ibc::{eccsi, sakke};

use super::args::PeriodArgs;
use crate::error::CliError;
use crate::input;
use crate::keyfile::{CommunityFile, KeyFile, PublicFile, UserKeysFile};
use crate::output::{self, OutArgs};

/// The JSON formats, shown after `mcx kms --help`.
pub(crate) const FORMATS: &str = r#"JSON files (octet strings are hex, lowercase on output; numbers are JSON integers):

Community, from 'kms init' (holds the KMS secrets: keep it private):
  { "kms_uri": "kms.example.org",  "key_period": 2592000,  "key_period_offset": 0,
    "kpak": <65 octets, ECCSI KPAK>,  "z_public": <257 octets, SAKKE Z>,
    "ksak": <32 octets, ECCSI KSAK>,  "z": <128 octets, SAKKE master secret> }

Community public values, from 'kms public':
  the first five fields above (kms_uri, key_period, key_period_offset, kpak, z_public).

User keys, from 'kms issue' (holds the user's secrets):
  { "user_uri": "sip:alice@example.org",  "kms_uri", "key_period", "key_period_offset",
    "key_period_no": 1490,  "uid": <32 octets, UID>,  "kpak", "z_public",
    "ssk": <32 octets, ECCSI SSK>,  "pvt": <65 octets, ECCSI PVT>,  "rsk": <257 octets, SAKKE RSK> }

Points are 0x04 || x || y. key_period and key_period_offset are seconds (TS 33.180
UserKeyPeriod, UserKeyOffset). Any of the three files serves where a command asks for
--community: only the public values are read. Unknown fields are ignored."#;

/// `mcx kms` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum KmsCommand {
    /// Generate a KMS community (ECCSI KSAK/KPAK, SAKKE z/Z) with OS randomness; prints the community JSON.
    Init(InitArgs),
    /// Print the public values of a community (JSON): what every user of the community gets.
    Public(PublicArgs),
    /// Issue a user's keys for a key period: UID, ECCSI SSK and PVT, SAKKE RSK (JSON);
    /// or, with --uid, keys for a raw identifier.
    Issue(IssueArgs),
}

/// `mcx kms init`.
#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// KMS URI, part of every UID (e.g. kms.example.org).
    #[arg(long, value_name = "URI")]
    kms_uri: String,
    /// User key period length in seconds (UserKeyPeriod); must not be 0.
    #[arg(long, value_name = "SECS", default_value_t = 2_592_000)]
    key_period: u64,
    /// User key period offset in seconds (UserKeyOffset), from 1900-01-01T00:00:00Z.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    key_period_offset: u64,
    /// Output.
    #[command(flatten)]
    out: OutArgs,
}

/// `mcx kms public`.
#[derive(Debug, Args)]
pub(crate) struct PublicArgs {
    /// Community file from 'mcx kms init' ('-' for stdin).
    #[arg(value_name = "COMMUNITY.json")]
    community: String,
    /// Output.
    #[command(flatten)]
    out: OutArgs,
}

/// `mcx kms issue`.
#[derive(Debug, Args)]
pub(crate) struct IssueArgs {
    /// Community file from 'mcx kms init' ('-' for stdin).
    #[arg(value_name = "COMMUNITY.json")]
    community: String,
    /// The user's MC service user ID URI (e.g. sip:alice@example.org).
    #[arg(
        long,
        value_name = "URI",
        required_unless_present = "uid",
        conflicts_with = "uid"
    )]
    user: Option<String>,
    /// Instead of --user: a raw identifier, the 32-octet UID in hex, as a
    /// vector gives it (the file then has no user_uri; the key period
    /// options only fill in key_period_no).
    #[arg(long, value_name = "HEX")]
    uid: Option<String>,
    /// Key period.
    #[command(flatten)]
    period: PeriodArgs,
    /// Output.
    #[command(flatten)]
    out: OutArgs,
}

/// Runs a `mcx kms` subcommand.
pub(crate) fn run(command: KmsCommand) -> Result<(), CliError> {
    match command {
        KmsCommand::Init(args) => init(&args),
        KmsCommand::Public(args) => public(&args),
        KmsCommand::Issue(args) => issue(&args),
    }
}

fn init(args: &InitArgs) -> Result<(), CliError> {
    let mut rng = input::os_rng()?;
    let community = Community::generate(
        &args.kms_uri,
        args.key_period,
        args.key_period_offset,
        &mut rng,
    )
    .map_err(|err| CliError::value("kms init", err))?;
    output::json_to(&CommunityFile::from_community(&community), &args.out)
}

fn public(args: &PublicArgs) -> Result<(), CliError> {
    let community = CommunityFile::load(&args.community)?.community()?;
    output::json_to(&PublicFile::from_public(community.public()), &args.out)
}

fn issue(args: &IssueArgs) -> Result<(), CliError> {
    let community = CommunityFile::load(&args.community)?.community()?;
    let public = community.public();
    let period_no = args
        .period
        .resolve(public.key_period_len, public.key_period_offset)?;
    let mut rng = input::os_rng()?;
    let file = match (&args.user, &args.uid) {
        (Some(user), _) => {
            let keys = community
                .issue(user, period_no, &mut rng)
                .map_err(|err| CliError::value("--user", err))?;
            UserKeysFile::from_keys(&keys, public)
        }
        (None, Some(uid)) => {
            let uid = input::hex_array::<UID_LEN>("--uid", uid)?;
            let (ssk, pvt) = eccsi::issue(community.ksak(), &uid, &mut rng)
                .map_err(|err| CliError::value("--uid", err))?;
            let rsk = sakke::extract_rsk(community.sakke_master(), &uid)
                .map_err(|err| CliError::value("--uid", err))?;
            UserKeysFile::from_raw(&uid, period_no, &ssk, &pvt, &rsk, public)
        }
        // clap requires one of the two.
        (None, None) => return Err(CliError::invalid("kms issue", "give --user or --uid")),
    };
    output::json_to(&file, &args.out)
}
