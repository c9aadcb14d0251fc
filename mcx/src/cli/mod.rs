//! Command-line syntax (clap derive) and dispatch to the subcommands.

mod args;
mod bench;
mod eccsi;
mod kdf;
mod kms;
mod mikey;
mod sakke;
mod selfcheck;
mod srtp;
mod system;
mod uid;

use clap::{Parser, Subcommand};

use crate::error::CliError;

/// Shown after `mcx --help`.
const EXAMPLES: &str = "\
Commands and examples:
  mcx kms init --kms-uri kms.example.org --out community.json
  mcx kms public community.json --out public.json
  mcx kms issue community.json --user sip:alice@example.org --out alice.json
  mcx kms issue community.json --uid <32-OCTET-UID> --period-no 1490   (raw identifier)
  mcx uid --community public.json --uri sip:bob@example.org --json
  mcx uid --uri sip:bob@example.org --kms-uri kms.example.org --key-period 2592000 \\
          --key-period-offset 0 --period-no 1490
  mcx eccsi sign --keys alice.json --msg-text 'hello'
  mcx eccsi sign --kpak <KPAK> --id <ID> --ssk <SSK> --pvt <PVT> --msg-hex <M> \\
          --ephemeral <J>                 (known-answer test: RFC 6507 Appendix A)
  mcx eccsi verify --community public.json --id <ALICE-UID> --msg-text 'hello' --sig <SIG>
  mcx sakke encap --community public.json --id <BOB-UID>
  mcx sakke decap --keys bob.json --sed <SED>
  mcx mikey decode 'mikey ARoFAQahKuoB...' --keys alice.json
  mcx mikey wrap-tgmk --keys dispatcher.json --temporary-group sip:tg@example.org \\
          --group sip:a@example.org:<GMK-ID>:<GMK> --group sip:b@example.org:<GMK-ID>:<GMK> --json
  mcx mikey gmk --keys gms.json --member sip:alice@example.org --group sip:a@example.org \\
          --gmk <GMK> --gmk-id <GMK-ID> [--rand <R> --iv <IV> --ephemeral <J> --time <T>]
  mcx mikey csk --keys alice.json --server sip:mcptt-server.example.org --csk <CSK> \\
          --csk-id <CSK-ID>
  mcx kdf guk-id --gmk <GMK> --gmk-id <GMK-ID> --user sip:alice@example.org
  mcx kdf srtp --key <GMK> --key-id <GMK-ID> --user sip:alice@example.org --rand <RAND>
  mcx kdf srtp --key <TGMK> --key-id <TGMK-ID> --rand <RAND>
  mcx selfcheck
  mcx bench provision --clients 1000    (provisioning over HTTPS, timed per step)
  mcx demo
  mcx demo --groups 10 --members 100
  mcx up topology.toml
  mcx run topology.toml kms            (one role per process; also gms,
  mcx run topology.toml controlling     controlling, MC server and user URIs)
  mcx call topology.toml
  mcx demo --pcap call.pcap             (capture the call; call.pcap.keys holds its SRTP keys,
                                        call.pcap.tlskeys its TLS secrets)
  mcx tls ca --topology topology.toml --out certs/   (CA and per-role certificates for mcx run)
  mcx srtp decrypt --pcap call.pcap --keys call.pcap.keys --out heard/
  mcx srtp decrypt --key <MASTER-KEY> --salt <MASTER-SALT> --mki <MKI> <SRTP-HEX>... --json

Input: HEX values take upper or lower case, an optional 0x prefix, and
surrounding whitespace is ignored. FILE arguments take '-' for standard input
(one per command). Times are Unix seconds (UTC); key periods count from
1900-01-01T00:00:00Z as TS 33.180 does. The JSON files are described in
'mcx kms --help'.

Exit status: 0 on success; 1 on failure, with one line 'error: ...' on stderr
(bad input, invalid signature, failed decapsulation, failed self-check);
2 on a command-line usage error.";

/// Lab tool for 3GPP TS 33.180 (MCPTT) security: identity-based crypto and MIKEY.
///
/// MIKEY-SAKKE UIDs (TS 33.180 F.2.1), ECCSI signatures (RFC 6507, P-256)
/// and SAKKE key encapsulation (RFC 6508, RFC 6509 parameter set 1), with
/// hex and JSON in and out for test scripts. All cryptography is in the
/// mcx-ibc library; this tool only parses and prints.
#[derive(Debug, Parser)]
#[command(name = "mcx", version, after_long_help = EXAMPLES)]
pub(crate) struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    command: Command,
}

