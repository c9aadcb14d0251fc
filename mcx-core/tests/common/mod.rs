//! In-memory harness: a `Mesh` routing `Transmit`s between roles by
//! address with a virtual clock (STYLE.md 7), and a fixture that builds a
//! KMS community, a GMS and the groups of SPEC section 1.
#![allow(clippy::unwrap_used, dead_code, unreachable_pub, missing_docs)]

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use mcx_core::{
    Channel, Client, ClientConfig, ClientEvent, ControllingEvent, ControllingServer,
    ControllingServerConfig, McServer, McServerEvent, TemporaryGroup, Time, Transmit,
};
use mcx_ibc::eccsi::SigningKey;
use mcx_ibc::kms::Community;
use mcx_mikey::gmk::{GmkMessage, gmk_key_parameters};
use mcx_mikey::message::Sp;
use mcx_mikey::wire::Purpose;
use mcx_mikey::{Gmk, KeyId};

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
}

#[derive(Debug, Clone)]
pub enum AnyEvent {
    Client(ClientEvent),
    Mc(McServerEvent),
    Ctrl(ControllingEvent),
}

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
        }
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
        for (name, node) in &mut self.nodes {
            loop {
                let t = match node {
                    Node::Client(c) => c.poll_transmit(),
                    Node::Mc(m) => m.poll_transmit(),
                    Node::Ctrl(c) => c.poll_transmit(),
                };
                let Some(t) = t else { break };
                self.in_flight.push_back((self.now + self.latency, t));
            }
            loop {
                let e = match node {
                    Node::Client(c) => c.poll_timeline(),
                    Node::Mc(m) => m.poll_timeline(),
                    Node::Ctrl(c) => c.poll_timeline(),
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
                };
                let Some(e) = e else { break };
                evs.push(e);
            }
        }
    }

    fn next_timeout(&self) -> Option<Instant> {
        self.nodes
            .values()
            .filter_map(|n| match n {
                Node::Client(c) => c.poll_timeout(),
                Node::Mc(_) => None,
                Node::Ctrl(c) => c.poll_timeout(),
            })
            .min()
    }

    /// Delivers datagrams and fires timers until nothing is left within
    /// `horizon` of virtual time.
    pub fn drive_for(&mut self, horizon: Duration) {
        let limit = self.now + horizon;
        for _ in 0..100_000 {
            self.collect();
            let next_msg = self.in_flight.front().map(|(t, _)| *t);
            let next_timer = self.next_timeout().map(|i| i.duration_since(self.base));
            let (at, is_msg) = match (next_msg, next_timer) {
                (Some(m), Some(t)) if t < m => (t, false),
                (Some(m), _) => (m, true),
                (None, Some(t)) => (t, false),
                (None, None) => return,
            };
            if at > limit {
                return;
            }
            self.now = self.now.max(at);
            let time = self.time();
            if is_msg {
                let (_, t) = self.in_flight.pop_front().unwrap();
                self.log.push(t.clone());
                let Some(node) = self.nodes.get_mut(&t.to) else {
                    continue;
                };
                let r = match node {
                    Node::Client(c) => {
                        c.handle(time, &t.from, t.channel, &t.contents, &mut self.rng)
                    }
                    Node::Mc(m) => m.handle(time, &t.from, t.channel, &t.contents, &mut self.rng),
                    Node::Ctrl(c) => c.handle(time, &t.from, t.channel, &t.contents, &mut self.rng),
                };
                if let Err(e) = r {
                    self.errors.push((t.to.clone(), e.to_string()));
                }
            } else {
                for (name, node) in &mut self.nodes {
                    let r = match node {
                        Node::Client(c) => {
                            c.handle_timeout(time);
                            Ok(())
                        }
                        Node::Mc(_) => Ok(()),
                        Node::Ctrl(c) => c.handle_timeout(time, &mut self.rng),
                    };
                    if let Err(e) = r {
                        self.errors.push((name.clone(), e.to_string()));
                    }
                }
            }
        }
        panic!("mesh did not settle");
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
}

/// Builds the KMS community, the GMS step (GMK I_MESSAGEs accepted by
/// every member), the MC servers and the controlling server.
///
/// `ctrl_allowed`: initiators the controlling server accepts.
pub fn world(servers: Servers, ctrl_allowed: &[&str]) -> World {
    let mut mesh = Mesh::new(UNIX0, 0x5eed);
    let community = Community::generate(KMS_URI, 30 * 86_400, 0, &mut mesh.rng).unwrap();
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
    for (i, u) in users.iter().enumerate() {
        let keys = community.issue(u, period, &mut mesh.rng).unwrap();
        let cfg = ClientConfig {
            uri: u.clone(),
            controlling_server: CTRL.into(),
            gms_uri: GMS.into(),
            allowed_initiators: vec![DISPATCHER.into()],
            floor_ssrc: 0x1000 + u32::try_from(i).unwrap(),
        };
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
                key_params: Some(gmk_key_parameters(group, 0, 0)),
                policy: Some(Sp::default_group_profile()),
                identity_hiding: false,
                t_unix: UNIX0,
                key_params_date_time: None,
            }
            .sign(&gms_signer, &mut mesh.rng)
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
    let ctrl = ControllingServer::new(ControllingServerConfig {
        uri: CTRL.into(),
        allowed_initiators: ctrl_allowed.iter().map(|s| (*s).to_owned()).collect(),
        temporary_groups: vec![TemporaryGroup {
            id: TEMP_GROUP.into(),
            constituents,
        }],
        floor_ssrc: 0xF100_0001,
    });
    mesh.nodes.insert(CTRL.into(), Node::Ctrl(ctrl));
    mesh.collect_public();
    World {
        mesh,
        community,
        groups,
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
