//! `mcx mikey`: inspect MIKEY messages (RFC 3830, RFC 6509, TS 33.180).

use clap::{Args, Subcommand};
use mcx_ibc::kms::CommunityPublic;
use mcx_mikey::describe::{Keys, describe, parse_input};
use mcx_mikey::{Gmk, KeyId};

use crate::error::CliError;
use crate::input;
use crate::keyfile::{PublicFile, UserKeysFile};
use crate::output;

/// `mcx mikey` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum MikeyCommand {
    /// Decode a MIKEY message into an annotated tree; with keys, verify and decrypt.
    ///
    /// The message is base64 (as after 'mikey ' in SDP), hex, the whole SDP
    /// line 'a=key-mgmt:mikey <base64>', or a binary file. Every payload is
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
}

/// `mcx mikey decode`.
#[derive(Debug, Args)]
pub(crate) struct DecodeArgs {
    /// The message: base64, hex, 'mikey <base64>' or 'a=key-mgmt:mikey <base64>'.
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

    let user = args
        .keys
        .as_deref()
        .map(input::read_json::<UserKeysFile>)
        .transpose()?;
    let public_file = match (&user, &args.community) {
        (Some(u), _) => Some(u.public()),
        (None, Some(path)) => Some(input::read_json::<PublicFile>(path)?),
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
        receiver_uri: user.as_ref().map(|u| u.user_uri.as_str()),
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

fn community_public(file: &PublicFile) -> Result<CommunityPublic, CliError> {
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
