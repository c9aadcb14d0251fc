//! TLS on the node's and the HTTP client's connections (rustls through
//! [`mcx_tls`]): who a connection's peer is, and the client side of a
//! handshake that checks it.

use std::net::SocketAddr;
use std::sync::Arc;

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
