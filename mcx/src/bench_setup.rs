//! `mcx bench call --groups G --members M`: the set-up of one temporary
//! group – broadcast call to G × M receivers, with the servers as separate
//! processes (docs/BENCHMARKS.md, "Set-up of 50 groups × 200 members").
//!
//! - The controlling server and every MC server (two groups each, as in
//!   `mcx demo --groups`) run as `mcx run TOPOLOGY ROLE`, each its own
//!   process, SIP over UDP on loopback, from a topology written here. No
//!   KMS runs: the servers go without identity keys (only CSK uploads at
//!   registration need them; the members do not register).
//! - This process is the load: the initiator (a full [`Client`] with its
//!   own KMS keys) and every member, as receive-only clients
//!   ([`Client::receive_only`]) whose keys come from a bench-only KMS and
//!   GMS in this process (community, GMKs), so that provisioning 10,000
//!   members takes a second, not SAKKE's minutes. Each member still does
//!   all of a member's work for each call: the checks of the call
//!   request, the initiator's ECCSI signature verified (with the
//!   initiator's verifying key cached, as a device keeps it after the
//!   first call), the TGMK unwrapped, its answer.
//! - Members share a SIP socket per group (with one [`SipLink`]): a
//!   message is handed to the member its To names (requests) or its From
//!   names (responses). Each member has a floor socket of its own, as a
//!   device does: the MC server names a floor packet's sender by its
//!   source address, and each member takes its Floor Taken and sends the
//!   Floor Ack it asks for (set-up does not wait for them, but the
//!   servers' CPU window includes them). 50 × 200 takes 10,051 sockets
//!   here (within the 20,000 open files) and a few per server process.
//!
//! Per call it measures the set-up time (initiator's `start_call` until
//! its `CallEstablished`), the CPU each process spent (`/proc/PID/task/*/
//! schedstat`: user + system, ns) from just before the call request until
//! the ACKs and floor messages have settled, and the same for the
//! tear-down; at the end each process's peak resident set (VmHWM).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mcx_core::{Channel, Client, ClientConfig, ClientEvent, GmkInfo, MediaEndpoint, SipLink, Time};
use mcx_ibc::eccsi::SigningKey;
use mcx_ibc::kms::Community;
use mcx_mikey::tgmk::VerifyingKeys;
use mcx_mikey::wire::Purpose;
use mcx_mikey::{Gmk, KeyId};
use mcx_net::OsRng;
use mcx_sip::{Message, Remote, Transport};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::error::CliError;

fn failed(what: impl std::fmt::Display) -> CliError {
    CliError::System(what.to_string())
}

const DOMAIN: &str = "mcx.example";
const KMS_URI: &str = "kms.mcx.example";
const GMS_URI: &str = "sip:gms@mcx.example";
const CONTROLLING: &str = "sip:controlling@mcx.example";
const INITIATOR: &str = "sip:dispatcher@mcx.example";
/// Key periods of the bench KMS (the topology's default, 30 days).
const KEY_PERIOD_LEN: u64 = 30 * 86_400;
/// How long after the initiator's `CallEstablished` the CPU window of a
/// call stays open: the ACKs down to every member and the floor messages
/// that follow the answer.
const SETTLE: Duration = Duration::from_millis(300);
/// An environment variable: a command line (e.g. `valgrind --tool=callgrind`)
/// the first MC server's process is started under.
const WRAP_FIRST_MC_SERVER: &str = "MCX_BENCH_WRAP_MCS0";
/// How long a wrapped server is given to exit after SIGTERM.
const WRAPPED_EXIT: Duration = Duration::from_secs(20);
/// Longest wait for a call's answer or its end.
const PATIENCE: Duration = Duration::from_secs(30);

/// What to run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SetupBench {
    /// Constituent groups.
    pub(crate) groups: usize,
    /// Members per group.
    pub(crate) members: usize,
    /// Calls measured (after one warm-up call).
    pub(crate) calls: usize,
    /// Constituent groups per MC server.
    pub(crate) groups_per_server: usize,
}

impl SetupBench {
    /// MC server processes: each owns `groups_per_server` groups.
    fn mc_servers(&self) -> usize {
        self.groups.div_ceil(self.groups_per_server.max(1))
    }

    /// The MC server that owns group `g`.
    fn server_of(&self, g: usize) -> usize {
        g / self.groups_per_server.max(1)
    }

    /// The groups MC server `s` owns.
    fn groups_of(&self, s: usize) -> std::ops::Range<usize> {
        let per = self.groups_per_server.max(1);
        (per * s).min(self.groups)..(per * s + per).min(self.groups)
    }
}

/// A SIP and a floor address.
#[derive(Clone, Copy, Debug)]
struct Addrs {
    sip: SocketAddr,
    floor: SocketAddr,
}

/// A group's members' addresses: one SIP socket shared by all, a floor
/// socket each (the MC server names a floor packet's sender by its
/// source address, so each member acknowledges from its own).
#[derive(Clone, Debug)]
struct GroupAddrs {
    sip: SocketAddr,
    floors: Vec<SocketAddr>,
}

impl GroupAddrs {
    /// Member `m`'s addresses.
    fn member(&self, m: usize) -> Addrs {
        Addrs {
            sip: self.sip,
            floor: self.floors.get(m).copied().unwrap_or(self.sip),
        }
    }
}

fn group_uri(g: usize) -> String {
    format!("sip:group-{g}@{DOMAIN}")
}

fn member_uri(g: usize, m: usize) -> String {
    format!("sip:g{g}-m{m}@{DOMAIN}")
}

fn mc_server_uri(s: usize) -> String {
    format!("sip:mcs-{s}@{DOMAIN}")
}

fn temporary_group(b: &SetupBench) -> String {
    format!("sip:tg-{}x{}@{DOMAIN}", b.groups, b.members)
}

/// A loopback port free for UDP and TCP now. The server process binds it
/// a moment later, and another process may take it in between: the
/// bench then sees that server exit for a port in use and starts the
/// servers again on fresh ports ([`start_servers`]).
fn free_port() -> Result<SocketAddr, CliError> {
    for _ in 0..32 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").map_err(failed)?;
        let addr = udp.local_addr().map_err(failed)?;
        if std::net::TcpListener::bind(addr).is_ok() {
            return Ok(addr);
        }
    }
    Err(failed("no free loopback port for UDP and TCP"))
}

