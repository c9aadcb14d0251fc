//! In-memory harness: a `Mesh` routing `Transmit`s between roles by
//! address with a virtual clock (STYLE.md 7), and a fixture that builds a
//! KMS community, a GMS and the groups of SPEC section 1.
#![allow(clippy::unwrap_used, dead_code, unreachable_pub, missing_docs)]

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mcx_core::{
    AnswerPolicy, Channel, Client, ClientConfig, ClientEvent, ControllingEvent, ControllingServer,
    ControllingServerConfig, Error, GroupResult, McServer, McServerEvent, McServerLimits, SipLink,
    TemporaryGroup, Time, Transmit,
};
use mcx_ibc::eccsi::SigningKey;
use mcx_ibc::kms::Community;
use mcx_mikey::gmk::{GmkMessage, gmk_key_parameters};
use mcx_mikey::message::Sp;
use mcx_mikey::wire::Purpose;
use mcx_mikey::{Gmk, KeyId};
use mcx_sip::{Limits, Remote, StreamDecoder, Timers, Transport};

/// Deterministic splitmix64 RNG (plumbing tests only, never for keys in
/// production).
pub struct TestRng(pub u64);
impl rand_core::TryRng for TestRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.try_next_u64()? as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Ok(z ^ (z >> 31))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(8) {
            let v = self.try_next_u64()?.to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Ok(())
    }
}
impl rand_core::TryCryptoRng for TestRng {}

#[allow(clippy::large_enum_variant)]
pub enum Node {
    Client(Box<Client>),
    Mc(McServer),
    Ctrl(ControllingServer),
    /// A simulated peer (member or MC server) with scripted answers.
    Stub(Stub),
}

/// How a [`Stub`] answers an INVITE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StubMode {
    /// 200 OK with an SDP answer (a=ssrc) at once.
    Accept,
    /// Nothing at all.
    Silent,
    /// 180 Ringing, then nothing until [`Stub::answer`] or a CANCEL
    /// (answered 200, and 487 to the INVITE).
    Ringing,
}

/// A scripted SIP peer: answers as its mode says, records what it got.
pub struct Stub {
    pub uri: String,
    pub mode: StubMode,
    pub invites: Vec<mcx_sip::Request>,
    pub received: Vec<String>,
    out: VecDeque<Transmit>,
    tags: u64,
    /// The floor SSRC of the n-th answer is `ssrc_base + n` (every stub
    /// starts at the same one unless a test spreads them).
    pub ssrc_base: u32,
}

impl Stub {
    pub fn new(uri: &str, mode: StubMode) -> Self {
        Self {
            uri: uri.to_owned(),
            mode,
            invites: Vec::new(),
            received: Vec::new(),
            out: VecDeque::new(),
            tags: 0,
            ssrc_base: 0x5000_0000,
        }
    }

    fn respond(&mut self, to: &str, req: &mcx_sip::Request, status: u16, sdp: bool) {
        self.tags += 1;
        let tag = format!("stub{}", self.tags);
        let mut r =
            mcx_sip::Response::for_request(req, mcx_sip::StatusCode(status), Some(&tag)).unwrap();
        if (200..300).contains(&status) {
            r.headers_mut()
                .push("Contact", &format!("<{}>", self.uri))
                .unwrap();
        }
        if sdp {
            let body = format!(
                "v=0\r\no=- 1 1 IN IP4 stub\r\ns=-\r\nc=IN IP4 stub\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 96\r\nm=application 4002 udp MCPTT\r\na=ssrc:{} cname:{}\r\n",
                u64::from(self.ssrc_base) + self.tags,
                self.uri
            );
            r.set_body(Some("application/sdp"), body.into()).unwrap();
        }
        self.out.push_back(Transmit::of_octets(
            self.uri.clone(),
            to.to_owned(),
            Channel::Sip,
            r.to_bytes(),
        ));
    }

    /// Answers the `i`-th INVITE received 200 now (a late answer).
    pub fn answer(&mut self, i: usize, to: &str) {
        let req = self.invites[i].clone();
        self.respond(to, &req, 200, true);
    }

    fn handle_sip(&mut self, from: &str, msg: mcx_sip::Message) {
        use mcx_sip::{Message, Method};
        let Message::Request(req) = msg else {
            self.received.push("response".into());
            return;
        };
        self.received.push(req.method().as_str().to_owned());
        match req.method() {
            Method::Invite => {
                self.invites.push(req.clone());
                match self.mode {
                    StubMode::Accept => self.respond(from, &req, 200, true),
                    StubMode::Silent => {}
                    StubMode::Ringing => self.respond(from, &req, 180, false),
                }
            }
            Method::Ack => {}
            Method::Cancel => {
                self.respond(from, &req, 200, false);
                let inv = self
                    .invites
                    .iter()
                    .find(|i| i.call_id().ok() == req.call_id().ok())
                    .cloned();
                if let Some(inv) = inv {
                    self.respond(from, &inv, 487, false);
                }
            }
            _ => self.respond(from, &req, 200, false),
        }
    }
}

impl Node {
    fn handle(
        &mut self,
        time: Time,
        from: &str,
        channel: Channel,
        bytes: &[u8],
        rng: &mut TestRng,
    ) -> Result<(), Error> {
        match self {
            Self::Client(c) => c.handle(time, from, channel, bytes, rng),
            Self::Mc(m) => m.handle(time, from, channel, bytes, rng),
            Self::Ctrl(c) => c.handle(time, from, channel, bytes, rng),
            Self::Stub(st) => {
                if channel == Channel::Sip {
                    st.handle_sip(from, mcx_sip::Message::parse(bytes)?);
                }
                Ok(())
            }
        }
    }

    fn handle_sip(
        &mut self,
        time: Time,
        from: &str,
        msg: mcx_sip::Message,
        rng: &mut TestRng,
    ) -> Result<(), Error> {
        match self {
            Self::Client(c) => c.handle_sip(time, from, msg, rng),
            Self::Mc(m) => m.handle_sip(time, from, msg, rng),
            Self::Ctrl(c) => c.handle_sip(time, from, msg, rng),
            Self::Stub(st) => {
                st.handle_sip(from, msg);
                Ok(())
            }
        }
    }
}

/// One datagram (UDP) or stream write (TCP) on the simulated wire.
#[derive(Debug, Clone)]
pub struct Wire {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub transport: Transport,
    pub channel: Channel,
    pub bytes: Vec<u8>,
    /// Dropped by the loss model.
    pub dropped: bool,
}

