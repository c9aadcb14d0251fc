//! The topology file: which roles exist, where they listen and what they
//! know. One TOML file describes a whole system; `mcx up` starts all of
//! it in one process, `mcx run FILE ROLE` one role of it (each on its
//! own host, with the same file). `topologies/default.toml` is the one
//! `mcx demo` embeds.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::error::CliError;

/// The embedded default topology (`mcx demo`, `mcx up` without a file).
pub(crate) const DEFAULT: &str = include_str!("../topologies/default.toml");

/// A whole system.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Topology {
    pub(crate) kms: KmsNode,
    /// The identity management server: with one, every credential
    /// (`token`) is a password at the IdMS and every service accepts only
    /// its short-lived access tokens; without, credentials are static
    /// bearer tokens (labs, SIPp).
    pub(crate) idms: Option<IdmsNode>,
    pub(crate) gms: GmsNode,
    pub(crate) controlling: ControllingNode,
    #[serde(rename = "mc_server")]
    pub(crate) mc_servers: Vec<McServerNode>,
    #[serde(rename = "group")]
    pub(crate) groups: Vec<Group>,
    #[serde(rename = "user")]
    pub(crate) users: Vec<User>,
    /// The call `mcx demo` and `mcx call` make.
    pub(crate) call: Option<Call>,
    /// SIP timers (defaults: RFC 3261 values).
    #[serde(default)]
    pub(crate) sip_timers: SipTimers,
    /// Call set-up deadlines (defaults: 4 s, 5 s, 10 s).
    #[serde(default)]
    pub(crate) deadlines: Deadlines,
    /// Caps against hostile or broken peers, per node.
    #[serde(default)]
    pub(crate) limits: Limits,
    /// Floor control protection between the servers (TS 24.380 13.1).
    #[serde(default)]
    pub(crate) floor: FloorSecurity,
    /// TLS: HTTPS for the KMS and GMS, certificates for SIP nodes whose
    /// transport is `tls`. Absent: plain HTTP, and no node may use TLS.
    pub(crate) tls: Option<TlsSettings>,
}

/// Where the topology's certificates come from, and what TLS covers.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsSettings {
    /// The KMS and GMS serve HTTPS (clients verify them against the CA).
    /// Default true.
    #[serde(default = "yes")]
    pub(crate) https: bool,
    /// A directory with `ca.pem` and each role's `<role>.pem` /
    /// `<role>.key` (`mcx tls ca --topology FILE --out DIR` writes them);
    /// relative to the topology file. Absent: a demo CA and every role's
    /// certificate are generated in memory at start-up, which only works
    /// when every role runs in this process (`mcx demo`, `mcx up`).
    pub(crate) dir: Option<PathBuf>,
}

fn yes() -> bool {
    true
}

/// The SPK shared by the controlling server and the MC servers: floor
/// control between them is SRTCP under it. Without one, that hop is
/// unprotected (clients' hops are always under their CSKs).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FloorSecurity {
    /// The SPK, 32 hex digits.
    pub(crate) spk: Option<String>,
    /// Its key ID (purpose tag 3 in the top 4 bits, TS 33.180 5.2.2).
    #[serde(default = "default_spk_id")]
    pub(crate) spk_id: u32,
    /// The RAND both sides derive the SRTCP keys with, 32 hex digits.
    pub(crate) spk_rand: Option<String>,
}

fn default_spk_id() -> u32 {
    0x3000_0001
}

impl FloorSecurity {
    /// The SPK with its SPK-ID and RAND, if one is configured: each call
    /// leg's floor keys are derived from it.
    pub(crate) fn spk_keys(&self) -> Result<Option<mcx_mikey::csk::SpkFloorKeys>, String> {
        let Some(spk) = &self.spk else {
            return Ok(None);
        };
        let key = hex::decode(spk).map_err(|e| format!("floor.spk: {e}"))?;
        let spk = mcx_mikey::Spk::from_bytes(&key).map_err(|e| format!("floor.spk: {e}"))?;
        let rand = self
            .spk_rand
            .as_deref()
            .ok_or("floor.spk_rand: needed with floor.spk")?;
        let rand = hex::decode(rand).map_err(|e| format!("floor.spk_rand: {e}"))?;
        mcx_mikey::csk::SpkFloorKeys::new(spk, mcx_mikey::KeyId(self.spk_id), rand)
            .map(Some)
            .map_err(|e| format!("floor: {e}"))
    }
}