/// The topology the server processes run: SIP over UDP, no TLS, no IdMS.
fn topology_text(
    b: &SetupBench,
    controlling: Addrs,
    servers: &[Addrs],
    groups: &[GroupAddrs],
    initiator: Addrs,
    http: [SocketAddr; 2],
) -> String {
    use std::fmt::Write;
    let mut t = String::new();
    let tg = temporary_group(b);
    let group_list = (0..b.groups)
        .map(|g| format!("\"{}\"", group_uri(g)))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = write!(
        t,
        "# Written by `mcx bench call --groups {g} --members {m}`.\n\
         [kms]\nuri = \"{KMS_URI}\"\nhttp = \"{k}\"\n\n\
         [gms]\nuri = \"{GMS_URI}\"\ntoken = \"bench-gms\"\nhttp = \"{h}\"\n\n\
         [controlling]\nuri = \"{CONTROLLING}\"\nsip = \"{cs}\"\nfloor = \"{cf}\"\ntransport = \"udp\"\n\
         allowed_initiators = [\"{INITIATOR}\"]\n\n\
         [[controlling.temporary_group]]\nid = \"{tg}\"\ngroups = [{group_list}]\n\n\
         [floor]\nspk = \"9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c\"\nspk_id = 0x30000001\n\
         spk_rand = \"1b3d5f7a9c2e4a6c8e0b2d4f6a8c0e2b\"\n\n\
         [call]\ninitiator = \"{INITIATOR}\"\ntemporary_group = \"{tg}\"\n\n",
        g = b.groups,
        m = b.members,
        k = http[0],
        h = http[1],
        cs = controlling.sip,
        cf = controlling.floor,
    );
    for (s, a) in servers.iter().enumerate() {
        let owned = b
            .groups_of(s)
            .map(|g| format!("\"{}\"", group_uri(g)))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            t,
            "[[mc_server]]\nuri = \"{}\"\nsip = \"{}\"\nfloor = \"{}\"\ntransport = \"udp\"\ngroups = [{owned}]\n\n",
            mc_server_uri(s),
            a.sip,
            a.floor
        );
    }
    for g in 0..b.groups {
        let members = std::iter::once(format!("\"{INITIATOR}\""))
            .chain((0..b.members).map(|m| format!("\"{}\"", member_uri(g, m))))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            t,
            "[[group]]\nid = \"{}\"\nname = \"Group {g}\"\nmembers = [{members}]\n\n",
            group_uri(g)
        );
    }
    let user = |t: &mut String, uri: &str, a: Addrs| {
        let _ = write!(
            t,
            "[[user]]\nuri = \"{uri}\"\ntoken = \"bench\"\nsip = \"{}\"\nfloor = \"{}\"\ntransport = \"udp\"\n\n",
            a.sip, a.floor
        );
    };
    user(&mut t, INITIATOR, initiator);
    for (g, a) in groups.iter().enumerate() {
        for m in 0..b.members {
            user(&mut t, &member_uri(g, m), a.member(m));
        }
    }
    t
}