impl Wire {
    pub fn starts_with(&self, prefix: &str) -> bool {
        self.bytes.starts_with(prefix.as_bytes())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Drops the `nth` (1-based) wire datagram matching `pred`, or every one
/// if `nth` is `None`.
pub struct LossRule {
    pred: Box<dyn Fn(&Wire) -> bool>,
    nth: Option<usize>,
    seen: usize,
}

/// The socket layer of a mesh whose roles sit behind `SipLink`s: every
/// role has a socket address (127.0.0.1:5060+i), SIP goes through its
/// link, floor control goes directly (sender named by its address, as a
/// driver does with its directory).
pub struct Net {
    pub transport: Transport,
    pub links: BTreeMap<String, SipLink>,
    pub addr: BTreeMap<String, SocketAddr>,
    pub owner: BTreeMap<SocketAddr, String>,
    in_flight: VecDeque<(Duration, Wire)>,
    /// Everything put on the wire, in order (dropped ones flagged).
    pub wire: Vec<Wire>,
    /// Every SIP message the roles produced (before their links).
    pub sent: Vec<Transmit>,
    rules: Vec<LossRule>,
    decoders: BTreeMap<(SocketAddr, SocketAddr), StreamDecoder>,
}

impl Net {
    fn put(&mut self, at: Duration, mut w: Wire) {
        for r in &mut self.rules {
            if (r.pred)(&w) {
                r.seen += 1;
                if r.nth.is_none_or(|n| n == r.seen) {
                    w.dropped = true;
                }
            }
        }
        self.wire.push(w.clone());
        if !w.dropped {
            self.in_flight.push_back((at, w));
        }
    }

    fn drain_link(&mut self, uri: &str, at: Duration, busy: &mut Busy) {
        let Some(link) = self.links.get_mut(uri) else {
            return;
        };
        let from = link.local().addr;
        let mut out = Vec::new();
        loop {
            let t = timed(busy, uri, "link out", || link.poll_transmit());
            let Some(t) = t else { break };
            out.push(Wire {
                from,
                to: t.destination,
                transport: t.transport,
                channel: Channel::Sip,
                bytes: t.bytes.to_vec(),
                dropped: false,
            });
        }
        for w in out {
            self.put(at, w);
        }
    }

    /// SIP datagrams on the wire from `from` (a role URI) starting with `prefix`.
    pub fn count(&self, from: &str, prefix: &str) -> usize {
        let a = self.addr[from];
        self.wire
            .iter()
            .filter(|w| w.channel == Channel::Sip && w.from == a && w.starts_with(prefix))
            .count()
    }
}

#[derive(Debug, Clone)]
pub enum AnyEvent {
    Client(ClientEvent),
    Mc(McServerEvent),
    Ctrl(ControllingEvent),
}

/// Runs `f` for role `name` (doing `what`), adding the time it took to the
/// role's busy time. For the role named by `MCX_MESH_WATCH`, `f` runs inside
/// [`watched_role`], so that a profiler can count that role alone
/// (`valgrind --tool=callgrind --toggle-collect='*watched_role*'`).
fn timed<T>(busy: &mut Busy, name: &str, what: &'static str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let r = if watched(name) { watched_role(f) } else { f() };
    let spent = started.elapsed();
    *busy.entry((name.to_owned(), what)).or_default() += spent;
    r
}

/// Whether `name` is the role `MCX_MESH_WATCH` names (read once), unless
/// [`WATCH_PAUSED`].
fn watched(name: &str) -> bool {
    static WATCH: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    !WATCH_PAUSED.load(std::sync::atomic::Ordering::Relaxed)
        && WATCH
            .get_or_init(|| std::env::var("MCX_MESH_WATCH").ok())
            .as_deref()
            == Some(name)
}

/// Set to leave a stretch out of what [`watched_role`] covers.
pub static WATCH_PAUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The frame a profiler keys on: see [`timed`].
#[inline(never)]
fn watched_role<T>(f: impl FnOnce() -> T) -> T {
    f()
}

/// Time spent by (role, what): "role SIP", "role out", "link in", ….
pub type Busy = BTreeMap<(String, &'static str), Duration>;

/// One timeline entry with its virtual time offset.
#[derive(Debug, Clone)]
pub struct Step {
    pub step: u8,
    pub role: String,
    pub at: Duration,
    pub detail: String,
}

pub struct Mesh {
    pub nodes: BTreeMap<String, Node>,
    base: Instant,
    pub now: Duration,
    unix0: u64,
    latency: Duration,
    in_flight: VecDeque<(Duration, Transmit)>,
    /// Every datagram delivered (or dropped for an unknown address).
    pub log: Vec<Transmit>,
    pub timeline: Vec<Step>,
    pub events: BTreeMap<String, Vec<AnyEvent>>,
    pub errors: Vec<(String, String)>,
    pub rng: TestRng,
    /// Set by [`Mesh::use_links`]: SIP through a `SipLink` per role.
    pub net: Option<Net>,
    /// The relay commands each server emitted, in order.
    pub relays: BTreeMap<String, Vec<mcx_core::RelayCommand>>,
    /// Wall-clock time each role spent in its own calls and in its link's
    /// (what a node driver would run for it; the mesh's routing, logs and
    /// copies are not counted): the `mc_fanout` bench reads it.
    pub busy: Busy,
}

impl Mesh {
    pub fn new(unix0: u64, seed: u64) -> Self {
        Self {
            nodes: BTreeMap::new(),
            base: Instant::now(),
            now: Duration::ZERO,
            unix0,
            latency: Duration::from_millis(5),
            in_flight: VecDeque::new(),
            log: Vec::new(),
            timeline: Vec::new(),
            events: BTreeMap::new(),
            errors: Vec::new(),
            rng: TestRng(seed),
            net: None,
            relays: BTreeMap::new(),
            busy: BTreeMap::new(),
        }
    }

    /// Puts a `SipLink` in front of every role: role i gets the socket
    /// 127.0.0.1:(5060+i) and talks `transport` to every peer. From now
    /// on `log` holds what the roles were handed (after their links).
    pub fn use_links(&mut self, transport: Transport, timers: Timers) {
        let mut net = Net {
            transport,
            links: BTreeMap::new(),
            addr: BTreeMap::new(),
            owner: BTreeMap::new(),
            in_flight: VecDeque::new(),
            wire: Vec::new(),
            sent: Vec::new(),
            rules: Vec::new(),
            decoders: BTreeMap::new(),
        };
        for (i, (uri, node)) in self.nodes.iter_mut().enumerate() {
            let addr = SocketAddr::from(([127, 0, 0, 1], 5060 + u16::try_from(i).unwrap()));
            net.addr.insert(uri.clone(), addr);
            net.owner.insert(addr, uri.clone());
            let link = SipLink::new(timers, Remote { addr, transport });
            // As the node driver does: the role writes the link's Via.
            match node {
                Node::Client(c) => c.set_sent_by(transport, link.sent_by()),
                Node::Mc(m) => m.set_sent_by(transport, link.sent_by()),
                Node::Ctrl(c) => c.set_sent_by(transport, link.sent_by()),
                Node::Stub(_) => {}
            }
            net.links.insert(uri.clone(), link);
        }
        self.net = Some(net);
    }

    pub fn net(&self) -> &Net {
        self.net.as_ref().expect("use_links first")
    }

    /// Drops the `nth` (1-based) wire datagram matching `pred`.
    pub fn drop_nth(&mut self, nth: usize, pred: impl Fn(&Wire) -> bool + 'static) {
        self.net
            .as_mut()
            .expect("use_links first")
            .rules
            .push(LossRule {
                pred: Box::new(pred),
                nth: Some(nth),
                seen: 0,
            });
    }

    /// Drops every wire datagram matching `pred`.
    pub fn drop_all(&mut self, pred: impl Fn(&Wire) -> bool + 'static) {
        self.net
            .as_mut()
            .expect("use_links first")
            .rules
            .push(LossRule {
                pred: Box::new(pred),
                nth: None,
                seen: 0,
            });
    }

    /// One-way latency of every message.
    pub fn set_latency(&mut self, latency: Duration) {
        self.latency = latency;
    }

    /// Puts a datagram on the wire (past the loss model).
    pub fn inject_wire(&mut self, w: Wire) {
        let at = self.now + self.latency;
        self.net
            .as_mut()
            .expect("use_links first")
            .in_flight
            .push_back((at, w));
    }

    pub fn time(&self) -> Time {
        Time {
            instant: self.base + self.now,
            unix: self.unix0 + self.now.as_secs(),
        }
    }

    pub fn client(&mut self, uri: &str) -> &mut Client {
        match self.nodes.get_mut(uri) {
            Some(Node::Client(c)) => c,
            _ => panic!("no client {uri}"),
        }
    }

    pub fn ctrl(&mut self, uri: &str) -> &mut ControllingServer {
        match self.nodes.get_mut(uri) {
            Some(Node::Ctrl(c)) => c,
            _ => panic!("no controlling server {uri}"),
        }
    }

    pub fn client_events(&self, uri: &str) -> Vec<ClientEvent> {
        self.events
            .get(uri)
            .into_iter()
            .flatten()
            .filter_map(|e| match e {
                AnyEvent::Client(c) => Some(c.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn ctrl_events(&self, uri: &str) -> Vec<ControllingEvent> {
        self.events
            .get(uri)
            .into_iter()
            .flatten()
            .filter_map(|e| match e {
                AnyEvent::Ctrl(c) => Some(c.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn mc_events(&self, uri: &str) -> Vec<McServerEvent> {
        self.events
            .get(uri)
            .into_iter()
            .flatten()
            .filter_map(|e| match e {
                AnyEvent::Mc(c) => Some(c.clone()),
                _ => None,
            })
            .collect()
    }

    /// Queues a datagram as if `t.from` had sent it.
    pub fn inject(&mut self, t: Transmit) {
        self.in_flight.push_back((self.now + self.latency, t));
    }

    fn collect(&mut self) {
        let base = self.base;
        let at = self.now + self.latency;
        let instant = base + self.now;
        for (name, node) in &mut self.nodes {
            loop {
                let t = timed(&mut self.busy, name, "role out", || match node {
                    Node::Client(c) => c.poll_transmit(),
                    Node::Mc(m) => m.poll_transmit(),
                    Node::Ctrl(c) => c.poll_transmit(),
                    Node::Stub(st) => st.out.pop_front(),
                });
                let Some(t) = t else { break };
                let Some(net) = self.net.as_mut() else {
                    self.in_flight.push_back((at, t));
                    continue;
                };
                // A response goes back through its server transaction
                // whatever the role named (as in the node driver).
                let is_response = t.channel == Channel::Sip && t.octets().starts_with(b"SIP/2.0 ");
                let from = net.addr.get(&t.from).copied();
                let to = net
                    .addr
                    .get(&t.to)
                    .copied()
                    .or_else(|| from.filter(|_| is_response));
                let (Some(from), Some(to)) = (from, to) else {
                    let first = String::from_utf8_lossy(&t.octets()).into_owned();
                    let first = first.lines().next().unwrap_or_default();
                    self.errors
                        .push((name.clone(), format!("no address for {}: {first}", t.to)));
                    continue;
                };
                match t.channel {
                    Channel::Sip => {
                        net.sent.push(t.clone());
                        let remote = Remote {
                            addr: to,
                            transport: net.transport,
                        };
                        if let Some(link) = net.links.get_mut(name) {
                            // As the node driver hands it over: the role's
                            // message as a value, nothing parsed.
                            let sent = timed(&mut self.busy, name, "link send", || {
                                link.send_transmit(instant, remote, t)
                            });
                            if let Err(e) = sent {
                                self.errors.push((name.clone(), format!("link send: {e}")));
                            }
                        }
                        net.drain_link(name, at, &mut self.busy);
                    }
                    Channel::Floor => net.put(
                        at,
                        Wire {
                            from,
                            to,
                            transport: Transport::Udp,
                            channel: Channel::Floor,
                            bytes: t.octets().into_owned(),
                            dropped: false,
                        },
                    ),
                }
            }
            if let Some(net) = self.net.as_mut() {
                net.drain_link(name, at, &mut self.busy);
            }
            let relay = self.relays.entry(name.clone()).or_default();
            loop {
                let r = match node {
                    Node::Mc(m) => m.poll_relay(),
                    Node::Ctrl(c) => c.poll_relay(),
                    _ => None,
                };
                let Some(r) = r else { break };
                relay.push(r);
            }
            loop {
                let e = match node {
                    Node::Client(c) => c.poll_timeline(),
                    Node::Mc(m) => m.poll_timeline(),
                    Node::Ctrl(c) => c.poll_timeline(),
                    Node::Stub(_) => None,
                };
                let Some(e) = e else { break };
                self.timeline.push(Step {
                    step: e.step,
                    role: e.role,
                    at: e.at.duration_since(base),
                    detail: e.detail,
                });
            }
            let evs = self.events.entry(name.clone()).or_default();
            loop {
                let e = match node {
                    Node::Client(c) => c.poll_event().map(AnyEvent::Client),
                    Node::Mc(m) => m.poll_event().map(AnyEvent::Mc),
                    Node::Ctrl(c) => c.poll_event().map(AnyEvent::Ctrl),
                    Node::Stub(_) => None,
                };
                let Some(e) = e else { break };
                evs.push(e);
            }
        }
    }

    fn next_timeout(&self) -> Option<Instant> {
        let links = self
            .net
            .iter()
            .flat_map(|n| n.links.values().filter_map(SipLink::poll_timeout));
        self.nodes
            .values()
            .filter_map(|n| match n {
                Node::Client(c) => c.poll_timeout(),
                Node::Mc(m) => m.poll_timeout(),
                Node::Ctrl(c) => c.poll_timeout(),
                Node::Stub(_) => None,
            })
            .chain(links)
            .min()
    }

    /// Hands what `uri`'s link has for its role to the role.
    fn deliver_link(&mut self, uri: &str) {
        let time = self.time();
        let Some(net) = self.net.as_mut() else { return };
        let Some(link) = net.links.get_mut(uri) else {
            return;
        };
        let Some(node) = self.nodes.get_mut(uri) else {
            return;
        };
        while let Some(d) = link.poll_deliver() {
            self.log.push(Transmit::of_octets(
                d.from.clone(),
                uri.to_owned(),
                Channel::Sip,
                d.message.to_bytes(),
            ));
            let rng = &mut self.rng;
            let handled = timed(&mut self.busy, uri, "role SIP", || {
                node.handle_sip(time, &d.from, d.message, rng)
            });
            if let Err(e) = handled {
                self.errors.push((uri.to_owned(), e.to_string()));
            }
        }
    }

    /// A datagram arrives at its socket.
    fn arrive(&mut self, w: Wire) {
        let time = self.time();
        let Some(net) = self.net.as_mut() else { return };
        let Some(uri) = net.owner.get(&w.to).cloned() else {
            return;
        };
        match w.channel {
            Channel::Floor => {
                // The driver names a floor packet's sender by its socket.
                let Some(from) = net.owner.get(&w.from).cloned() else {
                    return;
                };
                self.log.push(Transmit::of_octets(
                    from.clone(),
                    uri.clone(),
                    Channel::Floor,
                    w.bytes.clone(),
                ));
                if let Some(node) = self.nodes.get_mut(&uri) {
                    let rng = &mut self.rng;
                    let handled = timed(&mut self.busy, &uri, "role floor", || {
                        node.handle(time, &from, Channel::Floor, &w.bytes, rng)
                    });
                    if let Err(e) = handled {
                        self.errors.push((uri.clone(), e.to_string()));
                    }
                }
            }
            Channel::Sip => {
                let remote = Remote {
                    addr: w.from,
                    transport: w.transport,
                };
                let Some(link) = net.links.get_mut(&uri) else {
                    return;
                };
                if w.transport == Transport::Tcp {
                    // A stream: cut by Content-Length, fed in two pieces.
                    let dec = net
                        .decoders
                        .entry((w.from, w.to))
                        .or_insert_with(|| StreamDecoder::new(Limits::TCP));
                    let (a, b) = w.bytes.split_at(w.bytes.len() / 2);
                    dec.push(a);
                    assert!(dec.next_message().unwrap().is_none());
                    dec.push(b);
                    while let Some(m) = dec.next_message().unwrap() {
                        link.receive_message(time.instant, remote, m);
                    }
                } else {
                    // As the node driver does: parsed once, then handed over.
                    timed(
                        &mut self.busy,
                        &uri,
                        "link in",
                        || match mcx_sip::parse_datagram(&w.bytes, &Limits::UDP) {
                            Ok(msg) => link.receive_message(time.instant, remote, msg),
                            Err(_) => link.receive(time.instant, remote, &w.bytes),
                        },
                    );
                }
                self.deliver_link(&uri);
            }
        }
    }

    /// Delivers datagrams and fires timers until nothing is left within
    /// `horizon` of virtual time.
    pub fn drive_for(&mut self, horizon: Duration) {
        let limit = self.now + horizon;
        for _ in 0..100_000 {
            self.collect();
            let next_wire = self
                .net
                .as_ref()
                .and_then(|n| n.in_flight.front().map(|(t, _)| *t));
            let next_msg = match (self.in_flight.front().map(|(t, _)| *t), next_wire) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let next_timer = self.next_timeout().map(|i| i.duration_since(self.base));
            let (at, is_msg) = match (next_msg, next_timer) {
                (Some(m), Some(t)) if t < m => (t, false),
                (Some(m), _) => (m, true),
                (None, Some(t)) => (t, false),
                (None, None) => {
                    self.now = self.now.max(limit);
                    return;
                }
            };
            if at > limit {
                // Virtual time passes even when nothing happens.
                self.now = self.now.max(limit);
                return;
            }
            self.now = self.now.max(at);
            let time = self.time();
            if is_msg && next_wire == Some(at) {
                let (_, w) = self.net.as_mut().unwrap().in_flight.pop_front().unwrap();
                self.arrive(w);
            } else if is_msg {
                let (_, mut t) = self.in_flight.pop_front().unwrap();
                stamp_source(&mut t);
                self.log.push(t.clone());
                let Some(node) = self.nodes.get_mut(&t.to) else {
                    continue;
                };
                let r = match node {
                    Node::Client(c) => {
                        c.handle(time, &t.from, t.channel, &t.octets(), &mut self.rng)
                    }
                    Node::Mc(m) => m.handle(time, &t.from, t.channel, &t.octets(), &mut self.rng),
                    Node::Ctrl(c) => c.handle(time, &t.from, t.channel, &t.octets(), &mut self.rng),
                    Node::Stub(_) => {
                        node.handle(time, &t.from, t.channel, &t.octets(), &mut self.rng)
                    }
                };
                if let Err(e) = r {
                    self.errors.push((t.to.clone(), e.to_string()));
                }
            } else {
                for (name, node) in &mut self.nodes {
                    let rng = &mut self.rng;
                    let r = timed(&mut self.busy, name, "role timer", || match node {
                        Node::Client(c) => c.handle_timeout(time, rng),
                        Node::Mc(m) => m.handle_timeout(time, rng),
                        Node::Ctrl(c) => c.handle_timeout(time, rng),
                        Node::Stub(_) => Ok(()),
                    });
                    if let Err(e) = r {
                        self.errors.push((name.clone(), e.to_string()));
                    }
                }
                let busy = &mut self.busy;
                let uris: Vec<String> = self
                    .net
                    .iter_mut()
                    .flat_map(|n| {
                        for (uri, l) in &mut n.links {
                            timed(busy, uri, "link timer", || l.handle_timeout(time.instant));
                        }
                        n.links.keys().cloned().collect::<Vec<_>>()
                    })
                    .collect();
                for u in uris {
                    self.deliver_link(&u);
                }
            }
        }
        panic!("mesh did not settle");
    }

    /// Every member and the dispatcher registers with its home server
    /// (RNG seeds from `seed`), and the mesh runs for a second.
    pub fn register_everyone(&mut self, seed: u64) {
        for (i, u) in all_members()
            .iter()
            .map(String::as_str)
            .chain([DISPATCHER])
            .enumerate()
        {
            let t = self.time();
            self.client(u)
                .register(t, &mut TestRng(seed + i as u64))
                .unwrap();
        }
        self.drive_for(Duration::from_secs(1));
    }

    pub fn drive(&mut self) {
        self.drive_for(Duration::from_secs(10));
    }

    /// The timeline as text (what `mcx demo` prints).
    pub fn timeline_text(&self) -> String {
        self.timeline
            .iter()
            .map(|s| {
                format!(
                    "{:>7.3}s step {} {:<28} {}\n",
                    s.at.as_secs_f64(),
                    s.step,
                    s.role,
                    s.detail
                )
            })
            .collect()
    }
}

pub const DOMAIN: &str = "mcx.test";
pub const KMS_URI: &str = "kms.mcx.test";
pub const GMS: &str = "sip:gms@mcx.test";
pub const CTRL: &str = "sip:controller@mcx.test";
pub const DISPATCHER: &str = "sip:dispatcher@mcx.test";
pub const ROGUE: &str = "sip:rogue@mcx.test";
pub const OUTSIDER: &str = "sip:outsider@mcx.test";
pub const GROUP_A: &str = "sip:group-a@mcx.test";
pub const GROUP_B: &str = "sip:group-b@mcx.test";
pub const TEMP_GROUP: &str = "sip:tg-1@mcx.test";
pub const UNIX0: u64 = 1_780_000_000;
pub const MC_A: &str = "sip:mc-a@mcx.test";
pub const MC_B: &str = "sip:mc-b@mcx.test";
/// The MC server of [`stub_world`] when it hosts both groups.
pub const MC_ONE: &str = "sip:mc@mcx.test";

pub fn members_a() -> Vec<String> {
    (1..=3).map(|i| format!("sip:a{i}@mcx.test")).collect()
}
pub fn members_b() -> Vec<String> {
    (1..=3).map(|i| format!("sip:b{i}@mcx.test")).collect()
}

/// How the groups are hosted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Servers {
    /// Group A on MC server A, group B on MC server B.
    Two,
    /// Both groups on one MC server.
    One,
}

pub struct World {
    pub mesh: Mesh,
    pub community: Community,
    /// Group member lists of the MC servers (the dispatcher belongs to
    /// both groups; the rogue user holds both GMKs but is in neither list).
    pub groups: Vec<(String, Vec<String>)>,
    /// The GMS's signing key (to issue more GMKs).
    pub gms_signer: SigningKey,
}

impl World {
    /// The GMS gives `group` a new GMK with key parameters naming it,
    /// in force from `activation` to `expiry` (Unix seconds, 0 = not
    /// set), and every client of `recipients` accepts it at the mesh's
    /// time. Returns its GMK-ID.
    pub fn issue_gmk(
        &mut self,
        group: &str,
        recipients: &[&str],
        activation: u64,
        expiry: u64,
    ) -> KeyId {
        let gmk = Gmk::generate(&mut self.mesh.rng);
        let gmk_id = KeyId::generate(Purpose::Gmk, &mut self.mesh.rng).unwrap();
        for m in recipients {
            let msg = self.gmk_message(group, m, &gmk, gmk_id, activation, expiry);
            let time = self.mesh.time();
            let got = self.mesh.client(m).accept_gmk(time, group, &msg).unwrap();
            assert_eq!(got, gmk_id);
        }
        gmk_id
    }

    /// A GMK I_MESSAGE of the GMS to `member`, its key parameters naming
    /// `group`, time-stamped at the mesh's time.
    pub fn gmk_message(
        &mut self,
        group: &str,
        member: &str,
        gmk: &Gmk,
        gmk_id: KeyId,
        activation: u64,
        expiry: u64,
    ) -> Vec<u8> {
        // The GMS signs with its keys of the period of the time stamp.
        let kms = self.community.public();
        let period =
            |t| mcx_ibc::uid::key_period_no(t, kms.key_period_len, kms.key_period_offset).unwrap();
        let now = period(self.mesh.time().unix);
        let fresh = (now != period(UNIX0)).then(|| {
            let keys = self.community.issue(GMS, now, &mut self.mesh.rng).unwrap();
            SigningKey::new(&kms.kpak, &keys.uid, keys.ssk, keys.pvt).unwrap()
        });
        let signer = fresh.as_ref().unwrap_or(&self.gms_signer);
        GmkMessage {
            gms_uri: GMS,
            member_uri: member,
            kms: self.community.public(),
            gmk,
            gmk_id,
            key_params: Some(gmk_key_parameters(group, activation, expiry)),
            policy: Some(Sp::default_group_profile()),
            identity_hiding: false,
            t_unix: self.mesh.time().unix,
            key_params_date_time: None,
        }
        .sign_with_rand(signer, &gmk_rand(gmk), &mut self.mesh.rng)
        .unwrap()
    }
}

/// The one RAND the test GMS sends with `gmk` to every member (TS 33.180
/// 7.4.2; the real GMS draws it once and stores it with the GMK): here a
/// function of the GMK, so that every message of one GMK carries it.
pub fn gmk_rand(gmk: &Gmk) -> [u8; 16] {
    let h = mcx_mikey::kdf::hmac_sha256(gmk.as_bytes(), b"test GMS RAND");
    let mut rand = [0; 16];
    rand.copy_from_slice(&h[..16]);
    rand
}

/// Builds the KMS community, the GMS step (GMK I_MESSAGEs accepted by
/// every member), the MC servers and the controlling server.
///
/// `ctrl_allowed`: initiators the controlling server accepts.
pub fn world(servers: Servers, ctrl_allowed: &[&str]) -> World {
    world_with(servers, ctrl_allowed, |_| {})
}

/// [`world`] with every client's configuration adjusted by `client`.
pub fn world_with(
    servers: Servers,
    ctrl_allowed: &[&str],
    client: impl Fn(&mut ClientConfig),
) -> World {
    world_with_gmks(servers, ctrl_allowed, client, (0, 0), 30 * 86_400)
}

/// [`world_with`] whose first GMKs are in force from `validity.0` to
/// `validity.1` (Unix seconds, 0 = not set), under a KMS whose key
/// periods last `key_period_len` seconds.
pub fn world_with_gmks(
    servers: Servers,
    ctrl_allowed: &[&str],
    client: impl Fn(&mut ClientConfig),
    validity: (u64, u64),
    key_period_len: u64,
) -> World {
    let mut mesh = Mesh::new(UNIX0, 0x5eed);
    let community = Community::generate(KMS_URI, key_period_len, 0, &mut mesh.rng).unwrap();
    let kms = community.public().clone();
    let period =
        mcx_ibc::uid::key_period_no(UNIX0, kms.key_period_len, kms.key_period_offset).unwrap();

    // GMS signing key.
    let gms_keys = community.issue(GMS, period, &mut mesh.rng).unwrap();
    let gms_signer = SigningKey::new(&kms.kpak, &gms_keys.uid, gms_keys.ssk, gms_keys.pvt).unwrap();

    let mut a = members_a();
    let mut b = members_b();
    a.push(DISPATCHER.to_owned());
    b.push(DISPATCHER.to_owned());
    let groups = vec![(GROUP_A.to_owned(), a), (GROUP_B.to_owned(), b)];

    // Clients.
    let mut users: Vec<String> = vec![DISPATCHER.into(), ROGUE.into(), OUTSIDER.into()];
    users.extend(members_a());
    users.extend(members_b());
    for u in &users {
        let keys = community.issue(u, period, &mut mesh.rng).unwrap();
        let mut cfg = ClientConfig::new(u.clone(), CTRL, GMS, vec![DISPATCHER.into()]);
        // Tests run many calls at once through the same members.
        cfg.max_calls = 256;
        client(&mut cfg);
        let c = Client::new(cfg, kms.clone(), keys).unwrap();
        mesh.nodes.insert(u.clone(), Node::Client(Box::new(c)));
    }

    // GMS step: one GMK per group, one I_MESSAGE per member.
    let time = mesh.time();
    for (group, members) in &groups {
        let gmk = Gmk::generate(&mut mesh.rng);
        let gmk_id = KeyId::generate(Purpose::Gmk, &mut mesh.rng).unwrap();
        // The rogue user (a former member) still holds both GMKs.
        let recipients = members.iter().map(String::as_str).chain([ROGUE]);
        for m in recipients {
            let msg = GmkMessage {
                gms_uri: GMS,
                member_uri: m,
                kms: &kms,
                gmk: &gmk,
                gmk_id,
                key_params: Some(gmk_key_parameters(group, validity.0, validity.1)),
                policy: Some(Sp::default_group_profile()),
                identity_hiding: false,
                t_unix: UNIX0,
                key_params_date_time: None,
            }
            .sign_with_rand(&gms_signer, &gmk_rand(&gmk), &mut mesh.rng)
            .unwrap();
            let got = mesh.client(m).accept_gmk(time, group, &msg).unwrap();
            assert_eq!(got, gmk_id);
        }
    }

    // MC servers.
    let constituents = match servers {
        Servers::Two => {
            let mut sa = McServer::new("sip:mc-a@mcx.test");
            sa.add_group(GROUP_A, groups[0].1.clone());
            let mut sb = McServer::new("sip:mc-b@mcx.test");
            sb.add_group(GROUP_B, groups[1].1.clone());
            mesh.nodes.insert(sa.uri().to_owned(), Node::Mc(sa));
            mesh.nodes.insert(sb.uri().to_owned(), Node::Mc(sb));
            vec![
                (GROUP_A.to_owned(), "sip:mc-a@mcx.test".to_owned()),
                (GROUP_B.to_owned(), "sip:mc-b@mcx.test".to_owned()),
            ]
        }
        Servers::One => {
            let mut s = McServer::new("sip:mc@mcx.test");
            s.add_group(GROUP_A, groups[0].1.clone());
            s.add_group(GROUP_B, groups[1].1.clone());
            mesh.nodes.insert(s.uri().to_owned(), Node::Mc(s));
            vec![
                (GROUP_A.to_owned(), "sip:mc@mcx.test".to_owned()),
                (GROUP_B.to_owned(), "sip:mc@mcx.test".to_owned()),
            ]
        }
    };
    let mut ctrl = ControllingServer::new(ControllingServerConfig::new(
        CTRL,
        ctrl_allowed.iter().map(|s| (*s).to_owned()).collect(),
        vec![TemporaryGroup {
            id: TEMP_GROUP.into(),
            constituents,
        }],
    ));
    // The servers' identities with the KMS: clients upload their CSKs to
    // them (SAKKE to the server's URI) when they register.
    let keys = community.issue(CTRL, period, &mut mesh.rng).unwrap();
    ctrl.set_identity(kms.clone(), keys).unwrap();
    mesh.nodes.insert(CTRL.into(), Node::Ctrl(ctrl));
    let servers: Vec<String> = mesh
        .nodes
        .iter()
        .filter(|(_, n)| matches!(n, Node::Mc(_)))
        .map(|(u, _)| u.clone())
        .collect();
    for s in servers {
        let keys = community.issue(&s, period, &mut mesh.rng).unwrap();
        mesh.mc(&s).set_identity(kms.clone(), keys).unwrap();
    }
    mesh.collect_public();
    World {
        mesh,
        community,
        groups,
        gms_signer,
    }
}

impl Mesh {
    pub fn collect_public(&mut self) {
        self.collect();
    }
}

pub fn sip_to(log: &[Transmit], to: &str) -> Vec<Transmit> {
    log.iter()
        .filter(|t| t.to == to && t.channel == Channel::Sip)
        .cloned()
        .collect()
}

impl Mesh {
    /// Removes the first in-flight datagram matching `f` (a tamper hook).
    pub fn take_in_flight(&mut self, f: impl Fn(&Transmit) -> bool) -> Option<Transmit> {
        self.collect();
        let i = self.in_flight.iter().position(|(_, t)| f(t))?;
        self.in_flight.remove(i).map(|(_, t)| t)
    }
}

pub fn all_members() -> Vec<String> {
    members_a().into_iter().chain(members_b()).collect()
}

/// The checks of the nine-step call after set-up (step 9 reached), then
/// a denied Floor Request and the initiator's release ending the call.
/// `expected`: the per-group results the initiator must get; `receivers`:
/// the members that must hold the TGMK (every other member must not).
pub fn verify_full_call(m: &mut Mesh, expected: &[GroupResult], receivers: &[String]) {
    use mcx_floor::{ArbitratorEvent, ParticipantEvent, ParticipantState, RejectCause};
    use mcx_sip::{Message, Multipart, Part};
    use std::collections::BTreeSet;

    assert!(m.errors.is_empty(), "{:?}", m.errors);
    // Every receiver holds the initiator's TGMK; nobody else does.
    let reference = m.client(DISPATCHER).tgmk_confirmation(TEMP_GROUP).unwrap();
    for u in receivers {
        assert_eq!(
            m.client(u).tgmk_confirmation(TEMP_GROUP).as_ref(),
            Some(&reference),
            "{u}"
        );
        // The event says the same (it outlives the call: `mcx run` prints it).
        let announced = m.client_events(u).into_iter().rev().find_map(|e| match e {
            ClientEvent::IncomingCall {
                temporary_group_id,
                confirmation,
                ..
            } if temporary_group_id == TEMP_GROUP => Some(confirmation),
            _ => None,
        });
        assert_eq!(announced.as_ref(), Some(&reference), "{u}'s IncomingCall");
        let (a, b) = (
            m.client(u).media_keys(TEMP_GROUP).unwrap(),
            m.client(DISPATCHER).media_keys(TEMP_GROUP).unwrap(),
        );
        assert_eq!(a.mki(), b.mki());
        assert_eq!(a.master_key(), b.master_key());
    }
    for u in all_members().iter().filter(|u| !receivers.contains(u)) {
        assert!(m.client(u).tgmk_confirmation(TEMP_GROUP).is_none(), "{u}");
    }
    assert!(m.client(OUTSIDER).tgmk_confirmation(TEMP_GROUP).is_none());
    assert!(m.client(ROGUE).tgmk_confirmation(TEMP_GROUP).is_none());

    // Per-group acceptance counts reach the initiator, exactly once.
    let established: Vec<_> = m
        .client_events(DISPATCHER)
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::CallEstablished {
                groups,
                temporary_group_id,
            } => {
                assert_eq!(temporary_group_id, TEMP_GROUP);
                Some(groups)
            }
            _ => None,
        })
        .collect();
    assert_eq!(established, vec![expected.to_vec()]);
    let ctrl_established: Vec<_> = m
        .ctrl_events(CTRL)
        .into_iter()
        .filter_map(|e| match e {
            ControllingEvent::CallEstablished {
                temporary_group_id,
                groups,
                setup_time,
            } => Some((temporary_group_id, groups, setup_time > Duration::ZERO)),
            _ => None,
        })
        .collect();
    assert_eq!(
        ctrl_established,
        vec![(TEMP_GROUP.to_owned(), expected.to_vec(), true)],
        "one call, set up in some (virtual) time"
    );

    // Each MC server / member saw only its group's wrapped copy.
    for t in m
        .log
        .iter()
        .filter(|t| t.channel == Channel::Sip && t.from != DISPATCHER)
    {
        let Ok(Message::Request(req)) = Message::parse(&t.octets()) else {
            continue;
        };
        if req.method() != &mcx_sip::Method::Invite {
            continue;
        }
        let mp = Multipart::parse(req.content_type().unwrap(), req.body()).unwrap();
        let wraps: Vec<&Part> = mp
            .parts
            .iter()
            .filter(|p| p.media_type() == "application/mikey")
            .collect();
        assert_eq!(
            wraps.len(),
            1,
            "INVITE to {} carries one wrapped TGMK",
            t.to
        );
        let info =
            std::str::from_utf8(&mp.find("application/vnd.3gpp.mcptt-info+xml").unwrap().body)
                .unwrap()
                .to_owned();
        assert!(info.contains("<broadcast-ind>true</broadcast-ind>"));
        assert!(info.contains(&format!(
            "<associated-group-id type=\"Normal\"><mcpttURI>{TEMP_GROUP}</mcpttURI>"
        )));
        assert_eq!(
            req.uri(),
            if wraps[0].other_headers[0].1.ends_with(GROUP_A) {
                GROUP_A
            } else {
                GROUP_B
            }
        );
    }

    // Floor: initiator granted, receivers taken.
    assert_eq!(
        m.client(DISPATCHER).floor_state(TEMP_GROUP),
        Some(ParticipantState::HasPermission)
    );
    assert!(m.client_events(DISPATCHER).iter().any(|e| matches!(
        e,
        ClientEvent::Floor {
            event: ParticipantEvent::FloorGranted { .. },
            ..
        }
    )));
    for u in receivers {
        assert!(
            m.client_events(u).iter().any(|e| matches!(
                e,
                ClientEvent::Floor { event: ParticipantEvent::FloorTaken { granted_party: Some(g), permission_to_request: false }, .. } if g == DISPATCHER
            )),
            "{u} got Floor Taken"
        );
        assert_eq!(
            m.client(u).floor_state(TEMP_GROUP),
            Some(ParticipantState::HasNoPermission)
        );
    }

    // A receiver may not even ask locally; one that asks anyway is denied.
    let t = m.time();
    let r1 = &receivers[0];
    assert!(m.client(r1).request_floor(t, TEMP_GROUP).is_err());
    m.client(r1).request_floor_anyway(t, TEMP_GROUP).unwrap();
    m.drive();
    assert!(m.client_events(r1).iter().any(|e| matches!(
        e,
        ClientEvent::Floor { event: ParticipantEvent::FloorDenied { cause, .. }, .. } if *cause == RejectCause::RECEIVE_ONLY
    )));
    assert!(m.ctrl_events(CTRL).iter().any(|e| matches!(
        e,
        ControllingEvent::Floor {
            event: ArbitratorEvent::RequestDenied { .. },
            ..
        }
    )));
    assert_eq!(
        m.client(DISPATCHER).floor_state(TEMP_GROUP),
        Some(ParticipantState::HasPermission)
    );

    // The initiator's release: Floor Idle to all, then BYE ends the call.
    let t = m.time();
    m.client(DISPATCHER).release_floor(t, TEMP_GROUP).unwrap();
    m.drive();
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    assert!(m.ctrl_events(CTRL).iter().any(|e| matches!(
        e,
        ControllingEvent::Floor {
            event: ArbitratorEvent::CallEnded,
            ..
        }
    )));
    assert!(
        m.ctrl_events(CTRL)
            .iter()
            .any(|e| matches!(e, ControllingEvent::CallEnded { .. }))
    );
    for u in receivers.iter().map(String::as_str).chain([DISPATCHER]) {
        let ev = m.client_events(u);
        if u != DISPATCHER {
            assert!(
                ev.iter().any(|e| matches!(
                    e,
                    ClientEvent::Floor {
                        event: ParticipantEvent::FloorIdle { .. },
                        ..
                    }
                )),
                "{u} idle"
            );
        }
        assert_eq!(
            ev.iter()
                .filter(|e| matches!(e, ClientEvent::CallEnded { .. }))
                .count(),
            1,
            "{u} got BYE once"
        );
        assert!(!m.client(u).in_call(TEMP_GROUP));
        assert!(m.client(u).tgmk_confirmation(TEMP_GROUP).is_none());
    }
    // `log` holds what the roles were handed: each BYE exactly once.
    let byes = m
        .log
        .iter()
        .filter(|t| t.octets().starts_with(b"BYE "))
        .count();
    let legs = expected.iter().filter(|g| g.accepted > 0).count();
    assert_eq!(
        byes,
        1 + legs + receivers.len(),
        "BYE to initiator, the accepting legs and every receiver"
    );

    // The timeline covers the nine steps.
    let steps: BTreeSet<u8> = m.timeline.iter().map(|s| s.step).collect();
    assert_eq!(steps, (1..=9).collect());
    assert!(m.timeline.windows(2).all(|w| w[0].at <= w[1].at));
    let text = m.timeline_text();
    assert!(!text.contains(&format!("{:02x?}", reference.value)));
    println!("{text}");
}

impl Mesh {
    pub fn stub(&mut self, uri: &str) -> &mut Stub {
        match self.nodes.get_mut(uri) {
            Some(Node::Stub(s)) => s,
            _ => panic!("{uri} is not a stub"),
        }
    }

    pub fn mc(&mut self, uri: &str) -> &mut McServer {
        match self.nodes.get_mut(uri) {
            Some(Node::Mc(m)) => m,
            _ => panic!("{uri} is not an MC server"),
        }
    }

    /// Replaces the controlling server (e.g. with more temporary groups);
    /// it has no KMS identity (no CSK uploads).
    pub fn set_ctrl(&mut self, config: ControllingServerConfig) {
        let uri = config.uri.clone();
        self.nodes
            .insert(uri, Node::Ctrl(ControllingServer::new(config)));
    }
}

/// The test world's controlling server configuration with these
/// temporary groups: (ID, constituent groups with their MC servers).
pub fn ctrl_config(temporary_groups: Vec<TemporaryGroup>) -> ControllingServerConfig {
    ControllingServerConfig::new(CTRL, vec![DISPATCHER.into()], temporary_groups)
}

/// The transport source of a node in the mesh: a fixed address per name.
pub fn mesh_source(node: &str) -> (String, u16) {
    let h = node.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    (
        format!("10.{}.{}.{}", (h >> 16) & 255, (h >> 8) & 255, h & 255),
        5060,
    )
}

/// As a receiving transport does (`SipLink`), records a request's source
/// (its sender node) in the top Via.
fn stamp_source(t: &mut Transmit) {
    if t.channel != Channel::Sip || t.is_sip_response() {
        return;
    }
    let Ok(mcx_sip::Message::Request(mut r)) = mcx_sip::Message::parse(&t.octets()) else {
        return;
    };
    let (host, port) = mesh_source(&t.from);
    if r.stamp_received(&host, port).is_ok() {
        t.set_octets(r.to_bytes());
    }
}

/// The stub members of [`stub_world`]'s groups A and B.
pub struct Groups {
    pub a: Vec<String>,
    pub b: Vec<String>,
}

/// A world whose groups A and B have `n` stub members each, on two MC
/// servers or both on one; `late` (in group A) answers only when told.
pub fn stub_world(
    n: usize,
    one_server: bool,
    late: Option<&str>,
    policy: AnswerPolicy,
) -> (World, Groups) {
    let mut w = world(Servers::Two, &[DISPATCHER]);
    let m = &mut w.mesh;
    let names =
        |p: &str| -> Vec<String> { (0..n).map(|i| format!("sip:{p}{i:02}@mcx.test")).collect() };
    let (mut a, b) = (names("fa"), names("fb"));
    for u in a.iter().chain(&b) {
        m.nodes
            .insert(u.clone(), Node::Stub(Stub::new(u, StubMode::Accept)));
    }
    if let Some(l) = late {
        m.nodes
            .insert(l.to_owned(), Node::Stub(Stub::new(l, StubMode::Ringing)));
        a.push(l.to_owned());
    }
    let limits = McServerLimits {
        answer: policy,
        ..McServerLimits::default()
    };
    let with_dispatcher = |g: &[String]| -> Vec<String> {
        g.iter().cloned().chain([DISPATCHER.to_owned()]).collect()
    };
    let (server_a, server_b) = if one_server {
        let mut s = McServer::new(MC_ONE);
        s.add_group(GROUP_A, with_dispatcher(&a))
            .add_group(GROUP_B, with_dispatcher(&b))
            .set_limits(limits);
        m.nodes.remove(MC_A);
        m.nodes.remove(MC_B);
        m.nodes.insert(MC_ONE.into(), Node::Mc(s));
        (MC_ONE, MC_ONE)
    } else {
        for (uri, group, list) in [(MC_A, GROUP_A, &a), (MC_B, GROUP_B, &b)] {
            let mut s = McServer::new(uri);
            s.add_group(group, with_dispatcher(list))
                .set_limits(limits.clone());
            m.nodes.insert(uri.into(), Node::Mc(s));
        }
        (MC_A, MC_B)
    };
    m.set_ctrl(ctrl_config(vec![TemporaryGroup {
        id: TEMP_GROUP.into(),
        constituents: vec![
            (GROUP_A.into(), server_a.into()),
            (GROUP_B.into(), server_b.into()),
        ],
    }]));
    let a = a.into_iter().filter(|u| Some(u.as_str()) != late).collect();
    (w, Groups { a, b })
}
