//! `mcx eccsi`: ECCSI signing and verification (RFC 6507).

use clap::{ArgGroup, Args, Subcommand};
use mcx_ibc::eccsi::{self, Kpak, Pvt, Signature, SigningKey, Ssk, hazmat};

use super::args::MessageArgs;
use crate::error::CliError;
use crate::input;
use crate::keyfile::{KeyFile, PublicFile, UserKeysFile};
use crate::output;

/// `mcx eccsi` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum EccsiCommand {
    /// Sign a message; prints the signature, 129 octets hex (r || s || PVT).
    ///
    /// The SSK and PVT are first validated against the KPAK and identifier
    /// (RFC 6507 5.1.2). Each signature uses a fresh random j, so signing
    /// twice gives different signatures; --ephemeral gives j instead, for
    /// known-answer tests (RFC 6507 Appendix A).
    Sign(SignArgs),
    /// Verify a signature; prints "valid" and exits 0, or exits 1 with an error line.
    Verify(VerifyArgs),
}

/// `mcx eccsi sign`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("key_source").required(true).args(["keys", "kpak"])))]
pub(crate) struct SignArgs {
    /// The signer's user keys file from 'mcx kms issue' ('-' for stdin): KPAK, UID, SSK, PVT.
    #[arg(long, value_name = "USER.json")]
    keys: Option<String>,
    /// Instead of --keys: the KMS public authentication key, 65 octets hex.
    #[arg(long, value_name = "HEX", requires_all = ["id", "ssk", "pvt"])]
    kpak: Option<String>,
    /// With --kpak: the signer's identifier, hex (the 32-octet UID in TS 33.180).
    #[arg(long, value_name = "HEX", requires = "kpak")]
    id: Option<String>,
    /// With --kpak: the secret signing key, 32 octets hex.
    #[arg(long, value_name = "HEX", requires = "kpak")]
    ssk: Option<String>,
    /// With --kpak: the public validation token, 65 octets hex.
    #[arg(long, value_name = "HEX", requires = "kpak")]
    pvt: Option<String>,
    /// The ephemeral j, 32 octets hex in [1, q-1], for known-answer tests
    /// only: signing two messages with one j reveals the SSK.
    #[arg(long, value_name = "HEX")]
    ephemeral: Option<String>,
    /// The message.
    #[command(flatten)]
    msg: MessageArgs,
}

/// `mcx eccsi verify`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("kpak_source").required(true).args(["keys", "kpak", "community"])))]
pub(crate) struct VerifyArgs {
    /// The signer's user keys file: KPAK and UID are taken from it ('-' for stdin).
    #[arg(long, value_name = "USER.json")]
    keys: Option<String>,
    /// The KMS public authentication key, 65 octets hex (04 || x || y).
    #[arg(long, value_name = "HEX")]
    kpak: Option<String>,
    /// Take the KPAK from a community, public or user keys file ('-' for stdin).
    #[arg(long, value_name = "FILE", visible_alias = "community-public")]
    community: Option<String>,
    /// The signer's identifier, hex (the 32-octet UID in TS 33.180; see 'mcx uid').
    #[arg(
        long,
        value_name = "HEX",
        required_unless_present = "keys",
        conflicts_with = "keys"
    )]
    id: Option<String>,
    /// The message.
    #[command(flatten)]
    msg: MessageArgs,
    /// The signature, 129 octets hex (r || s || PVT).
    #[arg(long, value_name = "HEX")]
    sig: String,
}

/// Runs a `mcx eccsi` subcommand.
pub(crate) fn run(command: EccsiCommand) -> Result<(), CliError> {
    match command {
        EccsiCommand::Sign(args) => sign(&args),
        EccsiCommand::Verify(args) => verify(&args),
    }
}

fn sign(args: &SignArgs) -> Result<(), CliError> {
    let key = match (&args.keys, &args.kpak, &args.id, &args.ssk, &args.pvt) {
        (Some(path), ..) => UserKeysFile::load(path)?.signing_key()?,
        (None, Some(kpak), Some(id), Some(ssk), Some(pvt)) => {
            let kpak = input::hex_with("--kpak", kpak, Kpak::from_bytes)?;
            let id = input::hex("--id", id)?;
            let ssk = input::hex_with("--ssk", ssk, Ssk::from_bytes)?;
            let pvt = input::hex_with("--pvt", pvt, Pvt::from_bytes)?;
            SigningKey::new(&kpak, &id, ssk, pvt)
                .map_err(|err| CliError::value("--ssk/--pvt", err))?
        }
        // clap enforces one complete key source.
        _ => {
            return Err(CliError::invalid(
                "eccsi sign",
                "give --keys, or --kpak, --id, --ssk and --pvt",
            ));
        }
    };
    let msg = args.msg.read()?;
    let sig = match &args.ephemeral {
        Some(j) => {
            let j = zeroize::Zeroizing::new(input::hex("--ephemeral", j)?);
            hazmat::sign_with_j(&key, &msg, &j)
                .map_err(|err| CliError::value("--ephemeral", err))?
        }
        None => key.sign(&msg, &mut input::os_rng()?),
    };
    output::line(&hex::encode(sig.to_bytes()))
}

fn verify(args: &VerifyArgs) -> Result<(), CliError> {
    let (kpak, id) = match (&args.keys, &args.kpak, &args.community, &args.id) {
        (Some(path), ..) => {
            let file = UserKeysFile::load(path)?;
            (file.public().kpak()?, file.uid()?.to_vec())
        }
        (None, Some(kpak), None, Some(id)) => (
            input::hex_with("--kpak", kpak, Kpak::from_bytes)?,
            input::hex("--id", id)?,
        ),
        (None, None, Some(path), Some(id)) => {
            (PublicFile::load(path)?.kpak()?, input::hex("--id", id)?)
        }
        // clap enforces one KPAK source and --id without --keys.
        _ => {
            return Err(CliError::invalid(
                "eccsi verify",
                "give --keys, or --kpak or --community with --id",
            ));
        }
    };
    let sig = input::hex_with("--sig", &args.sig, Signature::from_bytes)?;
    let msg = args.msg.read()?;
    eccsi::verify(&kpak, &id, &msg, &sig)?;
    output::line("valid")
}
