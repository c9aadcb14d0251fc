//! The node driver: one role, its sockets and its timers.
//!
//! SIP listens on UDP and TCP on the same port (RFC 3261 18: a UAS
//! accepts both); what a peer is sent on is the transport the
//! [`Directory`] gives for it. Every SIP message goes through a
//! [`SipLink`] (transactions, retransmissions, 2xx/ACK handling) before
//! the role sees it or after the role produced it. Floor control is one
//! RTCP APP packet per UDP datagram.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use mcx_core::{Channel, SipLink, TimelineEntry};
use mcx_sip::{Limits, Remote, StreamDecoder, Timers, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{Directory, NetError, OsRng, Peer, Role, now, os_rng};

/// Largest UDP datagram read (SIP over UDP is bounded by `Limits::UDP`).
const DATAGRAM_MAX: usize = 65_535;

/// Receive buffer asked for on every UDP socket. An MC server's members
/// answer at once (hundreds of 200 OKs, floor Acks at the controlling
/// server); the Linux default (about 200 KiB, some 90 small datagrams)
/// overflows and costs a T1 retransmission. The kernel caps the value at
/// `net.core.rmem_max`.
const UDP_RECV_BUFFER: usize = 4 * 1024 * 1024;

/// Datagrams read from a socket before any is processed: reading is
/// cheap, processing is not, so draining first keeps the kernel buffer
/// from overflowing during a burst.
const READ_BATCH: usize = 512;

/// A UDP socket with a large receive buffer.
fn bind_udp(addr: SocketAddr, what: &str) -> Result<UdpSocket, NetError> {
    let io = |e| NetError::io(format!("binding {what} {addr}"), e);
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .map_err(io)?;
    if let Err(e) = socket.set_recv_buffer_size(UDP_RECV_BUFFER) {
        tracing::debug!("{what} {addr}: receive buffer: {e}");
    }
    // Fan-out bursts (an MC server's INVITEs to its members) stay in the
    // send buffer until the receivers read them.
    if let Err(e) = socket.set_send_buffer_size(UDP_RECV_BUFFER) {
        tracing::debug!("{what} {addr}: send buffer: {e}");
    }
    socket.set_nonblocking(true).map_err(io)?;
    socket.bind(&addr.into()).map_err(io)?;
    UdpSocket::from_std(socket.into()).map_err(io)
}

/// Sends a datagram; time spent waiting for room in the send buffer (the
/// receiver is slow) is added to `waited`, so that busy time counts work.
async fn send_udp(
    socket: &UdpSocket,
    bytes: &[u8],
    to: SocketAddr,
    waited: &mut std::time::Duration,
) -> std::io::Result<usize> {
    match socket.try_send_to(bytes, to) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            let start = Instant::now();
            let r = socket.send_to(bytes, to).await;
            *waited += start.elapsed();
            r
        }
        r => r,
    }
}

/// Reads every datagram waiting on `socket` (up to [`READ_BATCH`]).
fn drain(socket: &UdpSocket, buf: &mut [u8], batch: &mut Vec<(SocketAddr, Vec<u8>)>) {
    while batch.len() < READ_BATCH {
        match socket.try_recv_from(buf) {
            Ok((n, from)) => batch.push((from, buf[..n].to_vec())),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => {
                // E.g. ICMP port unreachable reported on the next read.
                tracing::debug!("UDP receive: {e}");
                break;
            }
        }
    }
}

/// A node's sockets, bound before the topology's directory is complete
/// (so ephemeral ports can be written into it).
#[derive(Debug)]
pub struct BoundNode {
    udp: UdpSocket,
    tcp: TcpListener,
    floor: Option<UdpSocket>,
    transport: Transport,
}

impl BoundNode {
    /// Binds SIP (UDP and TCP on one port) and, if asked, the floor socket.
    /// Port 0 picks a free port (the same one for UDP and TCP).
    ///
    /// # Errors
    /// The sockets cannot be bound.
    pub async fn bind(
        sip: SocketAddr,
        transport: Transport,
        floor: Option<SocketAddr>,
    ) -> Result<Self, NetError> {
        let (udp, tcp) = bind_pair(sip).await?;
        let floor = match floor {
            Some(addr) => Some(bind_udp(addr, "floor socket")?),
            None => None,
        };
        Ok(Self {
            udp,
            tcp,
            floor,
            transport,
        })
    }