/// Caps every node applies to its peers (mcx-net `NodeLimits`).
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Limits {
    /// Sustained SIP messages per second from one source IP (0: no cap).
    /// On loopback every role shares 127.0.0.1, hence the high default.
    pub(crate) peer_rate: u32,
    /// Burst above `peer_rate`.
    pub(crate) peer_burst: u32,
    /// Most inbound SIP/TCP connections per node.
    pub(crate) max_tcp_connections: usize,
    /// Idle SIP/TCP connections close after this many seconds.
    pub(crate) tcp_idle_s: u64,
    /// A SIP/TCP message must arrive whole within this many seconds.
    pub(crate) tcp_message_s: u64,
    /// Most concurrent calls per MC server.
    pub(crate) mc_server_calls: usize,
    /// Most concurrent calls at the controlling server.
    pub(crate) controlling_calls: usize,
    /// Most concurrent calls per client (as initiator and receiver).
    pub(crate) client_calls: usize,
    /// Whether MC servers ask each member for a Floor Ack to the Floor
    /// Taken / Floor Idle they send on (TS 24.380 6.5; the request is
    /// optional in TS 23.379) and send it again when none comes. Off, a
    /// broadcast call to N members costs N datagrams fewer at set-up.
    pub(crate) member_floor_ack: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            peer_rate: 20_000,
            peer_burst: 40_000,
            max_tcp_connections: 1024,
            tcp_idle_s: 120,
            tcp_message_s: 10,
            mc_server_calls: 1000,
            controlling_calls: 10_000,
            client_calls: mcx_core::ClientConfig::DEFAULT_MAX_CALLS,
            member_floor_ack: true,
        }
    }
}

/// How long each role waits during call set-up, nested so that each hears
/// why the one below failed: an MC server waits for its members less
/// long than the controlling server waits for an MC server, which waits
/// less long than the initiator waits for the controlling server.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Deadlines {
    /// An MC server's wait for its members' answers.
    pub(crate) member_ms: u64,
    /// The controlling server's wait for each constituent group.
    pub(crate) group_ms: u64,
    /// The initiator's wait for the final answer.
    pub(crate) call_ms: u64,
    /// Longest call, in seconds.
    pub(crate) max_call_s: u64,
    /// How often the controlling server probes each MC server holding
    /// calls (in-dialog OPTIONS); 0 turns the keep-alive off.
    pub(crate) keepalive_ms: u64,
    /// An MC server silent this long has lost its calls' groups (the
    /// initiators are told in-call).
    pub(crate) leg_silence_ms: u64,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            member_ms: 4000,
            group_ms: 5000,
            call_ms: 10_000,
            max_call_s: 3600,
            keepalive_ms: 500,
            leg_silence_ms: 4000,
        }
    }
}

impl Deadlines {
    pub(crate) fn member(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.member_ms)
    }
    pub(crate) fn group(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.group_ms)
    }
    pub(crate) fn call(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.call_ms)
    }
    pub(crate) fn max_call(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.max_call_s)
    }
    pub(crate) fn keepalive(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.keepalive_ms)
    }
    pub(crate) fn leg_silence(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.leg_silence_ms)
    }
}

/// The KMS.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KmsNode {
    /// KmsUri (part of every UID).
    pub(crate) uri: String,
    /// HTTP listen address.
    pub(crate) http: SocketAddr,
    /// SQLite file; absent = in memory (secrets die with the process).
    pub(crate) database: Option<PathBuf>,
    /// File holding the store key the secrets in `database` are sealed
    /// under (64 hex digits or 32 octets); absent = `MCX_STORE_KEY` or
    /// `MCX_STORE_KEY_FILE`.
    #[serde(default)]
    pub(crate) store_key_file: Option<PathBuf>,
    /// A PostgreSQL database instead of `database`, which several KMS
    /// instances share (docs/deployment.md); `MCX_KMS_DATABASE_URL`
    /// overrides it (keep the password there, not in this file).
    #[serde(default)]
    pub(crate) database_url: Option<DatabaseUrlText>,
    /// Further KMS instances on the same database (`mcx run TOPOLOGY kms
    /// --listen ADDR`): clients fail over to them, in order, after `http`.
    #[serde(default)]
    pub(crate) replicas: Vec<SocketAddr>,
    /// UserKeyPeriod in seconds.
    #[serde(default = "default_key_period")]
    pub(crate) key_period_len: u64,
    /// UserKeyOffset in seconds.
    #[serde(default)]
    pub(crate) key_period_offset: u64,
}

