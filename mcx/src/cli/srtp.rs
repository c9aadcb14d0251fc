//! `mcx srtp decrypt`: a lab listens to what was sent.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::decrypt::{self, LabKey};
use crate::error::CliError;
use crate::{input, output};

/// `mcx srtp …`.
#[derive(Debug, Subcommand)]
pub(crate) enum SrtpCommand {
    /// Decrypt the SRTP voice streams of a capture to WAV files.
    ///
    /// Reads a pcap or pcapng file (Ethernet, loopback, raw IP or Linux
    /// cooked frames), takes the UDP datagrams that are SRTP with the MKI
    /// of the keys given (TS 33.180: AEAD_AES_128_GCM, ROC in every packet)
    /// and writes DIR/SSRC.wav per stream (PCMU decoded to 8 kHz
    /// 16-bit mono, placed by RTP timestamp, silence where packets are
    /// missing). Prints per stream: legs, datagrams, relayed copies,
    /// packets, decrypted, failed. Exits 1, writing no WAV, when no packet
    /// decrypts.
    ///
    /// Instead of --pcap: SRTP packets in hex (arguments, or --packets FILE
    /// with one per line), decrypted in order with one session; prints each
    /// RTP payload in hex, or with --json the SSRC, sequence number, index,
    /// payload type, MKI and payload of each. Exits 1, printing nothing,
    /// naming the first packet that does not open.
    Decrypt(DecryptArgs),
}

/// `mcx srtp decrypt`.
#[derive(Debug, Args)]
pub(crate) struct DecryptArgs {
    /// The capture (pcap or pcapng), with --out.
    #[arg(long, value_name = "FILE", requires = "out",
          required_unless_present_any = ["packet", "packets"], conflicts_with_all = ["packet", "packets", "json"])]
    pcap: Option<PathBuf>,
    /// SRTP packets, hex (RTP header ‖ ciphertext ‖ tag ‖ MKI ‖ ROC).
    #[arg(value_name = "PACKET_HEX")]
    packet: Vec<String>,
    /// A file of SRTP packets in hex, one per line ('-' for stdin); blank lines are skipped.
    #[arg(long, value_name = "FILE", conflicts_with = "packet")]
    packets: Option<String>,
    /// With packets: print JSON, one object per packet.
    #[arg(long)]
    json: bool,
    /// The key file `mcx demo --pcap FILE` writes next to it (FILE.keys).
    #[arg(long, value_name = "FILE.keys", conflicts_with_all = ["tgmk", "gmk", "master_key"])]
    keys: Option<PathBuf>,
    /// A TGMK (32 hex digits), with --tgmk-id and --rand.
    #[arg(long, value_name = "HEX", requires_all = ["tgmk_id", "rand"], conflicts_with_all = ["gmk", "master_key"])]
    tgmk: Option<String>,
    /// The TGMK-ID (8 hex digits), the MKI of the call's SRTP.
    #[arg(long, value_name = "HEX", requires = "tgmk")]
    tgmk_id: Option<String>,
    /// A GMK (32 hex digits), with --gmk-id, --guk-id and --rand.
    #[arg(long, value_name = "HEX", requires_all = ["gmk_id", "guk_id", "rand"], conflicts_with = "master_key")]
    gmk: Option<String>,
    /// The GMK-ID (8 hex digits).
    #[arg(long, value_name = "HEX", requires = "gmk")]
    gmk_id: Option<String>,
    /// The GUK-ID (8 hex digits).
    #[arg(long, value_name = "HEX", requires = "gmk")]
    guk_id: Option<String>,
    /// The RAND of the MIKEY message that carried the TGMK or GMK (hex).
    #[arg(long, value_name = "HEX")]
    rand: Option<String>,
    /// An SRTP master key (32 hex digits), with --master-salt and --mki.
    #[arg(long, value_name = "HEX", visible_alias = "key", requires_all = ["master_salt", "mki"])]
    master_key: Option<String>,
    /// The SRTP master salt (24 hex digits).
    #[arg(
        long,
        value_name = "HEX",
        visible_alias = "salt",
        requires = "master_key"
    )]
    master_salt: Option<String>,
    /// The MKI (hex: the TGMK-ID, or GMK-ID ‖ GUK-ID).
    #[arg(long, value_name = "HEX", requires = "master_key")]
    mki: Option<String>,
    /// Where the WAV files go (created if need be), with --pcap.
    #[arg(long, value_name = "DIR", requires = "pcap")]
    out: Option<PathBuf>,
}

/// The keys the arguments name.
fn keys(a: &DecryptArgs) -> Result<Vec<LabKey>, CliError> {
    let rand = |r: &Option<String>| {
        r.as_deref()
            .ok_or_else(|| CliError::invalid("--rand", "missing"))
            .and_then(|r| input::hex("--rand", r))
    };
    if let Some(path) = &a.keys {
        return decrypt::read_key_file(path);
    }
    if let (Some(tgmk), Some(id)) = (&a.tgmk, &a.tgmk_id) {
        return Ok(vec![decrypt::tgmk_key(
            "--tgmk",
            tgmk,
            "--tgmk-id",
            id,
            &rand(&a.rand)?,
        )?]);
    }
    if let (Some(gmk), Some(gmk_id), Some(guk_id)) = (&a.gmk, &a.gmk_id, &a.guk_id) {
        return Ok(vec![decrypt::gmk_key(
            gmk,
            gmk_id,
            guk_id,
            &rand(&a.rand)?,
        )?]);
    }
    if let (Some(k), Some(s), Some(m)) = (&a.master_key, &a.master_salt, &a.mki) {
        return Ok(vec![decrypt::master_key(k, s, m)?]);
    }
    Err(CliError::invalid(
        "keys",
        "give --keys FILE, --tgmk/--tgmk-id/--rand, --gmk/--gmk-id/--guk-id/--rand, or --master-key/--master-salt/--mki",
    ))
}

/// Runs `mcx srtp …`.
pub(crate) fn run(command: SrtpCommand) -> Result<(), CliError> {
    match command {
        SrtpCommand::Decrypt(a) => match (&a.pcap, &a.out) {
            (Some(pcap), Some(out)) => {
                let text = decrypt::run(pcap, keys(&a)?, out)?;
                output::line(text.trim_end())
            }
            _ => packets(&a),
        },
    }
}

/// `mcx srtp decrypt` of packets given in hex.
fn packets(a: &DecryptArgs) -> Result<(), CliError> {
    let packets = match &a.packets {
        Some(path) => {
            let text = String::from_utf8(input::read_bytes(path)?).map_err(|_| {
                CliError::invalid(
                    input::display_name(path),
                    "not text (one hex packet per line)",
                )
            })?;
            let name = input::display_name(path);
            text.lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(n, l)| input::hex(&format!("{name}: line {}", n + 1), l))
                .collect::<Result<Vec<_>, _>>()?
        }
        None => a
            .packet
            .iter()
            .enumerate()
            .map(|(n, p)| input::hex(&format!("PACKET_HEX {}", n + 1), p))
            .collect::<Result<Vec<_>, _>>()?,
    };
    if packets.is_empty() {
        return Err(CliError::invalid("PACKET_HEX", "no packets given"));
    }
    let opened = decrypt::decrypt_packets(&packets, keys(a)?)?;
    if a.json {
        return output::json(&opened);
    }
    let lines: Vec<&str> = opened.iter().map(|p| p.payload.as_str()).collect();
    output::line(&lines.join("\n"))
}