    /// Where peers reach this node.
    ///
    /// # Errors
    /// The OS cannot tell the local address.
    pub fn peer(&self) -> Result<Peer, NetError> {
        let sip = self
            .udp
            .local_addr()
            .map_err(|e| NetError::io("local SIP address", e))?;
        let floor = match &self.floor {
            Some(f) => Some(
                f.local_addr()
                    .map_err(|e| NetError::io("local floor address", e))?,
            ),
            None => None,
        };
        Ok(Peer {
            sip,
            transport: self.transport,
            floor,
        })
    }

    /// Starts driving `role` with these sockets. Timeline entries go to
    /// `timeline` if given; events to the returned handle.
    ///
    /// # Errors
    /// The local address cannot be read.
    pub fn run<R: Role>(
        self,
        role: R,
        directory: Arc<Directory>,
        timers: Timers,
        timeline: Option<mpsc::UnboundedSender<TimelineEntry>>,
    ) -> Result<NodeHandle<R>, NetError> {
        let me = self.peer()?;
        let (commands_tx, commands) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let (tcp_tx, tcp_rx) = mpsc::unbounded_channel();
        let busy = Arc::new(AtomicU64::new(0));
        let driver = Driver {
            link: SipLink::new(
                timers,
                Remote {
                    addr: me.sip,
                    transport: me.transport,
                },
            ),
            role,
            directory,
            udp: self.udp,
            floor: self.floor,
            conns: HashMap::new(),
            tcp_tx,
            events: events_tx,
            timeline,
            rng: os_rng(),
            busy: busy.clone(),
        };
        let listener = self.tcp;
        let accept_tx = driver.tcp_tx.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                if accept_tx.send(TcpInput::Accepted(peer, stream)).is_err() {
                    break;
                }
            }
        });
        let task = tokio::spawn(driver.run(commands, tcp_rx, accept));
        Ok(NodeHandle {
            commands: commands_tx,
            events,
            peer: me,
            task,
            busy,
        })
    }
}

/// Binds UDP and TCP on the same port, retrying when an ephemeral UDP
/// port is already taken for TCP.
async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), NetError> {
    let mut last = None;
    for _ in 0..16 {
        let udp = bind_udp(addr, "SIP/UDP")?;
        let local = udp
            .local_addr()
            .map_err(|e| NetError::io("local SIP address", e))?;
        match TcpListener::bind(local).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() == 0 => last = Some(e),
            Err(e) => return Err(NetError::io(format!("binding SIP/TCP {local}"), e)),
        }
    }
    Err(NetError::io(
        format!("binding SIP/TCP beside UDP on {addr}"),
        last.unwrap_or_else(|| std::io::Error::other("no port")),
    ))
}

/// A command run on the role inside its driver task.
pub type Command<R> = Box<dyn FnOnce(&mut R, mcx_core::Time, &mut OsRng) + Send>;

/// The application's side of a running node.
#[derive(Debug)]
pub struct NodeHandle<R: Role> {
    commands: mpsc::UnboundedSender<Command<R>>,
    /// The role's events.
    pub events: mpsc::UnboundedReceiver<R::Event>,
    peer: Peer,
    task: JoinHandle<()>,
    busy: Arc<AtomicU64>,
}

impl<R: Role> NodeHandle<R> {
    /// Runs `f` on the role (e.g. `Client::start_call`) in the driver task,
    /// then sends whatever it produced.
    ///
    /// # Errors
    /// The node stopped.
    pub fn command(
        &self,
        f: impl FnOnce(&mut R, mcx_core::Time, &mut OsRng) + Send + 'static,
    ) -> Result<(), NetError> {
        self.commands
            .send(Box::new(f))
            .map_err(|_| NetError::Stopped)
    }

    /// Runs `f` on the role and returns its result.
    ///
    /// # Errors
    /// The node stopped.
    pub async fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut R, mcx_core::Time, &mut OsRng) -> T + Send + 'static,
    ) -> Result<T, NetError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.command(move |role, time, rng| {
            let _ = tx.send(f(role, time, rng));
        })?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// Takes the event stream (e.g. to log it in a task of its own); the
    /// handle's `events` is closed afterwards.
    pub fn take_events(&mut self) -> mpsc::UnboundedReceiver<R::Event> {
        let (_, closed) = mpsc::unbounded_channel();
        std::mem::replace(&mut self.events, closed)
    }

    /// Time the node has spent working (handling input, running the role
    /// and the transaction layer, sending) since it started, as opposed to
    /// waiting: its processing share of whatever happened meanwhile.
    pub fn busy(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.busy.load(Ordering::Relaxed))
    }

    /// Where peers reach this node.
    pub fn peer(&self) -> Peer {
        self.peer
    }

    /// Stops the node (its sockets close).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl<R: Role> Drop for NodeHandle<R> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What woke the driver.