/// A `database_url` as written: parsed by [`Topology::check`], not while
/// the TOML is decoded, because the TOML decoder's errors quote the line,
/// password and all. `Debug` shows it without the password; erased on
/// drop.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub(crate) struct DatabaseUrlText(String);

impl DatabaseUrlText {
    /// The parsed URL.
    ///
    /// # Errors
    /// Why it is not a PostgreSQL connection string (never the text).
    pub(crate) fn parse(&self) -> Result<mcx_kms::DatabaseUrl, String> {
        mcx_kms::DatabaseUrl::parse(&self.0)
    }
}

impl std::fmt::Debug for DatabaseUrlText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.parse() {
            Ok(url) => write!(f, "{url}"),
            Err(_) => f.write_str("<invalid, redacted>"),
        }
    }
}

impl Drop for DatabaseUrlText {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

fn default_key_period() -> u64 {
    30 * 86_400
}

/// The IdMS (TS 33.180 Annex B).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IdmsNode {
    /// Its URL: the `iss` of its tokens.
    pub(crate) uri: String,
    /// HTTP listen address.
    pub(crate) http: SocketAddr,
    /// The `aud` of its access tokens (the MC system's resource servers).
    #[serde(default = "default_audience")]
    pub(crate) audience: String,
    /// Access token lifetime in seconds.
    #[serde(default = "default_token_lifetime")]
    pub(crate) token_lifetime_secs: u64,
    /// PBKDF2 iterations for the passwords it holds.
    #[serde(default = "default_pbkdf2_rounds")]
    pub(crate) pbkdf2_rounds: u32,
    /// Its ES256 signing key, 64 hex digits. Needed when the roles run as
    /// separate processes (they must all trust one key); `mcx up` and
    /// `mcx demo` make one per run without it.
    pub(crate) signing_key: Option<String>,
}

fn default_audience() -> String {
    "mcx".into()
}

fn default_token_lifetime() -> u64 {
    600
}

fn default_pbkdf2_rounds() -> u32 {
    // Demo users are generated by the thousand; a deployment sets its own.
    1_000
}

/// The GMS.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GmsNode {
    /// Its MC service ID (signer of GMK messages).
    pub(crate) uri: String,
    /// Its credential: its password at the IdMS when there is one, else a
    /// static bearer token toward the KMS.
    #[serde(alias = "password")]
    pub(crate) token: String,
    /// HTTP listen address.
    pub(crate) http: SocketAddr,
    /// SQLite file; absent = in memory.
    pub(crate) database: Option<PathBuf>,
    /// File holding the store key the GMKs in `database` are sealed under;
    /// absent = `MCX_STORE_KEY` or `MCX_STORE_KEY_FILE`.
    #[serde(default)]
    pub(crate) store_key_file: Option<PathBuf>,
    /// A PostgreSQL database instead of `database`, which several GMS
    /// instances share; `MCX_GMS_DATABASE_URL` overrides it.
    #[serde(default)]
    pub(crate) database_url: Option<DatabaseUrlText>,
    /// Further GMS instances on the same database: clients fail over to
    /// them, in order, after `http`.
    #[serde(default)]
    pub(crate) replicas: Vec<SocketAddr>,
    /// GMK lifetime in seconds.
    #[serde(default = "default_key_period")]
    pub(crate) gmk_lifetime_secs: u64,
    /// Longest life of a temporary group formed on demand, in seconds.
    #[serde(default = "default_temporary_group_lifetime")]
    pub(crate) temporary_group_lifetime_secs: u64,
}

fn default_temporary_group_lifetime() -> u64 {
    3600
}