/// A server process; killed on drop.
struct ServerProcess {
    name: String,
    child: Child,
    /// Started under a wrapper ([`WRAP_FIRST_MC_SERVER`]): stopped with SIGTERM.
    wrapped: bool,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // A wrapped server (a tool that writes its results on exit) is
        // asked to stop first, and given WRAPPED_EXIT to exit.
        if self.wrapped {
            let stopped = Command::new("kill")
                .args(["-TERM", &self.pid().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            let deadline = Instant::now() + WRAPPED_EXIT;
            while stopped && Instant::now() < deadline {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    /// `mcx run TOPOLOGY ROLE`, its output to `DIR/NAME.log`.
    fn start(
        exe: &Path,
        dir: &Path,
        topology: &Path,
        role: &str,
        name: &str,
    ) -> Result<Self, CliError> {
        // A tool wrapped around the first MC server (callgrind, to count
        // its instructions per member exactly; docs/BENCHMARKS.md).
        let wrapper = (name == "mcs-0")
            .then(|| std::env::var(WRAP_FIRST_MC_SERVER).ok())
            .flatten()
            .filter(|w| !w.trim().is_empty());
        let mut command = wrapped_command(exe, wrapper.as_deref());
        command.arg("run").arg(topology).arg(role);
        let mut p = Self::spawn(command, dir, name)?;
        p.wrapped = wrapper.is_some();
        Ok(p)
    }

    fn spawn(mut command: Command, dir: &Path, name: &str) -> Result<Self, CliError> {
        let log = std::fs::File::create(Self::log_path(dir, name)).map_err(failed)?;
        let err = log.try_clone().map_err(failed)?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| failed(format!("cannot start {name}: {e}")))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            wrapped: false,
        })
    }

    fn log_path(dir: &Path, name: &str) -> std::path::PathBuf {
        dir.join(format!("{name}.log"))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// `exe` as a command, or under `wrapper` (a command line, split at
/// whitespace) when one is given.
fn wrapped_command(exe: &Path, wrapper: Option<&str>) -> Command {
    let mut words = wrapper.map(str::split_whitespace).into_iter().flatten();
    match words.next() {
        Some(tool) => {
            let mut c = Command::new(tool);
            c.args(words).arg(exe);
            c
        }
        None => Command::new(exe),
    }
}

/// Whether process `pid` holds a socket bound to local `port` on
/// loopback, by protocol (`tcp` or `udp`): the socket's inode, from
/// `/proc/net/PROTO`, among the process's open files. Only the process
/// that bound a port holds it, so this tells our server from another
/// process that took the port first.
fn holds_port(pid: u32, proto: &str, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string(format!("/proc/net/{proto}")) else {
        return false;
    };
    // Fields: sl, local_address (hex IP:hex port), rem_address, st,
    // tx_queue:rx_queue, tr:tm->when, retrnsmt, uid, timeout, inode.
    let sockets: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields.get(1)?.rsplit(':').next()?;
            let inode = fields.get(9)?;
            let ours = u16::from_str_radix(local_port, 16).ok()? == port;
            ours.then(|| format!("socket:[{inode}]"))
        })
        .collect();
    if sockets.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .any(|target| sockets.iter().any(|s| target.as_os_str() == s.as_str()))
}

/// Why the servers did not come up.
#[derive(Debug)]
enum StartFailure {
    /// A server could not bind a port the bench had picked (another
    /// process took it in between): worth starting again on fresh ports.
    PortTaken(String),
    /// Anything else (a bad topology, a crash, no start in time).
    Failed(CliError),
}

impl From<StartFailure> for CliError {
    fn from(f: StartFailure) -> Self {
        match f {
            StartFailure::PortTaken(what) => failed(what),
            StartFailure::Failed(e) => e,
        }
    }
}

/// Times the servers are started on fresh ports before the bench gives
/// up (each retry follows a port taken by another process between our
/// pick and the server's bind, which is rare: one retry nearly always
/// does).
const START_ATTEMPTS: usize = 5;

/// The server processes, running, with their addresses.
struct Servers {
    controlling: Addrs,
    mc_servers: Vec<Addrs>,
    procs: Vec<ServerProcess>,
}

/// Writes the topology with fresh server ports and starts the controlling
/// server and every MC server, until all hold their ports; again on fresh
/// ports if one could not bind (at most [`START_ATTEMPTS`] times).
async fn start_servers(
    b: &SetupBench,
    dir: &Path,
    group_addrs: &[GroupAddrs],
    initiator_addrs: Addrs,
) -> Result<Servers, CliError> {
    let exe = std::env::current_exe().map_err(failed)?;
    let topology = dir.join("topology.toml");
    let server_addr = || -> Result<Addrs, CliError> {
        Ok(Addrs {
            sip: free_port()?,
            floor: free_port()?,
        })
    };
    for attempt in 1..=START_ATTEMPTS {
        let controlling = server_addr()?;
        let mc_servers = (0..b.mc_servers())
            .map(|_| server_addr())
            .collect::<Result<Vec<_>, _>>()?;
        let http = [free_port()?, free_port()?];
        let text = topology_text(
            b,
            controlling,
            &mc_servers,
            group_addrs,
            initiator_addrs,
            http,
        );
        std::fs::write(&topology, text).map_err(failed)?;
        let mut procs = vec![ServerProcess::start(
            &exe,
            dir,
            &topology,
            "controlling",
            "controlling",
        )?];
        for s in 0..mc_servers.len() {
            procs.push(ServerProcess::start(
                &exe,
                dir,
                &topology,
                &mc_server_uri(s),
                &format!("mcs-{s}"),
            )?);
        }
        let addrs: Vec<Addrs> = std::iter::once(controlling)
            .chain(mc_servers.iter().copied())
            .collect();
        match wait_ready(&mut procs, &addrs, dir).await {
            Ok(()) => {
                return Ok(Servers {
                    controlling,
                    mc_servers,
                    procs,
                });
            }
            Err(StartFailure::PortTaken(what)) if attempt < START_ATTEMPTS => {
                println!("{what}; starting the servers again on fresh ports");
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Not reached: the last attempt returns whatever happens.
    Err(failed("the servers were not started"))
}

/// CPU time of every live thread of process `pid` (user + system, from
/// `/proc/PID/task/*/schedstat`, ns).
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// A `/proc/PID/status` field in KiB (VmHWM, VmRSS).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// What the members of this process did, summed.
struct Counters {
    /// The origin of the answer times below.
    epoch: Instant,
    /// When the first and the last member accepted the current call (ns
    /// since `epoch`; `u64::MAX` and 0 before any did).
    first_answer: AtomicU64,
    last_answer: AtomicU64,
    /// Members in a call now.
    in_call: AtomicI64,
    /// Call requests members accepted (signature verified, TGMK unwrapped).
    accepted: AtomicU64,
    /// Call requests members refused.
    refused: AtomicU64,
    /// Floor packets that reached the members' floor sockets (the
    /// initiator's included).
    floor_packets: AtomicU64,
    /// Floor packets the members sent (Floor Acks; the initiator's too).
    floor_sent: AtomicU64,
}

impl Counters {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            first_answer: AtomicU64::new(u64::MAX),
            last_answer: AtomicU64::new(0),
            in_call: AtomicI64::new(0),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            floor_packets: AtomicU64::new(0),
            floor_sent: AtomicU64::new(0),
        }
    }

    fn since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// A member accepted the call (its 200 OK is on its way).
    fn answered_at(&self, at: Instant) {
        let ns = self.since_epoch(at);
        self.first_answer.fetch_min(ns, Ordering::Relaxed);
        self.last_answer.fetch_max(ns, Ordering::Relaxed);
    }

    /// Forgets the answer times of the previous call.
    fn reset_answers(&self) {
        self.first_answer.store(u64::MAX, Ordering::Relaxed);
        self.last_answer.store(0, Ordering::Relaxed);
    }

    /// The first and the last member's answer to this call, from `t0`.
    fn answers_since(&self, t0: Instant) -> (Duration, Duration) {
        let t0 = self.since_epoch(t0);
        let at = |a: &AtomicU64| Duration::from_nanos(a.load(Ordering::Relaxed).saturating_sub(t0));
        (at(&self.first_answer), at(&self.last_answer))
    }
}

type ClientCommand = Box<dyn FnOnce(&mut Client, Time, &mut OsRng) + Send>;

/// One shared SIP socket (and its link) for the clients whose SIP address
/// it is, and a floor socket of each.
struct Endpoint {
    sip: UdpSocket,
    /// Client `i`'s floor socket: it sends its floor packets from it.
    floors: Vec<Arc<UdpSocket>>,
    /// Floor packets read from those sockets ([`read_floor`]): the
    /// client's index, the source, the packet.
    floor_in: mpsc::UnboundedReceiver<(usize, SocketAddr, Vec<u8>)>,
    /// The servers' URIs by floor address.
    floor_peers: Arc<HashMap<SocketAddr, String>>,
    link: SipLink,
    clients: Vec<Client>,
    /// Each client's index in `clients`, by URI.
    index: HashMap<String, usize>,
    /// Each client's next timer as it said after its last input: a
    /// client's timers change only when it is handed something, so the
    /// loop does not ask all of them again on every datagram.
    deadlines: Vec<Option<Instant>>,
    /// The servers' addresses by URI.
    peers: Arc<HashMap<String, Addrs>>,
    /// Buffered OS randomness: one `getrandom` call per member draw was ~2 % of the members' CPU.
    rng: OsRng,
    counters: Arc<Counters>,
    /// The initiator's events (members' events are only counted).
    events: Option<mpsc::UnboundedSender<ClientEvent>>,
    outbox: Vec<(SocketAddr, bytes::Bytes)>,
    /// Floor packets to send: from client `i`'s socket, to, packet.
    floor_out: Vec<(usize, SocketAddr, Vec<u8>)>,
}

/// Client `i`'s floor socket, read until the endpoint is gone. Floor
/// packets are small RTCP APP packets; anything longer than the buffer
/// arrives truncated and fails to decode, as it would at a device.
async fn read_floor(
    i: usize,
    socket: Arc<UdpSocket>,
    to_endpoint: mpsc::UnboundedSender<(usize, SocketAddr, Vec<u8>)>,
) {
    let mut buf = vec![0u8; 4096];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) => {
                if to_endpoint.send((i, from, buf[..n].to_vec())).is_err() {
                    return;
                }
            }
            // E.g. ICMP port unreachable for an earlier send: the next
            // datagram is read as usual.
            Err(e) => tracing::debug!("floor socket {i}: {e}"),
        }
    }
}

