//! `mcx mikey`: inspect MIKEY messages (RFC 3830, RFC 6509, TS 33.180),
//! and build the key distribution messages a lab needs (see `build`).

mod build;

use clap::{Args, Subcommand};
use mcx_ibc::kms::CommunityPublic;
use mcx_mikey::describe::{Keys, describe, parse_input};
use mcx_mikey::{Gmk, KeyId};

use crate::error::CliError;
use crate::input;
use crate::keyfile::{KeyFile, PublicFile, UserKeysFile};
use crate::output;

/// `mcx mikey` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum MikeyCommand {
    /// Decode a MIKEY message into an annotated tree; with keys, verify and decrypt.
    ///
    /// The message is base64 (as after 'mikey ' in SDP), hex, the whole SDP
    /// line 'a=key-mgmt:mikey BASE64', or a binary file. Every payload is
    /// shown with its offset: HDR (with CS ID maps types 0, 1 and 2), T,
    /// RAND, IDR, SP, KEMAC, SAKKE, general extensions 6 and 7, SIGN, ERR.
    ///
    /// With --community (or --keys) the ECCSI signature is verified against
    /// the signer's UID; with --keys a MIKEY-SAKKE payload is decapsulated
    /// and a GMK's key parameters and SRTP keys are shown; with --gmk a
    /// wrapped TGMK is checked and decrypted. Decrypted keys are printed:
    /// this is a lab tool.
    ///
    /// Exit status 1 if the message does not decode completely or a check
    /// fails (signature invalid, decapsulation or MAC failed).
    Decode(DecodeArgs),
    /// Wrap a TGMK for constituent groups: one signed copy per --group.
    ///
    /// Each copy is the wrapped-TGMK MIKEY message (docs/tgmk-wrap.md)
    /// under the group's GMK, signed by the initiator of --keys; 'mcx mikey
    /// decode --gmk GMK-ID:GMK' opens it. All copies share T and RAND.
    /// Prints one line per group, 'GROUP MESSAGE' (base64, or hex with
    /// --hex), or JSON with --json (the copies, TGMK, TGMK-ID, RAND and
    /// the call's SRTP master key, salt and MKI). The TGMK, TGMK-ID, RAND,
    /// IVs and ECCSI j are random unless given.
    WrapTgmk(WrapTgmkArgs),
    /// Build and sign a GMK I_MESSAGE from a GMS to a member (TS 33.180 5.7, E.2).
    ///
    /// The GMK is SAKKE-encapsulated to the member's UID (deterministic:
    /// the GMK is the SSV) and the key parameters sealed under the DPCK.
    /// Prints the message (base64, or hex with --hex), or JSON with --json
    /// (also RAND, IV, GUK-ID and the member's SRTP master key, salt and
    /// MKI). RAND, IV and ECCSI j are random unless given, so a lab can
    /// reproduce a vector octet for octet.
    Gmk(GmkArgs),
    /// Build and sign a CSK I_MESSAGE from a client to its MC server (TS 33.180 5.4, E.4).
    ///
    /// As 'mcx mikey gmk', with CS ID 6 and SPI = CSK-ID; --json adds the
    /// SRTCP master key, salt and MKI of the CSK.
    Csk(CskArgs),
}

/// What signs a built message: the ECCSI key of a user keys file, its
/// community, the time stamp, and optionally a given j.
#[derive(Debug, Args)]
pub(crate) struct SignerArgs {
    /// The signer's user keys file ('mcx kms issue'): ECCSI SSK and PVT, community public values.
    #[arg(long, value_name = "USER.json")]
    keys: String,
    /// Time stamp, Unix seconds (default: now); must fall in the key period of --keys.
    #[arg(long, value_name = "UNIX_SECS")]
    time: Option<u64>,
    /// The ECCSI ephemeral j, 32 octets hex, for known-answer tests only:
    /// a j used for two messages reveals the SSK. Default: random.
    #[arg(long, value_name = "HEX")]
    ephemeral: Option<String>,
    /// Print the message as hex instead of base64.
    #[arg(long, conflicts_with = "json")]
    hex: bool,
    /// Print JSON: the message and the values it was built from.
    #[arg(long)]
    json: bool,
}

