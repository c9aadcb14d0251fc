//! TLS on the node's and the HTTP client's connections (rustls through
//! [`mcx_tls`]): who a connection's peer is, and the client side of a
//! handshake that checks it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};

use mcx_tls::PeerIdentity;
use mcx_tls::rustls::pki_types::ServerName;
use mcx_tls::tokio_rustls::TlsConnector;
use mcx_tls::tokio_rustls::client::TlsStream;
use tokio::net::TcpStream;

use crate::NetError;

/// A TLS server the client connects to by address: the server's
/// certificate must chain to the client configuration's CA, name the
/// address (an IP SAN), and name `identity` (a URI or DNS SAN).
#[derive(Clone, Debug)]
pub struct TlsTarget {
    /// Roots, key log and, for a server connecting to a server, the client
    /// certificate (mutual TLS).
    pub config: Arc<mcx_tls::rustls::ClientConfig>,
    /// The identity the server's certificate must name, if any (e.g.
    /// `sip:mcs-a@mcx.example`, `kms.mcx.example`).
    pub identity: Option<String>,
}

/// Handshakes as a client over `stream` to `addr`, then checks that the
/// certificate names `target.identity`.
///
/// # Errors
/// [`NetError::Tls`] naming the peer and what failed: the handshake
/// (certificate of another CA, for another address) or the identity.
pub(crate) async fn connect(
    target: &TlsTarget,
    addr: SocketAddr,
    stream: TcpStream,
) -> Result<(TlsStream<TcpStream>, PeerIdentity), NetError> {
    let name = ServerName::IpAddress(addr.ip().to_canonical().into());
    let tls = TlsConnector::from(target.config.clone())
        .connect(name, stream)
        .await
        .map_err(|e| NetError::Tls(format!("handshake with {addr}: {e}")))?;
    let peer = PeerIdentity::of(tls.get_ref().1).unwrap_or_default();
    if let Some(want) = target.identity.as_ref().filter(|w| !peer.names(w)) {
        return Err(NetError::Tls(format!(
            "the certificate of {addr} does not name {want} (it names {:?})",
            peer.uris.iter().chain(&peer.dns).collect::<Vec<_>>()
        )));
    }
    Ok((tls, peer))
}

/// Most client configurations [`per_socket`] keeps.
const PER_SOCKET_CONFIGS: usize = 256;

/// Derived configurations: for a base configuration (held weakly: a freed
/// one's entry is never matched, whatever is later allocated at its
/// address) and a server socket, the base's settings with a session store
/// of their own.
type Derived = (
    Weak<mcx_tls::rustls::ClientConfig>,
    SocketAddr,
    Arc<mcx_tls::rustls::ClientConfig>,
);

static PER_SOCKET: Mutex<Vec<Derived>> = Mutex::new(Vec::new());

/// `config` with a TLS session store for `addr` alone (the same one each
/// time while `config` lives).
///
/// rustls keeps session tickets by server name, and servers are named by
/// their IP address (their certificates' IP SAN): a KMS and a GMS on one
/// host would share an entry, and a ticket of one, offered to the other,
/// would not resume (the other cannot decrypt it) but cost a full
/// handshake. A store per socket keeps each server's tickets for it. The
/// verification settings (roots, client certificate, key log) are
/// `config`'s own.
pub(crate) fn per_socket(
    config: &Arc<mcx_tls::rustls::ClientConfig>,
    addr: SocketAddr,
) -> Arc<mcx_tls::rustls::ClientConfig> {
    let Ok(mut known) = PER_SOCKET.lock() else {
        return config.clone();
    };
    let found = known.iter().find(|(base, at, _)| {
        *at == addr && base.upgrade().is_some_and(|b| Arc::ptr_eq(&b, config))
    });
    if let Some((_, _, derived)) = found {
        return derived.clone();
    }
    known.retain(|(base, _, _)| base.strong_count() > 0);
    if known.len() >= PER_SOCKET_CONFIGS {
        known.remove(0);
    }
    let mut derived = (**config).clone();
    // A few tickets of one server (rustls keeps up to 8 per name).
    derived.resumption = mcx_tls::rustls::client::Resumption::in_memory_sessions(4);
    let derived = Arc::new(derived);
    known.push((Arc::downgrade(config), addr, derived.clone()));
    derived
}

/// A node's TLS: what it presents to peers that connect to it, and how it
/// connects to peers whose transport is TLS.
#[derive(Clone, Debug)]
pub struct NodeTls {
    /// The server side: the node's certificate; whether connecting peers
    /// are asked for theirs ([`mcx_tls::ClientAuth`]: servers present
    /// one, users do not).
    pub server: Arc<mcx_tls::rustls::ServerConfig>,
    /// The client side: the CA that peers' certificates must chain to, and
    /// for a server its own certificate (mutual TLS between servers).
    pub client: Arc<mcx_tls::rustls::ClientConfig>,
}