/// The controlling server.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ControllingNode {
    pub(crate) uri: String,
    /// Its access token toward the KMS (for its identity keys, which
    /// initiators' CSKs are encrypted to).
    #[serde(default)]
    #[serde(alias = "password")]
    pub(crate) token: Option<String>,
    pub(crate) sip: SocketAddr,
    pub(crate) floor: SocketAddr,
    #[serde(default)]
    pub(crate) transport: TransportName,
    /// Where it takes the GMS's temporary group notices (group regroup,
    /// HTTP, HTTPS with `[tls] https`); needed when a user may regroup.
    #[serde(default)]
    pub(crate) http: Option<SocketAddr>,
    /// Users allowed to start a temporary group - broadcast call.
    pub(crate) allowed_initiators: Vec<String>,
    #[serde(rename = "temporary_group")]
    pub(crate) temporary_groups: Vec<TemporaryGroup>,
}

/// A temporary group and its constituent groups.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TemporaryGroup {
    pub(crate) id: String,
    pub(crate) groups: Vec<String>,
}

/// An MC server and the groups it owns.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct McServerNode {
    pub(crate) uri: String,
    pub(crate) sip: SocketAddr,
    /// Its floor-control socket (it relays its members' floor control);
    /// absent: the SIP address's IP, port SIP + 2 (0 stays 0).
    #[serde(default)]
    pub(crate) floor: Option<SocketAddr>,
    /// Its access token toward the KMS (for its identity keys, which
    /// members' CSKs are encrypted to).
    #[serde(default)]
    #[serde(alias = "password")]
    pub(crate) token: Option<String>,
    #[serde(default)]
    pub(crate) transport: TransportName,
    pub(crate) groups: Vec<String>,
    /// When it answers the controlling server: `"confirmed"` (after its
    /// members, the default) or `"unconfirmed"` (at once; RFC 4964
    /// P-Answer-State, docs/core.md "Answer policy").
    #[serde(default)]
    pub(crate) answer: AnswerMode,
}

/// `[[mc_server]] answer`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AnswerMode {
    #[default]
    Confirmed,
    Unconfirmed,
}

impl From<AnswerMode> for mcx_core::AnswerPolicy {
    fn from(m: AnswerMode) -> Self {
        match m {
            AnswerMode::Confirmed => Self::Confirmed,
            AnswerMode::Unconfirmed => Self::Unconfirmed,
        }
    }
}

impl McServerNode {
    /// Its floor socket address (see [`McServerNode::floor`]).
    pub(crate) fn floor_addr(&self) -> SocketAddr {
        self.floor.unwrap_or_else(|| {
            let port = if self.sip.port() == 0 {
                0
            } else {
                self.sip.port().saturating_add(2)
            };
            SocketAddr::new(self.sip.ip(), port)
        })
    }
}

/// A group (served by the GMS, owned by one MC server).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Group {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) members: Vec<String>,
}

/// A key from the topology in hex; `Debug` does not print it.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub(crate) struct HexSecret(pub(crate) String);

impl std::fmt::Debug for HexSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An MC service user and its client.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct User {
    pub(crate) uri: String,
    #[serde(alias = "password")]
    pub(crate) token: String,
    /// TrK (TS 33.180 D.1 security extension), 64 hex digits, shared
    /// with the KMS out of band; with `ink`, the KMS signs and encrypts
    /// this user's key provisioning and the client requires it.
    #[serde(default)]
    pub(crate) trk: Option<HexSecret>,
    /// InK (D.1), 64 hex digits; set with `trk` or not at all.
    #[serde(default)]
    pub(crate) ink: Option<HexSecret>,
    pub(crate) sip: SocketAddr,
    pub(crate) floor: SocketAddr,
    #[serde(default)]
    pub(crate) transport: TransportName,
    /// Initiators this client accepts a wrapped TGMK from; absent = the
    /// controlling server's allow-list.
    pub(crate) allowed_initiators: Option<Vec<String>>,
    /// The groups this user may put into a temporary group formed on
    /// demand through the GMS (`mcx call --groups`); empty = none.
    #[serde(default)]
    pub(crate) regroup: Vec<String>,
}

/// The call to make.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Call {
    pub(crate) initiator: String,
    pub(crate) temporary_group: String,
}

/// SIP transport toward a node.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TransportName {
    #[default]
    Udp,
    Tcp,
    /// SIP over TLS (needs a `[tls]` section).
    Tls,
}