enum Input<R: Role> {
    Sip(bool),
    Floor(bool),
    Tcp(TcpInput),
    Command(Command<R>),
    Timer,
}

enum TcpInput {
    Accepted(SocketAddr, TcpStream),
    Message(SocketAddr, mcx_sip::Message),
    Closed(SocketAddr),
    /// Connecting failed: the transactions toward it fail now (RFC 3261 17.1.4).
    Unreachable(SocketAddr),
}

struct Driver<R: Role> {
    link: SipLink,
    role: R,
    directory: Arc<Directory>,
    udp: UdpSocket,
    floor: Option<UdpSocket>,
    /// Open TCP connections by peer address: the writer side.
    conns: HashMap<SocketAddr, mpsc::UnboundedSender<Vec<u8>>>,
    tcp_tx: mpsc::UnboundedSender<TcpInput>,
    events: mpsc::UnboundedSender<R::Event>,
    timeline: Option<mpsc::UnboundedSender<TimelineEntry>>,
    rng: OsRng,
    /// Nanoseconds spent handling input and sending (not waiting).
    busy: Arc<AtomicU64>,
}

impl<R: Role> Driver<R> {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command<R>>,
        mut tcp_rx: mpsc::UnboundedReceiver<TcpInput>,
        accept: JoinHandle<()>,
    ) {
        let mut buf = vec![0u8; DATAGRAM_MAX];
        let mut batch = Vec::with_capacity(READ_BATCH);
        self.flush().await;
        loop {
            let deadline = match (self.role.poll_timeout(), self.link.poll_timeout()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let sleep = async move {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let floor_readable = async {
                match &self.floor {
                    Some(f) => f.readable().await,
                    None => std::future::pending().await,
                }
            };
            let input = tokio::select! {
                r = self.udp.readable() => Input::Sip(r.is_ok()),
                r = floor_readable => Input::Floor(r.is_ok()),
                Some(input) = tcp_rx.recv() => Input::Tcp(input),
                cmd = commands.recv() => match cmd {
                    Some(f) => Input::Command(f),
                    None => break,
                },
                () = sleep => Input::Timer,
            };
            let started = Instant::now();
            match input {
                Input::Sip(true) => {
                    drain(&self.udp, &mut buf, &mut batch);
                    for (from, bytes) in batch.drain(..) {
                        let remote = Remote {
                            addr: from,
                            transport: Transport::Udp,
                        };
                        self.link.receive(Instant::now(), remote, &bytes);
                        self.deliver();
                    }
                }
                Input::Floor(true) => {
                    if let Some(f) = &self.floor {
                        drain(f, &mut buf, &mut batch);
                    }
                    for (from, bytes) in batch.drain(..) {
                        self.on_floor(from, &bytes);
                    }
                }
                Input::Sip(false) | Input::Floor(false) => {}
                Input::Tcp(input) => self.on_tcp(input),
                Input::Command(f) => {
                    let time = now();
                    f(&mut self.role, time, &mut self.rng);
                }
                Input::Timer => {
                    let time = now();
                    self.link.handle_timeout(time.instant);
                    self.deliver();
                    if let Err(e) = self.role.handle_timeout(time, &mut self.rng) {
                        tracing::warn!("timer: {e}");
                    }
                }
            }
            let waited = self.flush().await;
            let spent = started.elapsed().saturating_sub(waited);
            let spent = u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX);
            self.busy.fetch_add(spent, Ordering::Relaxed);
        }
        accept.abort();
    }

    /// Hands every SIP message the link has for the role to the role.
    fn deliver(&mut self) {
        while let Some(d) = self.link.poll_deliver() {
            let time = now();
            if let Err(e) = self
                .role
                .handle_sip(time, &d.from, d.message, &mut self.rng)
            {
                tracing::info!("SIP from {}: {e}", d.from);
            }
        }
    }

    fn on_floor(&mut self, from: SocketAddr, bytes: &[u8]) {
        let Some(uri) = self.directory.floor_owner(from).map(str::to_owned) else {
            tracing::info!("floor packet from unknown socket {from} dropped");
            return;
        };
        if let Err(e) = self
            .role
            .handle(now(), &uri, Channel::Floor, bytes, &mut self.rng)
        {
            tracing::info!("floor packet from {uri}: {e}");
        }
    }

    fn on_tcp(&mut self, input: TcpInput) {
        match input {
            TcpInput::Accepted(peer, stream) => {
                let writer = spawn_connection(peer, Some(stream), self.tcp_tx.clone());
                self.conns.insert(peer, writer);
            }
            TcpInput::Message(peer, msg) => {
                let remote = Remote {
                    addr: peer,
                    transport: Transport::Tcp,
                };
                self.link.receive_message(Instant::now(), remote, msg);
                self.deliver();
            }
            TcpInput::Closed(peer) => {
                self.conns.remove(&peer);
            }
            TcpInput::Unreachable(peer) => {
                self.conns.remove(&peer);
                let remote = Remote {
                    addr: peer,
                    transport: Transport::Tcp,
                };
                self.link.handle_transport_error(Instant::now(), remote);
                self.deliver();
            }
        }
    }

    /// Sends what the role and the link produced; forwards events and
    /// timeline entries. Loops because delivering can produce more.
    async fn flush(&mut self) -> std::time::Duration {
        let mut waited = std::time::Duration::ZERO;
        loop {
            let mut progressed = false;
            while let Some(t) = self.role.poll_transmit() {
                progressed = true;
                let peer = self.directory.peer(&t.to).copied();
                match t.channel {
                    Channel::Sip => {
                        // Responses go back through their server transaction to
                        // wherever the request came from; the remote is unused.
                        let remote = match peer {
                            Some(p) => Remote {
                                addr: p.sip,
                                transport: p.transport,
                            },
                            None if t.contents.starts_with(b"SIP/2.0 ") => self.link.local(),
                            None => {
                                tracing::warn!("no address for {} in the directory; dropped", t.to);
                                continue;
                            }
                        };
                        if let Err(e) = self.link.send(Instant::now(), remote, &t.contents) {
                            tracing::warn!("SIP to {}: {e}", t.to);
                        }
                    }
                    Channel::Floor => match (&self.floor, peer.and_then(|p| p.floor)) {
                        (Some(sock), Some(addr)) => {
                            if let Err(e) = send_udp(sock, &t.contents, addr, &mut waited).await {
                                tracing::info!("floor to {}: {e}", t.to);
                            }
                        }
                        _ => tracing::warn!("no floor socket toward {}; dropped", t.to),
                    },
                }
            }
            while let Some(t) = self.link.poll_transmit() {
                progressed = true;
                match t.transport {
                    Transport::Udp => {
                        if let Err(e) =
                            send_udp(&self.udp, &t.bytes, t.destination, &mut waited).await
                        {
                            tracing::info!("SIP/UDP to {}: {e}", t.destination);
                        }
                    }
                    Transport::Tcp => self.send_tcp(t.destination, t.bytes),
                }
            }
            self.deliver();
            while let Some(e) = self.role.poll_event() {
                progressed = true;
                let _ = self.events.send(e);
            }
            while let Some(e) = self.role.poll_timeline() {
                progressed = true;
                if let Some(tl) = &self.timeline {
                    let _ = tl.send(e);
                }
            }
            if !progressed {
                break;
            }
        }
        waited
    }

    fn send_tcp(&mut self, to: SocketAddr, bytes: Vec<u8>) {
        if let Some(w) = self.conns.get(&to)
            && w.send(bytes.clone()).is_ok()
        {
            return;
        }
        let writer = spawn_connection(to, None, self.tcp_tx.clone());
        let _ = writer.send(bytes);
        self.conns.insert(to, writer);
    }
}

