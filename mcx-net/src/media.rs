//! The servers' voice socket and its key-blind relay (its own task, apart
//! from signalling: a burst of voice never waits behind SIP work, nor SIP
//! behind voice).
//!
//! The role decides the routes from the SDP it negotiated and emits
//! [`RelayCommand`]s; the node driver passes them here; this task reads
//! each datagram, asks [`mcx_relay::Relay`] where it goes and sends the
//! same octets to every target. It holds no key and could not decrypt if
//! it wanted to: SRTP is end to end under the TGMK.
//!
//! The loop is built for cost per output packet (docs/BENCHMARKS.md, "Media
//! relay vs rtpengine"): once the socket is readable it drains up to
//! [`RELAY_BATCH`] datagrams with non-blocking reads, sends each copy with
//! a non-blocking `sendto` (waiting for room only when the send buffer is
//! full), and publishes its counters once per batch, not per packet.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use mcx_core::RelayCommand;
use mcx_relay::{Relay, RelayStats};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::NetError;

/// The largest datagram read (an SRTP packet of 20 ms PCMU is ~200 octets;
/// this leaves room for any codec and for garbage, which is dropped).
const MEDIA_DATAGRAM_MAX: usize = 2048;

/// Most datagrams relayed between two looks at the command queue (and two
/// updates of [`RelayTask::stats`]).
pub(crate) const RELAY_BATCH: usize = 64;

/// A running relay: its command queue, counters and task. Dropping it
/// stops the task.
#[derive(Debug)]
pub struct RelayTask {
    pub(crate) commands: mpsc::UnboundedSender<RelayCommand>,
    pub(crate) stats: Arc<Mutex<RelayStats>>,
    task: JoinHandle<()>,
}

impl Drop for RelayTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RelayTask {
    /// Binds a voice socket at `addr` as a node does (large buffers) and
    /// relays on it; with the address it is bound to. Within a tokio
    /// runtime.
    ///
    /// # Errors
    /// The socket cannot be bound.
    pub fn bind(addr: SocketAddr) -> Result<(Self, SocketAddr), NetError> {
        let socket = crate::node::bind_udp(addr, "voice socket")?;
        let local = socket
            .local_addr()
            .map_err(|e| NetError::io("voice socket address", e))?;
        Ok((spawn_relay(socket), local))
    }

    /// Passes a route change to the task; `false` if it has ended.
    pub fn command(&self, command: RelayCommand) -> bool {
        self.commands.send(command).is_ok()
    }

    /// The relay's counters as of its last batch (they are current
    /// whenever the socket has nothing left to read).
    pub fn stats(&self) -> RelayStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }
}

/// Starts relaying on `socket` (within a tokio runtime).
pub(crate) fn spawn_relay(socket: UdpSocket) -> RelayTask {
    let (commands, rx) = mpsc::unbounded_channel();
    let stats = Arc::new(Mutex::new(RelayStats::default()));
    let task = tokio::spawn(relay_loop(socket, rx, stats.clone()));
    RelayTask {
        commands,
        stats,
        task,
    }
}

/// What woke the relay.
enum Wake {
    Command(Option<RelayCommand>),
    Readable(io::Result<()>),
}

async fn relay_loop(
    socket: UdpSocket,
    mut commands: mpsc::UnboundedReceiver<RelayCommand>,
    stats: Arc<Mutex<RelayStats>>,
) {
    let mut relay = Relay::default();
    let mut buf = vec![0u8; MEDIA_DATAGRAM_MAX];
    loop {
        // Route changes first: a route set before its first packet arrives
        // is in place when that packet is read.
        let wake = tokio::select! {
            biased;
            cmd = commands.recv() => Wake::Command(cmd),
            r = socket.readable() => Wake::Readable(r),
        };
        match wake {
            Wake::Command(Some(RelayCommand::Set(route))) => {
                if let Err(e) = relay.set(route) {
                    tracing::warn!("relay: {e}");
                }
            }
            Wake::Command(Some(RelayCommand::Remove { source, ssrc })) => {
                relay.remove(source, ssrc);
            }
            Wake::Command(None) => break,
            Wake::Readable(Err(e)) => {
                tracing::debug!("relay socket: {e}");
            }
            Wake::Readable(Ok(())) => {
                relay_batch(&socket, &mut relay, &mut buf).await;
                if let Ok(mut s) = stats.lock() {
                    *s = relay.stats();
                }
            }
        }
    }
}

/// Relays up to [`RELAY_BATCH`] datagrams that are ready on `socket`.
async fn relay_batch(socket: &UdpSocket, relay: &mut Relay, buf: &mut [u8]) {
    for _ in 0..RELAY_BATCH {
        let (len, from) = match socket.try_recv_from(buf) {
            Ok(x) => x,
            // Drained: the readiness is cleared and the loop waits again.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            // ICMP port unreachable from a departed receiver shows up here
            // on some systems: not the relay's end.
            Err(e) => {
                tracing::debug!("relay socket: {e}");
                continue;
            }
        };
        let packet = &buf[..len];
        let Ok(targets) = relay.forward(from, packet) else {
            continue;
        };
        for &to in targets {
            send_copy(socket, packet, to).await;
        }
    }
}

/// Sends one copy: at once if the send buffer has room, else once it has.
async fn send_copy(socket: &UdpSocket, packet: &[u8], to: SocketAddr) {
    let r = match socket.try_send_to(packet, to) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => socket.send_to(packet, to).await,
        r => r,
    };
    if let Err(e) = r {
        tracing::debug!("relay to {to}: {e}");
    }
}
