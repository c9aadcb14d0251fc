//! `mcx kdf`: the key derivations of TS 33.180 Annex F and RFC 3830 4.1.3
//! (PRF-HMAC-SHA-256), for checking another implementation's values.

use clap::{ArgGroup, Args, Subcommand};
use mcx_mikey::kdf::{self, CS_ID_GROUP_CALL};
use mcx_mikey::{Gmk, KeyId};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::error::CliError;
use crate::input;
use crate::output;

/// `mcx kdf` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum KdfCommand {
    /// A user's GUK-ID for a GMK (TS 33.180 F.1.3); prints 8 hex digits.
    ///
    /// GUK-ID = GMK-ID XOR (28 least significant bits of KDF(GMK, 0x50,
    /// user URI)). The same operation maps a GUK-ID back to the GMK-ID.
    GukId(GukIdArgs),
    /// SRTP master key, salt and MKI from a GMK, TGMK, CSK or PCK and the
    /// RAND of the MIKEY message that carried it (RFC 3830 4.1.3).
    ///
    /// TEK = PRF(key, 0x2AD01C64 || CS-ID || CSB-ID || RAND), salt likewise
    /// with 0x39A2C14B (PRF-HMAC-SHA-256; 16 and 12 octets). CSB-ID is
    /// --csb-id, or the GUK-ID of --user (a GMK: TS 33.180 7.4.2), or else
    /// --key-id (a TGMK, CSK or PCK). The MKI is --key-id, followed by the
    /// CSB-ID when that differs (GMK-ID || GUK-ID); none without --key-id.
    /// Prints JSON {"master_key", "master_salt", "mki", "cs_id", "csb_id"}.
    Srtp(SrtpArgs),
}

/// `mcx kdf guk-id`.
#[derive(Debug, Args)]
pub(crate) struct GukIdArgs {
    /// The GMK, 16 octets hex.
    #[arg(long, value_name = "HEX")]
    gmk: String,
    /// The GMK-ID, 4 octets hex.
    #[arg(long, value_name = "HEX")]
    gmk_id: String,
    /// The member's MC service user ID URI.
    #[arg(long, value_name = "URI")]
    user: String,
}

/// `mcx kdf srtp`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("bundle").required(true).multiple(true).args(["key_id", "csb_id", "user"])))]
pub(crate) struct SrtpArgs {
    /// The TGK: the GMK, TGMK, CSK or PCK, 16 octets hex.
    #[arg(long, value_name = "HEX")]
    key: String,
    /// Its key ID, 4 octets hex (GMK-ID, TGMK-ID, CSK-ID, PCK-ID).
    #[arg(long, value_name = "HEX")]
    key_id: Option<String>,
    /// The RAND of the MIKEY message that carried the key, hex.
    #[arg(long, value_name = "HEX")]
    rand: String,
    /// The crypto session ID (4: group call media, TS 33.180 E.1.2).
    #[arg(long, value_name = "N", default_value_t = CS_ID_GROUP_CALL)]
    cs_id: u8,
    /// The crypto session bundle ID, 4 octets hex.
    #[arg(long, value_name = "HEX", conflicts_with = "user")]
    csb_id: Option<String>,
    /// For a GMK: the sender's MC service user ID URI (CSB-ID = its GUK-ID).
    #[arg(long, value_name = "URI", requires = "key_id")]
    user: Option<String>,
}

/// `mcx kdf srtp` output.
#[derive(Debug, Serialize)]
struct SrtpJson {
    /// The SRTP master key, 16 octets hex.
    master_key: String,
    /// The SRTP master salt, 12 octets hex.
    master_salt: String,
    /// The MKI, hex; `null` without a key ID.
    mki: Option<String>,
    /// The crypto session ID used.
    cs_id: u8,
    /// The CSB-ID used, 4 octets hex.
    csb_id: String,
}

/// Runs a `mcx kdf` subcommand.
pub(crate) fn run(command: KdfCommand) -> Result<(), CliError> {
    match command {
        KdfCommand::GukId(args) => {
            let gmk = gmk("--gmk", &args.gmk)?;
            let gmk_id = key_id("--gmk-id", &args.gmk_id)?;
            output::line(&kdf::guk_id(&gmk, gmk_id, &args.user).to_string())
        }
        KdfCommand::Srtp(args) => srtp(&args),
    }
}

fn srtp(args: &SrtpArgs) -> Result<(), CliError> {
    let key = gmk("--key", &args.key)?;
    let id = args
        .key_id
        .as_deref()
        .map(|k| key_id("--key-id", k))
        .transpose()?;
    let csb_id = match (&args.csb_id, &args.user, id) {
        (Some(csb), _, _) => key_id("--csb-id", csb)?,
        (None, Some(user), Some(id)) => kdf::guk_id(&key, id, user),
        (None, None, Some(id)) => id,
        // clap requires one of the three, and --key-id with --user.
        _ => {
            return Err(CliError::invalid(
                "--csb-id",
                "give --key-id, --csb-id or --user",
            ));
        }
    };
    let rand = input::hex("--rand", &args.rand)?;
    let (master_key, master_salt) = kdf::srtp_master(key.as_bytes(), args.cs_id, csb_id.0, &rand);
    let (master_key, master_salt) = (Zeroizing::new(master_key), Zeroizing::new(master_salt));
    let mki = id.map(|id| {
        let mut mki = id.to_bytes().to_vec();
        if id != csb_id {
            mki.extend_from_slice(&csb_id.to_bytes());
        }
        hex::encode(mki)
    });
    output::json(&SrtpJson {
        master_key: hex::encode(*master_key),
        master_salt: hex::encode(*master_salt),
        mki,
        cs_id: args.cs_id,
        csb_id: csb_id.to_string(),
    })
}

/// A 16-octet key (GMK, TGMK, CSK) in hex.
pub(crate) fn gmk(what: &str, text: &str) -> Result<Gmk, CliError> {
    let bytes = Zeroizing::new(input::hex(what, text)?);
    Gmk::from_bytes(&bytes).map_err(|e| CliError::invalid(what, e.to_string()))
}

/// A key ID, 4 octets hex.
pub(crate) fn key_id(what: &str, text: &str) -> Result<KeyId, CliError> {
    Ok(KeyId::from_bytes(input::hex_array::<4>(what, text)?))
}