impl TransportName {
    pub(crate) fn transport(self) -> mcx_net::Transport {
        match self {
            Self::Udp => mcx_net::Transport::Udp,
            Self::Tcp => mcx_net::Transport::Tcp,
            Self::Tls => mcx_net::Transport::Tls,
        }
    }
}

/// SIP timers in milliseconds.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SipTimers {
    pub(crate) t1_ms: u64,
    pub(crate) t2_ms: u64,
    pub(crate) t4_ms: u64,
}

impl Default for SipTimers {
    fn default() -> Self {
        let t = mcx_sip_timers();
        Self {
            t1_ms: millis(t.t1),
            t2_ms: millis(t.t2),
            t4_ms: millis(t.t4),
        }
    }
}

fn mcx_sip_timers() -> mcx_sip::Timers {
    mcx_sip::Timers::RFC3261
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl SipTimers {
    pub(crate) fn timers(self) -> mcx_sip::Timers {
        use std::time::Duration;
        mcx_sip::Timers {
            t1: Duration::from_millis(self.t1_ms),
            t2: Duration::from_millis(self.t2_ms),
            t4: Duration::from_millis(self.t4_ms),
            ..mcx_sip_timers()
        }
    }
}

impl User {
    /// The user's TrK/InK, if the topology gives them (checked by
    /// [`Topology::parse`]).
    pub(crate) fn kms_security(&self) -> Option<mcx_kms::secext::SecurityKeys> {
        let (trk, ink) = (self.trk.as_ref()?, self.ink.as_ref()?);
        mcx_kms::secext::SecurityKeys::from_hex(&trk.0, &ink.0).ok()
    }
}

impl Topology {
    /// Parses and checks a topology; `path` names it in errors.
    pub(crate) fn parse(text: &str, path: &str) -> Result<Self, CliError> {
        let t: Self = toml::from_str(text).map_err(|e| CliError::Topology {
            path: path.to_owned(),
            detail: e.to_string().replace('\n', " "),
        })?;
        t.check().map_err(|detail| CliError::Topology {
            path: path.to_owned(),
            detail,
        })?;
        Ok(t)
    }

    /// Cross-references: every name used is defined once.
    fn check(&self) -> Result<(), String> {
        self.floor.spk_keys()?;
        for (role, url) in [
            ("kms", &self.kms.database_url),
            ("gms", &self.gms.database_url),
        ] {
            if let Some(url) = url {
                url.parse()
                    .map_err(|e| format!("[{role}] database_url: {e}"))?;
            }
        }
        for u in &self.users {
            match (&u.trk, &u.ink) {
                (None, None) => {}
                (Some(trk), Some(ink)) => {
                    mcx_kms::secext::SecurityKeys::from_hex(&trk.0, &ink.0)
                        .map_err(|e| format!("user {}: {e}", u.uri))?;
                }
                _ => return Err(format!("user {}: give both trk and ink, or neither", u.uri)),
            }
        }
        if self.tls.is_none() {
            let tls_node = std::iter::once((&self.controlling.uri, self.controlling.transport))
                .chain(self.mc_servers.iter().map(|s| (&s.uri, s.transport)))
                .chain(self.users.iter().map(|u| (&u.uri, u.transport)))
                .find(|(_, t)| *t == TransportName::Tls);
            if let Some((uri, _)) = tls_node {
                return Err(format!(
                    "{uri}: transport = \"tls\" needs a [tls] section (certificates)"
                ));
            }
        }
        let d = self.deadlines;
        if !(0 < d.member_ms && d.member_ms < d.group_ms && d.group_ms < d.call_ms) {
            return Err(format!(
                "deadlines: need 0 < member_ms ({}) < group_ms ({}) < call_ms ({}), so that each role hears why the one below failed",
                d.member_ms, d.group_ms, d.call_ms
            ));
        }
        if d.max_call_s == 0 {
            return Err("deadlines: max_call_s must be positive".into());
        }
        if d.keepalive_ms > 0 && d.leg_silence_ms <= d.keepalive_ms {
            return Err(format!(
                "deadlines: leg_silence_ms ({}) must be longer than keepalive_ms ({}), or every server would count as lost between two probes",
                d.leg_silence_ms, d.keepalive_ms
            ));
        }
        let groups: BTreeSet<&str> = self.groups.iter().map(|g| g.id.as_str()).collect();
        if groups.len() != self.groups.len() {
            return Err("a group is defined twice".into());
        }
        let users: BTreeSet<&str> = self.users.iter().map(|u| u.uri.as_str()).collect();
        if users.len() != self.users.len() {
            return Err("a user is defined twice".into());
        }
        for g in &self.groups {
            for m in &g.members {
                if !users.contains(m.as_str()) {
                    return Err(format!("group {}: member {m} is not a [[user]]", g.id));
                }
            }
        }
        let mut owner = BTreeMap::new();
        for s in &self.mc_servers {
            for g in &s.groups {
                if !groups.contains(g.as_str()) {
                    return Err(format!("mc_server {}: unknown group {g}", s.uri));
                }
                if owner.insert(g.as_str(), s.uri.as_str()).is_some() {
                    return Err(format!("group {g} is owned by two MC servers"));
                }
            }
        }
        for u in &self.users {
            if let Some(g) = u.regroup.iter().find(|g| !owner.contains_key(g.as_str())) {
                return Err(format!(
                    "user {}: may regroup {g}, which is not a group owned by an MC server",
                    u.uri
                ));
            }
            if !u.regroup.is_empty() && self.controlling.http.is_none() {
                return Err(format!(
                    "user {}: may regroup, but [controlling] has no http address for the GMS's notices",
                    u.uri
                ));
            }
        }
        if self.gms.temporary_group_lifetime_secs == 0 {
            return Err("gms: temporary_group_lifetime_secs must be positive".into());
        }
        for tg in &self.controlling.temporary_groups {
            if tg.groups.is_empty() {
                return Err(format!("temporary group {}: no constituent groups", tg.id));
            }
            for g in &tg.groups {
                if !owner.contains_key(g.as_str()) {
                    return Err(format!(
                        "temporary group {}: group {g} has no MC server",
                        tg.id
                    ));
                }
            }
        }
        if let Some(call) = &self.call {
            if !users.contains(call.initiator.as_str()) {
                return Err(format!(
                    "call: initiator {} is not a [[user]]",
                    call.initiator
                ));
            }
            if !self
                .controlling
                .temporary_groups
                .iter()
                .any(|t| t.id == call.temporary_group)
            {
                return Err(format!(
                    "call: temporary group {} is not defined",
                    call.temporary_group
                ));
            }
        }
        Ok(())
    }

    /// The MC server owning `group`.
    /// A server's KMS token: its own, or one derived from its URI (demo
    /// topologies; the KMS of the same topology derives the same).
    pub(crate) fn server_token(uri: &str, token: Option<&String>) -> String {
        token
            .cloned()
            .unwrap_or_else(|| format!("server-token:{uri}"))
    }

    pub(crate) fn owner_of(&self, group: &str) -> Option<&McServerNode> {
        self.mc_servers
            .iter()
            .find(|s| s.groups.iter().any(|g| g == group))
    }

    /// The group with this ID.
    pub(crate) fn group(&self, id: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.id == id)
    }

    /// The temporary group with this ID.
    pub(crate) fn temporary_group(&self, id: &str) -> Option<&TemporaryGroup> {
        self.controlling
            .temporary_groups
            .iter()
            .find(|t| t.id == id)
    }

    /// A generated topology of `groups` groups of `members` members each
    /// (plus the dispatcher in every group), two groups per MC server, all
    /// on loopback with ephemeral ports: the set-up time benchmark.
    pub(crate) fn generated(groups: usize, members: usize) -> Result<Self, CliError> {
        let mut t = Self::parse(DEFAULT, "<default>")?;
        let domain = "mcx.example";
        let any: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
        let dispatcher = t.call.as_ref().map_or_else(
            || format!("sip:dispatcher@{domain}"),
            |c| c.initiator.clone(),
        );
        let base_user = t
            .users
            .iter()
            .find(|u| u.uri == dispatcher)
            .cloned()
            .ok_or_else(|| CliError::Topology {
                path: "<default>".into(),
                detail: format!("no [[user]] for the call's initiator {dispatcher}"),
            })?;
        t.users = vec![base_user.clone()];
        t.groups.clear();
        t.mc_servers.clear();
        let mut ids = Vec::new();
        for g in 0..groups {
            let id = format!("sip:group-{g}@{domain}");
            let mut list = vec![dispatcher.clone()];
            for m in 0..members {
                let uri = format!("sip:g{g}-m{m}@{domain}");
                list.push(uri.clone());
                // Each generated user gets its own TrK/InK (the topology
                // lives in this one process).
                let (trk, ink) =
                    mcx_kms::secext::SecurityKeys::generate(&mut mcx_net::os_rng()).to_hex();
                t.users.push(User {
                    uri,
                    token: format!("token-g{g}-m{m}"),
                    allowed_initiators: None,
                    regroup: Vec::new(),
                    trk: Some(HexSecret(trk.to_string())),
                    ink: Some(HexSecret(ink.to_string())),
                    ..base_user.clone()
                });
            }
            t.groups.push(Group {
                id: id.clone(),
                name: format!("Group {g}"),
                members: list,
            });
            let server = g / 2;
            if server == t.mc_servers.len() {
                t.mc_servers.push(McServerNode {
                    uri: format!("sip:mcs-{server}@{domain}"),
                    sip: any,
                    floor: None,
                    token: None,
                    transport: t.controlling.transport,
                    groups: Vec::new(),
                    answer: AnswerMode::default(),
                });
            }
            t.mc_servers[server].groups.push(id.clone());
            ids.push(id);
        }
        let tg = format!("sip:tg-{groups}x{members}@{domain}");
        t.controlling.temporary_groups = vec![TemporaryGroup {
            id: tg.clone(),
            groups: ids,
        }];
        t.call = Some(Call {
            initiator: dispatcher,
            temporary_group: tg,
        });
        Ok(t)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn default_topology_is_valid() {
        let t = Topology::parse(DEFAULT, "default").unwrap();
        assert_eq!(t.mc_servers.len(), 2);
        assert!(t.groups.iter().all(|g| g.members.len() >= 3));
    }

    /// `database_url` is parsed when the file is read and never shown
    /// with its password (the topology's `Debug`, a parse error);
    /// `replicas` lists further instances.
    #[test]
    fn database_url_and_replicas() {
        let text = DEFAULT.replacen(
            "key_period_offset = 0",
            "key_period_offset = 0\ndatabase_url = \"postgres://mcx:hunter2-pw@db1:5432/mcx\"\n\
             replicas = [\"127.0.0.1:7100\", \"127.0.0.1:7200\"]",
            1,
        );
        let t = Topology::parse(&text, "t").unwrap();
        assert_eq!(t.kms.replicas.len(), 2);
        let shown = format!("{t:?}");
        assert!(
            shown.contains("postgres://mcx:<redacted>@db1:5432/mcx"),
            "{shown}"
        );
        assert!(!shown.contains("hunter2-pw"));
        assert!(t.gms.database_url.is_none() && t.gms.replicas.is_empty());
        // One certificate for every KMS instance, naming each address.
        let text = text.replace("\"127.0.0.1:7200\"", "\"127.0.0.2:7200\"");
        let t2 = Topology::parse(&text, "t").unwrap();
        let kms = crate::tls::subjects(&t2)
            .into_iter()
            .find(|(role, _)| role == "kms")
            .unwrap()
            .1;
        assert_eq!(
            kms.ips,
            [
                "127.0.0.1".parse::<std::net::IpAddr>().unwrap(),
                "127.0.0.2".parse().unwrap()
            ]
        );
        let bad = text.replace("@db1:5432/", "@db1:port/");
        let e = Topology::parse(&bad, "t").unwrap_err().to_string();
        assert!(e.contains("not a PostgreSQL connection string"), "{e}");
        assert!(!e.contains("hunter2-pw"), "{e}");
    }

    #[test]
    fn generated_topology_is_valid() {
        let t = Topology::generated(10, 100).unwrap();
        t.check().unwrap();
        assert_eq!(t.users.len(), 1001);
        assert_eq!(t.mc_servers.len(), 5);
    }

    /// `answer` of an MC server: confirmed unless it says otherwise; an
    /// unknown word is refused.
    /// `[limits] member_floor_ack` reaches the MC servers' role: on by
    /// default, off when the topology says so.
    #[test]
    fn member_floor_ack_is_the_mc_servers_floor_ack_required() {
        let media = mcx_core::MediaEndpoint::UNBOUND;
        let t = Topology::parse(DEFAULT, "default").unwrap();
        assert!(t.limits.member_floor_ack);
        let role = crate::system::mc_server_role(&t, &t.mc_servers[0], media);
        assert!(role.limits().floor_ack_required);
        let text = format!("{DEFAULT}\n[limits]\nmember_floor_ack = false\n");
        let t = Topology::parse(&text, "t.toml").unwrap();
        assert!(!t.limits.member_floor_ack);
        let role = crate::system::mc_server_role(&t, &t.mc_servers[0], media);
        assert!(!role.limits().floor_ack_required);
    }

    #[test]
    fn mc_server_answer_policy() {
        let t = Topology::parse(DEFAULT, "default").unwrap();
        assert!(
            t.mc_servers
                .iter()
                .all(|s| s.answer == AnswerMode::Confirmed)
        );
        let text = DEFAULT.replacen(
            "groups = [\"sip:group-a@mcx.example\"]\n",
            "groups = [\"sip:group-a@mcx.example\"]\nanswer = \"unconfirmed\"\n",
            1,
        );
        let t = Topology::parse(&text, "t.toml").unwrap();
        assert_eq!(t.mc_servers[0].answer, AnswerMode::Unconfirmed);
        assert_eq!(t.mc_servers[1].answer, AnswerMode::Confirmed);
        assert_eq!(
            mcx_core::AnswerPolicy::from(t.mc_servers[0].answer),
            mcx_core::AnswerPolicy::Unconfirmed
        );
        let bad = DEFAULT.replacen(
            "groups = [\"sip:group-a@mcx.example\"]\n",
            "groups = [\"sip:group-a@mcx.example\"]\nanswer = \"maybe\"\n",
            1,
        );
        let err = Topology::parse(&bad, "t.toml").unwrap_err().to_string();
        assert!(
            err.contains("maybe") || err.contains("unknown variant"),
            "{err}"
        );
    }

    #[test]
    fn undefined_member_is_named() {
        let text = DEFAULT.replace(
            "\"sip:a1@mcx.example\",",
            "\"sip:a1@mcx.example\", \"sip:ghost@mcx.example\",",
        );
        let err = Topology::parse(&text, "t.toml").unwrap_err().to_string();
        assert!(err.contains("sip:ghost@mcx.example"), "{err}");
        assert!(err.starts_with("t.toml"), "{err}");
    }

    /// The demo's users carry a TrK/InK each (TS 33.180 D.1), all
    /// different; generated users get their own; half a pair or a
    /// malformed key is refused naming the user.
    #[test]
    fn users_have_their_own_trk_and_ink() {
        let t = Topology::parse(DEFAULT, "default").unwrap();
        let keys: BTreeSet<(String, String)> = t
            .users
            .iter()
            .map(|u| {
                assert!(u.kms_security().is_some(), "{} has no TrK/InK", u.uri);
                (u.trk.clone().unwrap().0, u.ink.clone().unwrap().0)
            })
            .collect();
        assert_eq!(keys.len(), t.users.len());
        let g = Topology::generated(2, 3).unwrap();
        let trks: BTreeSet<&str> = g
            .users
            .iter()
            .filter_map(|u| u.trk.as_ref().map(|k| k.0.as_str()))
            .collect();
        assert_eq!(trks.len(), g.users.len());
        let dispatcher_ink = t.users[0].ink.clone().unwrap().0;
        assert!(!format!("{:?}", t.users[0]).contains(&dispatcher_ink));
        let half = DEFAULT.replacen(&format!("ink = \"{dispatcher_ink}\"\n"), "", 1);
        let err = Topology::parse(&half, "t.toml").unwrap_err().to_string();
        assert!(err.contains("give both trk and ink"), "{err}");
        let bad = DEFAULT.replacen(&dispatcher_ink, "abcd", 1);
        let err = Topology::parse(&bad, "t.toml").unwrap_err().to_string();
        assert!(err.contains("ink is not 64 hex digits"), "{err}");
    }

    #[test]
    fn unknown_key_is_refused() {
        let text = format!("{DEFAULT}\n[bogus]\nx = 1\n");
        let err = Topology::parse(&text, "t.toml").unwrap_err().to_string();
        assert!(err.contains("bogus"), "{err}");
    }
}