impl Endpoint {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<ClientCommand>) {
        let mut buf = vec![0u8; 65_536];
        let mut commands_open = true;
        loop {
            let next = self
                .deadlines
                .iter()
                .flatten()
                .copied()
                .chain(self.link.poll_timeout())
                .min();
            let sleep = async move {
                match next {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = self.sip.readable() => {
                    if r.is_err() {
                        return;
                    }
                    for _ in 0..64 {
                        match self.sip.try_recv_from(&mut buf) {
                            Ok((n, from)) => {
                                let remote = Remote { addr: from, transport: Transport::Udp };
                                self.link.receive(Instant::now(), remote, &buf[..n]);
                                self.deliver();
                            }
                            Err(_) => break,
                        }
                    }
                }
                Some((i, from, packet)) = self.floor_in.recv() => {
                    self.on_floor(i, from, &packet);
                    while let Ok((i, from, packet)) = self.floor_in.try_recv() {
                        self.on_floor(i, from, &packet);
                    }
                }
                c = commands.recv(), if commands_open => match c {
                    // Commands go to the endpoint's first client (the
                    // initiator's endpoint has only it).
                    Some(f) => {
                        if let Some(c) = self.clients.first_mut() {
                            f(c, mcx_net::now(), &mut self.rng);
                            self.flush_client(0);
                        }
                    }
                    None => commands_open = false,
                },
                () = sleep => {
                    let time = mcx_net::now();
                    self.link.handle_timeout(time.instant);
                    self.deliver();
                    for i in 0..self.clients.len() {
                        if self.deadlines[i].is_none_or(|t| t > time.instant) {
                            continue;
                        }
                        if let Err(e) = self.clients[i].handle_timeout(time, &mut self.rng) {
                            tracing::debug!("{}: timer: {e}", self.clients[i].uri());
                        }
                        self.flush_client(i);
                    }
                }
            }
            self.send().await;
        }
    }

    /// A floor packet to client `i` from `from`: handed to it as a device
    /// takes it (a Floor Taken that asks for one is acknowledged).
    fn on_floor(&mut self, i: usize, from: SocketAddr, packet: &[u8]) {
        self.counters.floor_packets.fetch_add(1, Ordering::Relaxed);
        let Some(uri) = self.floor_peers.get(&from) else {
            tracing::debug!("floor packet from {from}, not a server: dropped");
            return;
        };
        let Some(client) = self.clients.get_mut(i) else {
            return;
        };
        if let Err(e) = client.handle(mcx_net::now(), uri, Channel::Floor, packet, &mut self.rng) {
            tracing::debug!("{}: floor: {e}", client.uri());
        }
        self.flush_client(i);
    }

    /// Hands every message the link has to the client it is for.
    fn deliver(&mut self) {
        while let Some(d) = self.link.poll_deliver() {
            let target = match &d.message {
                Message::Request(r) => r.to().map(|n| n.uri),
                Message::Response(r) => r.from().map(|n| n.uri),
            };
            let Some(i) = target.ok().and_then(|uri| self.index.get(&uri).copied()) else {
                continue;
            };
            let client = &mut self.clients[i];
            if let Err(e) = client.handle_sip(mcx_net::now(), &d.from, d.message, &mut self.rng) {
                tracing::debug!("{}: {e}", client.uri());
            }
            self.flush_client(i);
        }
    }

    /// A client's output: SIP through the link, floor packets queued,
    /// events counted (or passed on, for the initiator).
    fn flush_client(&mut self, i: usize) {
        let Some(client) = self.clients.get_mut(i) else {
            return;
        };
        while let Some(t) = client.poll_transmit() {
            let peer = self.peers.get(&t.to).copied();
            match t.channel {
                Channel::Sip => {
                    let remote = match peer {
                        Some(p) => Remote {
                            addr: p.sip,
                            transport: Transport::Udp,
                        },
                        // A response goes back through its transaction.
                        None => self.link.local(),
                    };
                    let to = t.to.clone();
                    if let Err(e) = self.link.send_transmit(Instant::now(), remote, t) {
                        tracing::debug!("{}: SIP to {to}: {e}", client.uri());
                    }
                }
                Channel::Floor => {
                    if let Some(p) = peer {
                        self.counters.floor_sent.fetch_add(1, Ordering::Relaxed);
                        self.floor_out.push((i, p.floor, t.contents));
                    }
                }
            }
        }
        while let Some(e) = client.poll_event() {
            match &e {
                ClientEvent::IncomingCall { .. } => {
                    self.counters.in_call.fetch_add(1, Ordering::Relaxed);
                    self.counters.accepted.fetch_add(1, Ordering::Relaxed);
                    self.counters.answered_at(Instant::now());
                }
                ClientEvent::IncomingRejected { .. } => {
                    self.counters.refused.fetch_add(1, Ordering::Relaxed);
                }
                ClientEvent::CallEnded { .. } if self.events.is_none() => {
                    self.counters.in_call.fetch_add(-1, Ordering::Relaxed);
                }
                _ => {}
            }
            if let Some(tx) = &self.events {
                let _ = tx.send(e);
            }
        }
        while client.poll_timeline().is_some() {}
        self.deadlines[i] = client.poll_timeout();
        while let Some(t) = self.link.poll_transmit() {
            self.outbox.push((t.destination, t.bytes));
        }
    }