/// The top-level subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// KMS community: generate secrets, publish public values, issue user keys.
    #[command(subcommand, after_long_help = kms::FORMATS)]
    Kms(kms::KmsCommand),
    /// Compute a MIKEY-SAKKE UID (TS 33.180 F.2.1), the identifier keys are issued for.
    Uid(uid::UidArgs),
    /// ECCSI signatures (RFC 6507): sign with a user's keys, verify.
    #[command(subcommand)]
    Eccsi(eccsi::EccsiCommand),
    /// SAKKE (RFC 6508): encapsulate a shared secret value to an identifier, decapsulate.
    #[command(subcommand)]
    Sakke(sakke::SakkeCommand),
    /// MIKEY (RFC 3830/6509, TS 33.180): decode, verify and decrypt messages;
    /// build and sign wrapped TGMKs and GMK and CSK I_MESSAGEs.
    #[command(subcommand)]
    Mikey(mikey::MikeyCommand),
    /// Key derivations (TS 33.180 Annex F, RFC 3830 4.1.3): GUK-ID, SRTP master keys.
    #[command(subcommand)]
    Kdf(kdf::KdfCommand),
    /// Run the published test vectors and a fresh-community round trip.
    ///
    /// Checks RFC 6507 Appendix A (ECCSI), RFC 6508 Appendix A (SAKKE), the
    /// Streamwide MIKEY-SAKKE interop vectors (UIDs, users' SSK/PVT and
    /// RSKs), then generates a community with OS randomness, issues two
    /// users, signs and verifies, encapsulates and decapsulates. Prints one
    /// line per check with its time; exits 0 only if all pass.
    Selfcheck,
    /// Run the default topology and one temporary group – broadcast call, with checks.
    ///
    /// Starts a KMS, a GMS, the controlling server, MC servers A and B and
    /// the clients (a dispatcher, members of groups A and B, a non-member)
    /// on loopback sockets in this process; the clients provision from the
    /// KMS and GMS over HTTP; the dispatcher calls groups A and B over SIP.
    /// Prints the nine steps' timeline with timings, each group's
    /// acceptance, and a final check that every member holds the
    /// initiator's TGMK (by key ID and key confirmation; the key is never
    /// printed). Exits 0 only if every check passes. `--groups N --members
    /// M` generates a bigger topology (the set-up time benchmark).
    Demo(system::DemoArgs),
    /// Run every role of a topology in this process until interrupted.
    Up(system::UpArgs),
    /// Run one role of a topology (kms, gms, controlling, an MC server or a
    /// user URI) until interrupted.
    Run(system::RunArgs),
    /// Run the initiator of a topology's `[call]` section, make the call, print the
    /// result and exit.
    Call(system::CallArgs),
    /// List the calls of a running process's roles (`mcx run … --admin
    /// ADDR`), or end one: `mcx calls --admin ADDR end CALL-ID`.
    Calls(system::CallsArgs),
    /// SRTP for the lab: decrypt the voice of a capture, or packets given in hex.
    #[command(subcommand)]
    Srtp(srtp::SrtpCommand),
    /// TLS certificates for a topology run one role per process.
    #[command(subcommand)]
    Tls(system::TlsCommand),
    /// Load figures on this machine: `mcx bench provision --clients N`,
    /// `mcx bench call --concurrent N` (docs/BENCHMARKS.md).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Runs the parsed command.
pub(crate) fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Kms(command) => kms::run(command),
        Command::Mikey(command) => mikey::run(command),
        Command::Uid(args) => uid::run(&args),
        Command::Eccsi(command) => eccsi::run(command),
        Command::Sakke(command) => sakke::run(command),
        Command::Kdf(command) => kdf::run(command),
        Command::Selfcheck => selfcheck::run(),
        Command::Demo(args) => system::demo(&args),
        Command::Up(args) => system::up(&args),
        Command::Run(args) => system::run(&args),
        Command::Call(args) => system::call(&args),
        Command::Calls(args) => system::calls(&args),
        Command::Srtp(command) => srtp::run(command),
        Command::Tls(command) => system::tls(&command),
        Command::Bench(command) => bench::run(&command),
    }
}
