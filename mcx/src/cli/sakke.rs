//! `mcx sakke`: SAKKE encapsulation and decapsulation (RFC 6508, RFC 6509
//! parameter set 1).

use clap::{ArgGroup, Args, Subcommand};
use mcx_ibc::sakke::{self, KmsPublicKey, ReceiverKey, Rsk, Ssv};
use serde::Serialize;

use crate::error::CliError;
use crate::input;
use crate::keyfile::{KeyFile, PublicFile, UserKeysFile};
use crate::output;

/// `mcx sakke` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum SakkeCommand {
    /// Encapsulate a shared secret value (SSV) to an identifier.
    ///
    /// Prints JSON {"ssv": <16 octets hex>, "sed": <273 octets hex, R || H>}.
    /// The SSV is random unless --ssv is given; the same SSV and identifier
    /// always give the same SED (RFC 6508 6.2.1).
    Encap(EncapArgs),
    /// Decapsulate SAKKE encapsulated data; prints the SSV, 16 octets hex.
    ///
    /// The RSK is first validated against Z and the identifier
    /// (RFC 6508 6.1.2); data not made for this key fails with exit 1.
    Decap(DecapArgs),
}

/// `mcx sakke encap`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("z_source").required(true).args(["z", "community"])))]
pub(crate) struct EncapArgs {
    /// The SAKKE KMS public key Z, 257 octets hex (04 || x || y).
    #[arg(long, value_name = "HEX")]
    z: Option<String>,
    /// Take Z from a community, public or user keys file ('-' for stdin).
    #[arg(long, value_name = "FILE", visible_alias = "community-public")]
    community: Option<String>,
    /// The receiver's identifier, hex (the 32-octet UID in TS 33.180; see 'mcx uid').
    #[arg(long, value_name = "HEX")]
    id: String,
    /// The SSV to encapsulate, 16 octets hex. Default: a random SSV.
    #[arg(long, value_name = "HEX")]
    ssv: Option<String>,
}

/// `mcx sakke decap`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("key_source").required(true).args(["keys", "rsk"])))]
pub(crate) struct DecapArgs {
    /// The receiver's user keys file from 'mcx kms issue' ('-' for stdin): Z, UID and RSK.
    #[arg(long, value_name = "USER.json")]
    keys: Option<String>,
    /// Instead of --keys: the receiver secret key, 257 octets hex.
    #[arg(long, value_name = "HEX", requires_all = ["z", "id"])]
    rsk: Option<String>,
    /// With --rsk: the SAKKE KMS public key Z, 257 octets hex.
    #[arg(long, value_name = "HEX", requires = "rsk")]
    z: Option<String>,
    /// With --rsk: the receiver's identifier, hex.
    #[arg(long, value_name = "HEX", requires = "rsk")]
    id: Option<String>,
    /// The SAKKE encapsulated data, 273 octets hex (R || H).
    #[arg(long, value_name = "HEX")]
    sed: String,
}

/// `mcx sakke encap` output.
#[derive(Debug, Serialize)]
struct EncapJson {
    /// The shared secret value, 16 octets hex.
    ssv: String,
    /// The encapsulated data, 273 octets hex.
    sed: String,
}

/// Runs a `mcx sakke` subcommand.
pub(crate) fn run(command: SakkeCommand) -> Result<(), CliError> {
    match command {
        SakkeCommand::Encap(args) => encap(&args),
        SakkeCommand::Decap(args) => decap(&args),
    }
}

fn encap(args: &EncapArgs) -> Result<(), CliError> {
    let z = match (&args.z, &args.community) {
        (Some(z), _) => input::hex_with("--z", z, KmsPublicKey::from_bytes)?,
        (None, Some(path)) => PublicFile::load(path)?.z_public()?,
        // clap requires one of the two.
        (None, None) => return Err(CliError::invalid("sakke encap", "give --z or --community")),
    };
    let id = input::hex("--id", &args.id)?;
    let ssv = match &args.ssv {
        Some(ssv) => input::hex_with("--ssv", ssv, Ssv::from_bytes)?,
        None => Ssv::generate(&mut input::os_rng()?),
    };
    let sed = sakke::encapsulate(&z, &id, &ssv).map_err(|err| CliError::value("--id", err))?;
    output::json(&EncapJson {
        ssv: hex::encode(ssv.as_bytes()),
        sed: hex::encode(sed),
    })
}

fn decap(args: &DecapArgs) -> Result<(), CliError> {
    let key = match (&args.keys, &args.rsk, &args.z, &args.id) {
        (Some(path), ..) => UserKeysFile::load(path)?.receiver_key()?,
        (None, Some(rsk), Some(z), Some(id)) => {
            let z = input::hex_with("--z", z, KmsPublicKey::from_bytes)?;
            let id = input::hex("--id", id)?;
            let rsk = input::hex_with("--rsk", rsk, Rsk::from_bytes)?;
            ReceiverKey::new(&z, &id, &rsk).map_err(|err| CliError::value("--rsk", err))?
        }
        // clap enforces one complete key source.
        _ => {
            return Err(CliError::invalid(
                "sakke decap",
                "give --keys, or --rsk, --z and --id",
            ));
        }
    };
    let sed = input::hex("--sed", &args.sed)?;
    let ssv = key.decapsulate(&sed).map_err(|err| match err {
        mcx_ibc::Error::DecapsulationFailed => CliError::Crypto(err),
        other => CliError::value("--sed", other),
    })?;
    output::line(&hex::encode(ssv.as_bytes()))
}
