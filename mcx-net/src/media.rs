//! The servers' voice socket and its key-blind relay (its own task, apart
//! from signalling: a burst of voice never waits behind SIP work, nor SIP
//! behind voice).
//!
//! The role decides the routes from the SDP it negotiated and emits
//! [`RelayCommand`]s; the node driver passes them here; this task reads
//! each datagram, asks [`mcx_relay::Relay`] where it goes and sends the
//! same octets to every target. It holds no key and could not decrypt if
//! it wanted to: SRTP is end to end under the TGMK.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use mcx_core::RelayCommand;
use mcx_relay::{Relay, RelayStats};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The largest datagram read (an SRTP packet of 20 ms PCMU is ~200 octets;
/// this leaves room for any codec and for garbage, which is dropped).
const MEDIA_DATAGRAM_MAX: usize = 2048;

/// A running relay: its command queue, counters and task.
#[derive(Debug)]
pub(crate) struct RelayTask {
    pub(crate) commands: mpsc::UnboundedSender<RelayCommand>,
    pub(crate) stats: Arc<Mutex<RelayStats>>,
    task: JoinHandle<()>,
}

impl Drop for RelayTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts relaying on `socket`.
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

async fn relay_loop(
    socket: UdpSocket,
    mut commands: mpsc::UnboundedReceiver<RelayCommand>,
    stats: Arc<Mutex<RelayStats>>,
) {
    let mut relay = Relay::default();
    let mut buf = vec![0u8; MEDIA_DATAGRAM_MAX];
    let mut targets: Vec<SocketAddr> = Vec::new();
    loop {
        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(RelayCommand::Set(route)) => {
                    if let Err(e) = relay.set(route) {
                        tracing::warn!("relay: {e}");
                    }
                }
                Some(RelayCommand::Remove { source, ssrc }) => {
                    relay.remove(source, ssrc);
                }
                None => break,
            },
            r = socket.recv_from(&mut buf) => {
                let (len, from) = match r {
                    Ok(x) => x,
                    // ICMP port unreachable from a departed receiver shows
                    // up here on some systems: not the relay's end.
                    Err(e) => {
                        tracing::debug!("relay socket: {e}");
                        continue;
                    }
                };
                let packet = &buf[..len];
                targets.clear();
                if let Ok(t) = relay.forward(from, packet) {
                    targets.extend_from_slice(t);
                }
                for to in &targets {
                    if let Err(e) = socket.send_to(packet, to).await {
                        tracing::debug!("relay to {to}: {e}");
                    }
                }
                if let Ok(mut s) = stats.lock() {
                    *s = relay.stats();
                }
            }
        }
    }
}