    async fn send(&mut self) {
        while let Some(t) = self.link.poll_transmit() {
            self.outbox.push((t.destination, t.bytes));
        }
        for (to, bytes) in self.outbox.drain(..) {
            if let Err(e) = self.sip.send_to(&bytes, to).await {
                tracing::debug!("SIP/UDP to {to}: {e}");
            }
        }
        for (i, to, bytes) in self.floor_out.drain(..) {
            if let Some(f) = self.floors.get(i) {
                let _ = f.send_to(&bytes, to).await;
            }
        }
    }
}

/// The servers' CPU (ns) and this process's, read together.
#[derive(Clone, Debug)]
struct CpuSnapshot {
    servers: Vec<u64>,
    load: u64,
}

fn snapshot(servers: &[ServerProcess]) -> CpuSnapshot {
    CpuSnapshot {
        servers: servers.iter().map(|s| cpu_ns(s.pid())).collect(),
        load: cpu_ns(std::process::id()),
    }
}

fn delta(a: &CpuSnapshot, b: &CpuSnapshot) -> CpuSnapshot {
    CpuSnapshot {
        servers: a
            .servers
            .iter()
            .zip(&b.servers)
            .map(|(x, y)| y.saturating_sub(*x))
            .collect(),
        load: b.load.saturating_sub(a.load),
    }
}

/// One measured call.
struct CallFigures {
    setup: Duration,
    /// When the first and the last member answered (from the start).
    first_answer: Duration,
    last_answer: Duration,
    setup_cpu: CpuSnapshot,
    teardown_cpu: CpuSnapshot,
}

/// Runs the benchmark and prints its report.
pub(crate) fn run(b: SetupBench) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| failed(format!("runtime: {e}")))?;
    runtime.block_on(run_async(b))
}