/// `mcx mikey wrap-tgmk`.
#[derive(Debug, Args)]
pub(crate) struct WrapTgmkArgs {
    /// The signer.
    #[command(flatten)]
    signer: SignerArgs,
    /// The temporary group's ID (URI).
    #[arg(long, value_name = "URI")]
    temporary_group: String,
    /// A constituent group: URI:GMK-ID:GMK (hex 4 and 16 octets); repeatable.
    /// The URI may contain colons: the last two fields are the keys.
    #[arg(long, value_name = "URI:GMK-ID:GMK", required = true)]
    group: Vec<String>,
    /// The TGMK, 16 octets hex (default: random), with --tgmk-id.
    #[arg(long, value_name = "HEX", requires = "tgmk_id")]
    tgmk: Option<String>,
    /// The TGMK-ID, 4 octets hex, purpose tag 7 (first hex digit 7).
    #[arg(long, value_name = "HEX", requires = "tgmk")]
    tgmk_id: Option<String>,
    /// The RAND shared by every copy, 16 octets hex (default: random).
    #[arg(long, value_name = "HEX")]
    rand: Option<String>,
    /// The IV of the key parameters, 16 octets hex (default: random per copy;
    /// given, with one --group only).
    #[arg(long, value_name = "HEX")]
    iv: Option<String>,
    /// Activation time, Unix seconds (default: the time stamp).
    #[arg(long, value_name = "UNIX_SECS")]
    activation: Option<u64>,
    /// Expiry time, Unix seconds (default: one hour after the time stamp).
    #[arg(long, value_name = "UNIX_SECS")]
    expiry: Option<u64>,
}

/// What a GMK and a CSK I_MESSAGE share besides the signer.
#[derive(Debug, Args)]
pub(crate) struct TransportArgs {
    /// The KMS community of both parties (default: the values in --keys).
    #[arg(long, value_name = "FILE")]
    community: Option<String>,
    /// The RAND, 16 octets hex (default: random).
    #[arg(long, value_name = "HEX")]
    rand: Option<String>,
    /// The IV of the key parameters, 16 octets hex (default: random).
    #[arg(long, value_name = "HEX")]
    iv: Option<String>,
    /// Activation time of the key parameters, 40-bit Unix seconds (0: not set).
    #[arg(long, value_name = "UNIX_SECS", default_value_t = 0)]
    activation: u64,
    /// Expiry time of the key parameters, 40-bit Unix seconds (0: not set).
    #[arg(long, value_name = "UNIX_SECS", default_value_t = 0)]
    expiry: u64,
    /// The key parameters' "date and time" (40 bits; default: the time stamp).
    #[arg(long, value_name = "N")]
    date_time: Option<u64>,
    /// Leave the key parameters extension out.
    #[arg(long, conflicts_with_all = ["iv", "activation", "expiry", "date_time"])]
    no_key_params: bool,
    /// Name both parties by UID (ID roles 8 and 9) instead of URI.
    #[arg(long)]
    identity_hiding: bool,
    /// Leave parameter type N out of the SP (the default group profile of
    /// TS 33.180 Table E.2-1); repeatable. Some vendors omit 13 (ROC
    /// transmission rate).
    #[arg(long, value_name = "N")]
    omit_sp_param: Vec<u8>,
    /// Leave the SP payload out (as mcx's own clients send a CSK; the
    /// receiver then uses the default profile).
    #[arg(long, conflicts_with = "omit_sp_param")]
    no_sp: bool,
}

/// `mcx mikey gmk`.
#[derive(Debug, Args)]
pub(crate) struct GmkArgs {
    /// The GMS (signer).
    #[command(flatten)]
    signer: SignerArgs,
    /// Shared with `mcx mikey csk`.
    #[command(flatten)]
    transport: TransportArgs,
    /// The member's MC service user ID URI (the receiver).
    #[arg(long, value_name = "URI")]
    member: String,
    /// The group's ID for the key parameters; without it their list of
    /// MC group IDs is present but empty.
    #[arg(long, value_name = "URI")]
    group: Option<String>,
    /// The GMK, 16 octets hex.
    #[arg(long, value_name = "HEX")]
    gmk: String,
    /// The GMK-ID, 4 octets hex, purpose tag 0.
    #[arg(long, value_name = "HEX")]
    gmk_id: String,
}

/// `mcx mikey csk`.
#[derive(Debug, Args)]
pub(crate) struct CskArgs {
    /// The client (signer).
    #[command(flatten)]
    signer: SignerArgs,
    /// Shared with `mcx mikey gmk`.
    #[command(flatten)]
    transport: TransportArgs,
    /// The MC server domain's security identifier (MDSI) URI: the receiver.
    #[arg(long, value_name = "URI")]
    server: String,
    /// The CSK, 16 octets hex.
    #[arg(long, value_name = "HEX")]
    csk: String,
    /// The CSK-ID, 4 octets hex, purpose tag 2.
    #[arg(long, value_name = "HEX")]
    csk_id: String,
}