/// Runs one TCP connection: connects if `stream` is `None`, frames
/// incoming messages with [`StreamDecoder`], writes what the driver sends.
fn spawn_connection(
    peer: SocketAddr,
    stream: Option<TcpStream>,
    inbound: mpsc::UnboundedSender<TcpInput>,
) -> mpsc::UnboundedSender<Vec<u8>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        let stream = match stream {
            Some(s) => s,
            None => match TcpStream::connect(peer).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::info!("SIP/TCP connect {peer}: {e}");
                    let _ = inbound.send(TcpInput::Unreachable(peer));
                    return;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (mut reader, mut writer) = stream.into_split();
        let write = tokio::spawn(async move {
            while let Some(bytes) = rx.recv().await {
                if writer.write_all(&bytes).await.is_err() {
                    break;
                }
            }
        });
        let mut decoder = StreamDecoder::new(Limits::TCP);
        let mut buf = vec![0u8; 16 * 1024];
        'read: loop {
            let n = match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            decoder.push(&buf[..n]);
            loop {
                match decoder.next_message() {
                    Ok(Some(msg)) => {
                        if inbound.send(TcpInput::Message(peer, msg)).is_err() {
                            break 'read;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        // A stream that cannot be framed cannot be resynchronised.
                        tracing::info!("SIP/TCP from {peer}: {e}; closing");
                        break 'read;
                    }
                }
            }
        }
        write.abort();
        let _ = inbound.send(TcpInput::Closed(peer));
    });
    tx
}