async fn run_async(b: SetupBench) -> Result<(), CliError> {
    let load_avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let receivers = b.groups * b.members;
    println!(
        "bench call: {} groups × {} members = {receivers} receivers, {} MC servers + the controlling server as processes, members in this process; {cores} cores, load average {}",
        b.groups,
        b.members,
        b.mc_servers(),
        load_avg
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );

    // Sockets of this process first: their addresses go into the topology.
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let bind = |what: &str| mcx_net::node::bind_udp(any, what).map_err(failed);
    let mut group_sockets = Vec::with_capacity(b.groups);
    for _ in 0..b.groups {
        let floors = (0..b.members)
            .map(|_| bind("a member's floor"))
            .collect::<Result<Vec<_>, _>>()?;
        group_sockets.push((bind("members' SIP")?, floors));
    }
    let initiator_sockets = (bind("initiator's SIP")?, vec![bind("initiator's floor")?]);
    let addrs = |s: &(UdpSocket, Vec<UdpSocket>)| -> Result<GroupAddrs, CliError> {
        Ok(GroupAddrs {
            sip: s.0.local_addr().map_err(failed)?,
            floors: s
                .1
                .iter()
                .map(|f| f.local_addr().map_err(failed))
                .collect::<Result<_, _>>()?,
        })
    };
    let group_addrs = group_sockets
        .iter()
        .map(addrs)
        .collect::<Result<Vec<_>, _>>()?;
    let initiator_addrs = addrs(&initiator_sockets)?.member(0);
    let dir = std::env::temp_dir().join(format!("mcx-bench-call-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(failed)?;

    // The servers, on ports picked now.
    let Servers {
        controlling,
        mc_servers,
        procs,
    } = start_servers(&b, &dir, &group_addrs, initiator_addrs).await?;

    // The bench KMS and GMS: the community, the initiator's keys, a GMK
    // per group.
    let started = Instant::now();
    let mut rng = mcx_net::os_rng();
    let community = Community::generate(KMS_URI, KEY_PERIOD_LEN, 0, &mut rng).map_err(failed)?;
    let kms = community.public().clone();
    let now = mcx_net::now();
    let period = mcx_ibc::uid::key_period_no(now.unix, KEY_PERIOD_LEN, 0).map_err(failed)?;
    let keys = community
        .issue(INITIATOR, period, &mut rng)
        .map_err(failed)?;
    // The members' cache starts with the initiator's verifying key, as a
    // device holds it after its first call from that initiator.
    let mut verifiers = VerifyingKeys::new();
    {
        let ssk =
            mcx_ibc::eccsi::Ssk::from_bytes(keys.ssk.to_bytes().as_slice()).map_err(failed)?;
        let signer = SigningKey::new(&kms.kpak, &keys.uid, ssk, keys.pvt).map_err(failed)?;
        let sig = signer.sign(b"warm", &mut rng);
        verifiers
            .verify(&kms.kpak, &keys.uid, b"warm", &sig.to_bytes())
            .map_err(failed)?;
    }
    let gmks: Vec<(Gmk, KeyId, Vec<u8>)> = (0..b.groups)
        .map(|_| {
            let id = KeyId::generate(Purpose::Gmk, &mut rng).map_err(failed)?;
            let mut rand = vec![0u8; 16];
            rand_core::Rng::fill_bytes(&mut rng, &mut rand);
            Ok((Gmk::generate(&mut rng), id, rand))
        })
        .collect::<Result<_, CliError>>()?;
    let info = |id: KeyId| GmkInfo {
        gmk_id: id,
        activation: 0,
        expiry: 0,
    };

    let mut peers = HashMap::new();
    peers.insert(CONTROLLING.to_owned(), controlling);
    for (s, a) in mc_servers.iter().enumerate() {
        peers.insert(mc_server_uri(s), *a);
    }
    // Who sent a floor packet, by its source (the servers' floor sockets).
    let floor_peers: Arc<HashMap<SocketAddr, String>> = Arc::new(
        peers
            .iter()
            .map(|(uri, a)| (a.floor, uri.clone()))
            .collect(),
    );
    let peers = Arc::new(peers);
    let counters = Arc::new(Counters::new());
    let endpoint = |sockets: (UdpSocket, Vec<UdpSocket>), clients: Vec<Client>| {
        let local = sockets.0.local_addr().map_err(failed)?;
        let (floor_tx, floor_in) = mpsc::unbounded_channel();
        let floors: Vec<Arc<UdpSocket>> = sockets.1.into_iter().map(Arc::new).collect();
        for (i, f) in floors.iter().enumerate() {
            tokio::spawn(read_floor(i, f.clone(), floor_tx.clone()));
        }
        let index = clients
            .iter()
            .enumerate()
            .map(|(i, c)| (c.uri().to_owned(), i))
            .collect();
        let deadlines = clients.iter().map(Client::poll_timeout).collect();
        Ok::<_, CliError>(Endpoint {
            sip: sockets.0,
            floors,
            floor_in,
            floor_peers: floor_peers.clone(),
            link: SipLink::new(
                mcx_sip::Timers::RFC3261,
                Remote {
                    addr: local,
                    transport: Transport::Udp,
                },
            ),
            clients,
            index,
            deadlines,
            peers: peers.clone(),
            rng: mcx_net::os_rng(),
            counters: counters.clone(),
            events: None,
            outbox: Vec::new(),
            floor_out: Vec::new(),
        })
    };
    let media = |a: Addrs| MediaEndpoint {
        ip: a.floor.ip(),
        rtp_port: a.floor.port(),
        floor_port: a.floor.port(),
    };
    let group_ids: Vec<String> = (0..b.groups).map(group_uri).collect();
    let mut member_tasks = Vec::new();
    let mut command_senders = Vec::new();
    for (g, sockets) in group_sockets.into_iter().enumerate() {
        let mut clients = Vec::with_capacity(b.members);
        for m in 0..b.members {
            let mut config = ClientConfig::new(
                member_uri(g, m),
                CONTROLLING,
                GMS_URI,
                vec![INITIATOR.to_owned()],
            );
            config.media = media(group_addrs[g].member(m));
            config.call_sources = vec![mc_server_uri(b.server_of(g))];
            let mut c = Client::receive_only(config, kms.clone(), verifiers.clone());
            let (gmk, id, rand) = &gmks[g];
            c.install_gmk(now, &group_ids[g], gmk.clone(), rand.clone(), info(*id));
            clients.push(c);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        command_senders.push(tx);
        member_tasks.push(tokio::spawn(endpoint(sockets, clients)?.run(rx)));
    }
    let mut config = ClientConfig::new(INITIATOR, CONTROLLING, GMS_URI, vec![INITIATOR.to_owned()]);
    config.media = media(initiator_addrs);
    config.home_server = None;
    let mut initiator = Client::new(config, kms.clone(), keys).map_err(failed)?;
    for (g, (gmk, id, rand)) in gmks.iter().enumerate() {
        initiator.install_gmk(now, &group_ids[g], gmk.clone(), rand.clone(), info(*id));
    }
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut ep = endpoint(initiator_sockets, vec![initiator])?;
    ep.events = Some(events_tx);
    let (commands, rx) = mpsc::unbounded_channel::<ClientCommand>();
    let initiator_task = tokio::spawn(ep.run(rx));
    println!(
        "provisioned: {receivers} members and the initiator from the bench KMS/GMS in {:.2} s",
        started.elapsed().as_secs_f64()
    );

    let tg = temporary_group(&b);
    let mut figures = Vec::new();
    for n in 0..=b.calls {
        let f = one_call(
            &b,
            &tg,
            &group_ids,
            &commands,
            &mut events,
            &counters,
            &procs,
        )
        .await
        .map_err(|e| failed(format!("call {n}: {e} (server logs in {})", dir.display())))?;
        if n > 0 {
            figures.push(f);
        } else {
            println!("warm-up call: set-up {:.1} ms", ms(f.setup));
        }
    }
    let hwm: Vec<Option<u64>> = procs.iter().map(|p| status_kib(p.pid(), "VmHWM")).collect();
    let load_hwm = status_kib(std::process::id(), "VmHWM");
    report(&b, &procs, &figures, &hwm, load_hwm, &counters);

    drop(commands);
    drop(command_senders);
    initiator_task.abort();
    for t in member_tasks {
        t.abort();
    }
    drop(procs);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Waits until every server holds its SIP (UDP and TCP) and floor ports
/// itself ([`holds_port`]: a port merely bound may be another process's),
/// or one has exited: [`StartFailure::PortTaken`] if its log says a port
/// was in use.
async fn wait_ready(
    procs: &mut [ServerProcess],
    addrs: &[Addrs],
    dir: &Path,
) -> Result<(), StartFailure> {
    let deadline = Instant::now() + PATIENCE;
    let mut ready = vec![false; procs.len()];
    loop {
        for (i, p) in procs.iter_mut().enumerate() {
            if let Ok(Some(status)) = p.child.try_wait() {
                let log = ServerProcess::log_path(dir, &p.name);
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let what = format!("{} exited ({status}); see {}", p.name, log.display());
                return Err(if text.contains("in use") {
                    StartFailure::PortTaken(format!("{what}: a port was taken"))
                } else {
                    StartFailure::Failed(failed(what))
                });
            }
            if !ready[i]
                && let Some(a) = addrs.get(i)
            {
                let pid = p.pid();
                ready[i] = holds_port(pid, "udp", a.sip.port())
                    && holds_port(pid, "tcp", a.sip.port())
                    && holds_port(pid, "udp", a.floor.port());
            }
        }
        if ready.iter().all(|r| *r) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(StartFailure::Failed(failed(
                "the servers did not bind their ports in time",
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One call: set-up, settle, tear-down.
async fn one_call(
    b: &SetupBench,
    tg: &str,
    groups: &[String],
    commands: &mpsc::UnboundedSender<ClientCommand>,
    events: &mut mpsc::UnboundedReceiver<ClientEvent>,
    counters: &Counters,
    procs: &[ServerProcess],
) -> Result<CallFigures, CliError> {
    let accepted_before = counters.accepted.load(Ordering::Relaxed);
    let refused_before = counters.refused.load(Ordering::Relaxed);
    counters.reset_answers();
    let cpu0 = snapshot(procs);
    let t0 = Instant::now();
    let (tg_owned, g) = (tg.to_owned(), groups.to_vec());
    commands
        .send(Box::new(move |c, time, rng| {
            let refs: Vec<&str> = g.iter().map(String::as_str).collect();
            if let Err(e) = c.start_call(time, &tg_owned, &refs, rng) {
                tracing::warn!("start_call: {e}");
            }
        }))
        .map_err(|_| failed("the initiator stopped"))?;
    let setup = loop {
        let e = tokio::time::timeout(PATIENCE, events.recv())
            .await
            .map_err(|_| failed("no answer to the call request"))?
            .ok_or_else(|| failed("the initiator stopped"))?;
        match e {
            ClientEvent::CallEstablished {
                groups: results, ..
            } => {
                let at = t0.elapsed();
                let short: Vec<String> = results
                    .iter()
                    .filter(|r| r.accepted as usize != b.members)
                    .map(|r| format!("{}: {} of {}", r.group_id, r.accepted, b.members))
                    .collect();
                if !short.is_empty() || results.len() != b.groups {
                    return Err(failed(format!(
                        "not every member accepted ({} groups answered): {}",
                        results.len(),
                        short.join("; ")
                    )));
                }
                break at;
            }
            ClientEvent::CallFailed { status, reason, .. } => {
                return Err(failed(format!("call failed: {status} {reason}")));
            }
            _ => {}
        }
    };
    // Every member answered before the initiator heard (the bench checked
    // that all were accepted).
    let (first_answer, last_answer) = counters.answers_since(t0);
    tokio::time::sleep(SETTLE).await;
    let cpu1 = snapshot(procs);
    let accepted = counters.accepted.load(Ordering::Relaxed) - accepted_before;
    let refused = counters.refused.load(Ordering::Relaxed) - refused_before;
    if accepted != (b.groups * b.members) as u64 || refused != 0 {
        return Err(failed(format!(
            "members accepted {accepted}, refused {refused}"
        )));
    }
    let tg_owned = tg.to_owned();
    commands
        .send(Box::new(move |c, time, rng| {
            if let Err(e) = c.hang_up(time, &tg_owned, rng) {
                tracing::warn!("hang_up: {e}");
            }
        }))
        .map_err(|_| failed("the initiator stopped"))?;
    let deadline = Instant::now() + PATIENCE;
    while counters.in_call.load(Ordering::Relaxed) > 0 {
        if Instant::now() > deadline {
            return Err(failed(format!(
                "{} members still in the call after the hang-up",
                counters.in_call.load(Ordering::Relaxed)
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(SETTLE).await;
    let cpu2 = snapshot(procs);
    while events.try_recv().is_ok() {}
    Ok(CallFigures {
        setup,
        first_answer,
        last_answer,
        setup_cpu: delta(&cpu0, &cpu1),
        teardown_cpu: delta(&cpu1, &cpu2),
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted
        .get((sorted.len() * p / 100).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

fn report(
    b: &SetupBench,
    procs: &[ServerProcess],
    figures: &[CallFigures],
    hwm: &[Option<u64>],
    load_hwm: Option<u64>,
    counters: &Counters,
) {
    let n = figures.len().max(1) as f64;
    let mut setups: Vec<Duration> = figures.iter().map(|f| f.setup).collect();
    setups.sort();
    let receivers = (b.groups * b.members) as f64;
    println!(
        "set-up over {} calls: p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        figures.len(),
        ms(percentile(&setups, 50)),
        ms(percentile(&setups, 95)),
        ms(setups.last().copied().unwrap_or_default())
    );
    let median = |f: &dyn Fn(&CallFigures) -> Duration| {
        let mut v: Vec<Duration> = figures.iter().map(f).collect();
        v.sort();
        ms(percentile(&v, 50))
    };
    println!(
        "answers (p50): first member {:.1} ms, last member {:.1} ms after the call request; from the last member's answer to the initiator's CallEstablished {:.1} ms",
        median(&|f| f.first_answer),
        median(&|f| f.last_answer),
        median(&|f| f.setup.saturating_sub(f.last_answer)),
    );
    let mean = |f: &dyn Fn(&CallFigures) -> u64| figures.iter().map(f).sum::<u64>() as f64 / n;
    let mib =
        |k: Option<u64>| k.map_or_else(|| "?".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0));
    println!(
        "per role (CPU per call = user + system from /proc, mean; per member = CPU ÷ the receivers it serves):"
    );
    let mut worst_server = 0.0f64;
    for (i, p) in procs.iter().enumerate() {
        let served = if i == 0 {
            receivers
        } else {
            (b.groups_of(i - 1).len() * b.members) as f64
        };
        let setup = mean(&|f| f.setup_cpu.servers[i]) / 1e6;
        let teardown = mean(&|f| f.teardown_cpu.servers[i]) / 1e6;
        let per_member = setup * 1e3 / served;
        worst_server = worst_server.max(per_member);
        println!(
            "  {:<12} set-up {setup:.2} ms CPU ({per_member:.1} µs per member of {served:.0}), tear-down {teardown:.2} ms; peak RSS {} MiB",
            p.name,
            mib(hwm[i])
        );
    }
    let load_setup = mean(&|f| f.setup_cpu.load) / 1e6;
    let load_teardown = mean(&|f| f.teardown_cpu.load) / 1e6;
    println!(
        "  {:<12} set-up {load_setup:.1} ms CPU ({:.1} µs per member: checks, ECCSI verification with the cached key, unwrap, answer), tear-down {load_teardown:.1} ms; peak RSS {} MiB",
        "members",
        load_setup * 1e3 / receivers,
        mib(load_hwm)
    );
    let all_servers: f64 = (0..procs.len())
        .map(|i| mean(&|f| f.setup_cpu.servers[i]))
        .sum::<f64>()
        / 1e6;
    println!(
        "servers together: {all_servers:.2} ms CPU per call set-up = {:.1} µs per receiver; floor packets at the members: {}, sent by them (Floor Acks): {}",
        all_servers * 1e3 / receivers,
        counters.floor_packets.load(Ordering::Relaxed),
        counters.floor_sent.load(Ordering::Relaxed)
    );
    println!(
        "goals: set-up p95 {:.1} ms (< 1000 ms: {}); worst server {worst_server:.1} µs per member (< 20 µs: {})",
        ms(percentile(&setups, 95)),
        if percentile(&setups, 95) < Duration::from_secs(1) {
            "met"
        } else {
            "NOT met"
        },
        if worst_server < 20.0 {
            "met"
        } else {
            "NOT met"
        }
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_written_topology_parses_with_a_shared_sip_address_and_a_floor_address_per_member() {
        let b = SetupBench {
            groups: 3,
            members: 2,
            calls: 1,
            groups_per_server: 2,
        };
        let a = |p: u16| Addrs {
            sip: SocketAddr::from(([127, 0, 0, 1], p)),
            floor: SocketAddr::from(([127, 0, 0, 1], p + 1)),
        };
        let g = |p: u16| GroupAddrs {
            sip: a(p).sip,
            floors: vec![a(p).floor, a(p + 1).floor],
        };
        let text = topology_text(
            &b,
            a(5000),
            &[a(5010), a(5020)],
            &[g(6000), g(6010), g(6020)],
            a(7000),
            [a(8000).sip, a(8010).sip],
        );
        let t = crate::topology::Topology::parse(&text, "bench").unwrap();
        assert_eq!(t.mc_servers.len(), 2);
        assert_eq!(t.mc_servers[1].groups, vec![group_uri(2)]);
        for g in 0..3 {
            assert!(b.groups_of(b.server_of(g)).contains(&g), "group {g}");
        }
        assert_eq!(t.users.len(), 7);
        let g1: Vec<_> = t
            .users
            .iter()
            .filter(|u| u.uri.starts_with("sip:g1-"))
            .collect();
        assert!(g1.iter().all(|u| u.sip == a(6010).sip));
        // Each member its own floor address, the initiator its own.
        let floors: std::collections::HashSet<_> = t.users.iter().map(|u| u.floor).collect();
        assert_eq!(floors.len(), 7);
        assert_eq!(t.groups[2].members.len(), 3);
    }

    #[test]
    fn a_port_is_held_only_by_the_process_that_bound_it() {
        // A UDP port whose TCP twin is free too (another process may hold
        // it: try again, as `free_port` does).
        let (udp, port, tcp) = (0..32)
            .find_map(|_| {
                let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                let port = udp.local_addr().unwrap().port();
                let tcp = std::net::TcpListener::bind(("127.0.0.1", port)).ok()?;
                Some((udp, port, tcp))
            })
            .unwrap();
        let me = std::process::id();
        assert!(holds_port(me, "udp", port));
        assert!(holds_port(me, "tcp", port));
        // Another process (which bound nothing) does not hold it.
        let mut other = Command::new("sleep").arg("10").spawn().unwrap();
        assert!(!holds_port(other.id(), "udp", port));
        assert!(!holds_port(other.id(), "tcp", port));
        let _ = other.kill();
        let _ = other.wait();
        drop((udp, tcp));
        assert!(!holds_port(me, "udp", port));
        assert!(!holds_port(me, "tcp", port));
    }

    /// A server that exits at start-up: for a port in use the bench starts
    /// again on fresh ports; for anything else it stops with the log.
    #[tokio::test]
    async fn a_server_that_could_not_bind_is_told_from_one_that_failed() {
        let dir = std::env::temp_dir().join(format!("mcx-bench-ready-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let addrs = [Addrs {
            sip: free_port().unwrap(),
            floor: free_port().unwrap(),
        }];
        let exits = |script: &str, name: &str| {
            let mut c = Command::new("sh");
            c.arg("-c").arg(script);
            vec![ServerProcess::spawn(c, &dir, name).unwrap()]
        };
        let mut taken = exits(
            "echo 'error: mcs-0: SIP 127.0.0.1:1: Address already in use (os error 98)'; exit 1",
            "taken",
        );
        let r = wait_ready(&mut taken, &addrs, &dir).await;
        assert!(
            matches!(&r, Err(StartFailure::PortTaken(w)) if w.contains("taken exited")),
            "{r:?}"
        );
        let mut broken = exits("echo 'error: topology: no such role'; exit 2", "broken");
        let r = wait_ready(&mut broken, &addrs, &dir).await;
        assert!(
            matches!(&r, Err(StartFailure::Failed(e)) if e.to_string().contains("broken exited")),
            "{r:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_wrapper_goes_before_the_program_and_its_arguments() {
        let exe = Path::new("/usr/bin/mcx");
        let c = wrapped_command(
            exe,
            Some("valgrind  --tool=callgrind --callgrind-out-file=/tmp/x"),
        );
        assert_eq!(c.get_program(), "valgrind");
        let args: Vec<_> = c.get_args().collect();
        assert_eq!(
            args,
            [
                "--tool=callgrind",
                "--callgrind-out-file=/tmp/x",
                "/usr/bin/mcx"
            ]
        );
        for none in [None, Some(""), Some("   ")] {
            let c = wrapped_command(exe, none);
            assert_eq!(c.get_program(), "/usr/bin/mcx", "{none:?}");
            assert_eq!(c.get_args().count(), 0);
        }
    }

    #[test]
    fn a_wrapped_server_is_stopped_with_sigterm_so_its_tool_can_write_its_results() {
        let dir = std::env::temp_dir().join(format!("mcx-bench-wrap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mark = dir.join("stopped");
        let mut c = Command::new("sh");
        c.arg("-c").arg(format!(
            "trap 'echo term > {}; exit 0' TERM; echo up > {}; while :; do sleep 0.05; done",
            mark.display(),
            dir.join("up").display()
        ));
        let mut p = ServerProcess::spawn(c, &dir, "wrapped").unwrap();
        p.wrapped = true;
        let up = Instant::now() + Duration::from_secs(10);
        while !dir.join("up").exists() && Instant::now() < up {
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(p);
        assert_eq!(
            std::fs::read_to_string(&mark).unwrap_or_default().trim(),
            "term"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