/// `mcx mikey decode`.
#[derive(Debug, Args)]
pub(crate) struct DecodeArgs {
    /// The message: base64, hex, 'mikey BASE64' or 'a=key-mgmt:mikey BASE64'.
    #[arg(
        value_name = "MESSAGE",
        required_unless_present = "file",
        conflicts_with = "file"
    )]
    message: Option<String>,
    /// Read the message from a file ('-' for stdin): text in any form above, or raw octets.
    #[arg(long, value_name = "FILE")]
    file: Option<String>,
    /// Print JSON instead of the text tree.
    #[arg(long)]
    json: bool,
    /// The receiver's user keys file ('mcx kms issue'): verifies and decapsulates.
    #[arg(long, value_name = "USER.json")]
    keys: Option<String>,
    /// A community, public or user keys file, for verifying signatures only.
    #[arg(long, value_name = "FILE", conflicts_with = "keys")]
    community: Option<String>,
    /// A GMK for unwrapping a TGMK, as GMK-ID:GMK in hex (4 and 16 octets); repeatable.
    #[arg(long, value_name = "ID:KEY")]
    gmk: Vec<String>,
}

/// Runs an `mcx mikey` subcommand.
pub(crate) fn run(command: MikeyCommand) -> Result<(), CliError> {
    match command {
        MikeyCommand::Decode(args) => decode(&args),
        MikeyCommand::WrapTgmk(args) => build::wrap_tgmk(&args),
        MikeyCommand::Gmk(args) => build::gmk(&args),
        MikeyCommand::Csk(args) => build::csk(&args),
    }
}

fn decode(args: &DecodeArgs) -> Result<(), CliError> {
    let bytes = match (&args.message, &args.file) {
        (Some(text), _) => parse_input(text).map_err(|e| invalid("MESSAGE", e))?,
        (None, Some(path)) => {
            let raw = input::read_bytes(path)?;
            // A file holding text (base64 or hex) is parsed as text;
            // anything else is taken as the message's octets.
            match std::str::from_utf8(&raw).ok().map(parse_input) {
                Some(Ok(b)) => b,
                _ => raw,
            }
        }
        (None, None) => return Err(invalid("MESSAGE", "missing")),
    };

    // KeyFile::load names the file in every error about its fields.
    let user = args.keys.as_deref().map(UserKeysFile::load).transpose()?;
    let public_file = match (&user, &args.community) {
        (Some(u), _) => Some(u.public()),
        (None, Some(path)) => Some(PublicFile::load(path)?),
        (None, None) => None,
    };
    let community = public_file.as_ref().map(community_public).transpose()?;
    let receiver = user.as_ref().map(UserKeysFile::receiver_key).transpose()?;
    let gmks = args
        .gmk
        .iter()
        .map(|g| parse_gmk(g))
        .collect::<Result<Vec<_>, _>>()?;
    let gmk_refs: Vec<(KeyId, &Gmk)> = gmks.iter().map(|(id, k)| (*id, k)).collect();
    let keys = Keys {
        kms: community.as_ref(),
        receiver: receiver.as_ref(),
        receiver_uri: user.as_ref().and_then(|u| u.user_uri.as_deref()),
        gmks: &gmk_refs,
    };

    let description = describe(&bytes, &keys);
    if args.json {
        output::json(&description.to_json())?;
    } else {
        output::line(description.to_text().trim_end())?;
    }
    if let Some(e) = &description.error {
        return Err(invalid("MESSAGE", e));
    }
    let failed: Vec<String> = description
        .checks
        .iter()
        .filter_map(|n| {
            let v = n.value.as_deref()?;
            (v.starts_with("INVALID") || v.starts_with("FAILED"))
                .then(|| format!("{}: {v}", n.name))
        })
        .collect();
    if let Some(first) = failed.first() {
        return Err(invalid("check", first));
    }
    Ok(())
}

pub(super) fn community_public(file: &PublicFile) -> Result<CommunityPublic, CliError> {
    Ok(CommunityPublic {
        kms_uri: file.kms_uri.clone(),
        key_period_len: file.key_period,
        key_period_offset: file.key_period_offset,
        kpak: file.kpak()?,
        sakke_public: file.z_public()?,
    })
}

fn parse_gmk(text: &str) -> Result<(KeyId, Gmk), CliError> {
    let (id, key) = text
        .split_once(':')
        .ok_or_else(|| invalid("--gmk", "expected GMK-ID:GMK in hex"))?;
    let id: [u8; 4] = input::hex_array("--gmk GMK-ID", id)?;
    let key = input::hex("--gmk GMK", key)?;
    let key = Gmk::from_bytes(&key).map_err(|e| invalid("--gmk GMK", e))?;
    Ok((KeyId::from_bytes(id), key))
}

fn invalid(what: &str, detail: impl ToString) -> CliError {
    CliError::Invalid {
        what: what.to_owned(),
        detail: detail.to_string(),
    }
}
