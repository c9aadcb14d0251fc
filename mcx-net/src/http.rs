//! A minimal HTTP/1.1 client over hyper, for provisioning from the KMS
//! and the GMS: bodies read whole with a size limit; HTTPS when the
//! [`Endpoint`] says so (the server's certificate verified against the
//! topology's CA), plain HTTP for labs.
//!
//! [`HttpClient`] keeps a connection open for the next request to the same
//! server (HTTP/1.1 persistent connections, RFC 9112 9.3) in a small pool:
//! a client's start-up (KmsInit, KmsKeyProv, group index, group documents)
//! costs one TCP connection and one TLS handshake per server instead of
//! one per request. Where a new connection is still needed, the TLS
//! session is resumed (RFC 8446 2.2) from a ticket of an earlier one: the
//! tickets are kept per client configuration and server socket, so every
//! connection made with one [`mcx_tls::rustls::ClientConfig`] to one
//! server shares them. [`fetch`] is
//! one request on a connection of its own, closed after the answer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use mcx_kms::http::{HttpRequest, HttpResponse};
use tokio::net::TcpStream;

use crate::NetError;
use crate::tls::TlsTarget;

/// Where a KMS or GMS is, and whether it is reached over TLS.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// Its HTTP(S) socket.
    pub addr: SocketAddr,
    /// HTTPS: how its certificate is checked. `None`: plain HTTP.
    pub tls: Option<TlsTarget>,
}

impl Endpoint {
    /// HTTPS to `addr`, checked as `tls` says.
    pub fn https(addr: SocketAddr, tls: TlsTarget) -> Self {
        Self {
            addr,
            tls: Some(tls),
        }
    }

    /// Whether a connection made for `other` may carry requests for this
    /// endpoint: the same socket, and the same TLS checks (the same client
    /// configuration, so the same CA and client certificate, and the same
    /// required identity). A connection whose server was checked against
    /// weaker demands is never lent to stronger ones.
    fn same_connection_as(&self, other: &Self) -> bool {
        self.addr == other.addr
            && match (&self.tls, &other.tls) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(&a.config, &b.config) && a.identity == b.identity,
                _ => false,
            }
    }
}

impl From<SocketAddr> for Endpoint {
    /// Plain HTTP (labs; anyone on the path reads tokens and keys).
    fn from(addr: SocketAddr) -> Self {
        Self { addr, tls: None }
    }
}

/// Largest response body accepted (group documents for big groups are the
/// largest thing served).
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// How long one exchange may take: connecting, the TLS handshake, sending
/// and reading the answer, and the one retry on a fresh connection.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// How long an [`HttpClient`] keeps an unused connection by default.
/// Well under the servers' own idle timeout (15 s, `mcx_server::HttpLimits`),
/// so that the client, not the server, ends an idle connection and a
/// request is rarely sent on one the server is closing (RFC 9112 9.3.1);
/// long enough for the requests of one start-up, which follow each other.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(2);

/// How many unused connections an [`HttpClient`] keeps by default: one per
/// instance of a service it fails over between, with room to spare.
pub const POOL_MAX_IDLE: usize = 4;

/// What an [`HttpClient`] keeps of idle connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolLimits {
    /// Most unused connections kept; the oldest is closed beyond it. 0:
    /// none (every connection is closed after its answer).
    pub max_idle: usize,
    /// An unused connection is closed after this long.
    pub idle_timeout: Duration,
}

impl Default for PoolLimits {
    fn default() -> Self {
        Self {
            max_idle: POOL_MAX_IDLE,
            idle_timeout: POOL_IDLE_TIMEOUT,
        }
    }
}

/// What an [`HttpClient`] did so far (for tests and benchmarks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections opened (each one TCP connection, and over HTTPS one
    /// TLS handshake).
    pub connections: u64,
    /// Of those over HTTPS, the ones whose TLS session was resumed (no
    /// certificate sent or checked again: the session's own is kept).
    pub resumed: u64,
    /// Requests sent on a connection kept from an earlier request.
    pub reused: u64,
    /// Requests sent again on a fresh connection after a kept one failed.
    pub retried: u64,
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    resumed: AtomicU64,
    reused: AtomicU64,
    retried: AtomicU64,
}

/// A connection with no request on it.
struct Idle {
    to: Endpoint,
    sender: SendRequest<Full<Bytes>>,
    since: Instant,
}

#[derive(Default)]
struct IdleSet {
    /// Oldest first.
    conns: Vec<Idle>,
    /// A task is waiting to close expired connections.
    reaper: bool,
}

struct Pool {
    limits: PoolLimits,
    idle: Mutex<IdleSet>,
    counters: Counters,
}

/// An HTTP(S) client that keeps connections open between requests to the
/// same server (see the module documentation). Clones share the pool.
///
/// Bounds: at most [`PoolLimits::max_idle`] unused connections, each closed
/// after [`PoolLimits::idle_timeout`]; every request within [`TIMEOUT`].
/// Dropping the last clone closes the unused connections at once, as does
/// [`HttpClient::close_idle`] (a client calls it when its provisioning is
/// done, so that the servers do not hold its sockets until the timeout).
#[derive(Clone)]
pub struct HttpClient {
    pool: Arc<Pool>,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new(PoolLimits::default())
    }
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("limits", &self.pool.limits)
            .field("idle", &self.idle_connections())
            .finish()
    }
}

/// Why an exchange on a connection failed, and whether the request may
/// have reached the server.
struct Failure {
    error: NetError,
    /// hyper had not written any of the request when the connection failed.
    unsent: bool,
}

impl HttpClient {
    /// A client keeping idle connections within `limits`.
    pub fn new(limits: PoolLimits) -> Self {
        Self {
            pool: Arc::new(Pool {
                limits,
                idle: Mutex::default(),
                counters: Counters::default(),
            }),
        }
    }

    /// Sends `request` to `to` and reads the whole response, on a kept
    /// connection to it if there is one, else on a new one (kept for the
    /// next request unless the server asked to close it).
    ///
    /// A kept connection may have been closed by the server meanwhile
    /// (its idle timeout, a restart). If the exchange on it fails, the
    /// request is sent once more on a fresh connection when that is safe
    /// (RFC 9112 9.3.1): hyper had sent none of it, or its method is
    /// idempotent (RFC 9110 9.2.2: GET, HEAD, PUT, DELETE, OPTIONS,
    /// TRACE). A POST that may have reached the server is not repeated
    /// here: it may have acted on it (use [`HttpClient::fetch_repeatable`]
    /// for requests known to be safe to repeat). Only a kept connection's
    /// failure is retried; a fresh connection's is the answer.
    ///
    /// # Errors
    /// Connection, TLS ([`NetError::Tls`]: a certificate that does not
    /// verify), protocol or size failures, and a timeout ([`TIMEOUT`]).
    pub async fn fetch(
        &self,
        to: &Endpoint,
        request: &HttpRequest,
    ) -> Result<HttpResponse, NetError> {
        self.fetch_within(to, request, false).await
    }

    /// [`HttpClient::fetch`] for a request the caller knows is safe to
    /// send twice whatever its method (the KMS's KmsInit and KmsKeyProv are
    /// POSTs that change nothing: the same keys are issued again), so that
    /// it is also sent again when a kept connection fails after (part of)
    /// it was written.
    ///
    /// # Errors
    /// As [`HttpClient::fetch`].
    pub async fn fetch_repeatable(
        &self,
        to: &Endpoint,
        request: &HttpRequest,
    ) -> Result<HttpResponse, NetError> {
        self.fetch_within(to, request, true).await
    }

    async fn fetch_within(
        &self,
        to: &Endpoint,
        request: &HttpRequest,
        repeatable: bool,
    ) -> Result<HttpResponse, NetError> {
        tokio::time::timeout(TIMEOUT, self.send(to, request, repeatable))
            .await
            .map_err(|_| {
                NetError::Http(format!(
                    "{} {} to {}: timed out",
                    request.method, request.path, to.addr
                ))
            })?
    }

    async fn send(
        &self,
        to: &Endpoint,
        request: &HttpRequest,
        repeatable: bool,
    ) -> Result<HttpResponse, NetError> {
        let counters = &self.pool.counters;
        if let Some(mut sender) = self.take_idle(to) {
            counters.reused.fetch_add(1, Ordering::Relaxed);
            match exchange(to.addr, &mut sender, request).await {
                Ok((response, keep)) => {
                    if keep {
                        self.put_idle(to, sender);
                    }
                    return Ok(response);
                }
                Err(f) if f.unsent || repeatable || idempotent(&request.method) => {
                    tracing::debug!(
                        "{} {} to {}: kept connection failed ({}); retrying on a new one",
                        request.method,
                        request.path,
                        to.addr,
                        f.error
                    );
                    counters.retried.fetch_add(1, Ordering::Relaxed);
                }
                Err(f) => return Err(f.error),
            }
        }
        let mut sender = self.connect(to).await?;
        let (response, keep) = exchange(to.addr, &mut sender, request)
            .await
            .map_err(|f| f.error)?;
        if keep {
            self.put_idle(to, sender);
        }
        Ok(response)
    }

    /// A new connection to `to`: TCP, the TLS handshake if HTTPS (resumed
    /// when the configuration holds a ticket from this server), and
    /// hyper's HTTP/1.1 connection, driven by a task of its own that ends
    /// when the connection closes or its last sender is dropped.
    async fn connect(&self, to: &Endpoint) -> Result<SendRequest<Full<Bytes>>, NetError> {
        let addr = to.addr;
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| NetError::io(format!("connecting to {addr}"), e))?;
        // Requests are small and answered at once: do not hold them back.
        let _ = stream.set_nodelay(true);
        let counters = &self.pool.counters;
        counters.connections.fetch_add(1, Ordering::Relaxed);
        match &to.tls {
            Some(target) => {
                let target = TlsTarget {
                    config: crate::tls::per_socket(&target.config, addr),
                    identity: target.identity.clone(),
                };
                let (tls, _) = crate::tls::connect(&target, addr, stream).await?;
                if tls.get_ref().1.handshake_kind() == Some(mcx_tls::rustls::HandshakeKind::Resumed)
                {
                    counters.resumed.fetch_add(1, Ordering::Relaxed);
                }
                http_handshake(addr, TokioIo::new(tls)).await
            }
            None => http_handshake(addr, TokioIo::new(stream)).await,
        }
    }

    /// A kept connection to `to` that can take a request now; closed and
    /// expired ones met on the way are dropped (which closes them).
    fn take_idle(&self, to: &Endpoint) -> Option<SendRequest<Full<Bytes>>> {
        let mut set = self.pool.idle.lock().ok()?;
        let timeout = self.pool.limits.idle_timeout;
        set.conns
            .retain(|c| !c.sender.is_closed() && c.since.elapsed() < timeout);
        // The most recently used first: the least likely to be closing.
        let at = set
            .conns
            .iter()
            .rposition(|c| c.to.same_connection_as(to))?;
        Some(set.conns.remove(at).sender)
    }

    /// Keeps `sender`'s connection for the next request to `to`, within
    /// the pool's bounds, and makes sure a task closes it once expired.
    fn put_idle(&self, to: &Endpoint, sender: SendRequest<Full<Bytes>>) {
        let limits = self.pool.limits;
        if limits.max_idle == 0 || sender.is_closed() {
            return;
        }
        let Ok(mut set) = self.pool.idle.lock() else {
            return;
        };
        set.conns.push(Idle {
            to: to.clone(),
            sender,
            since: Instant::now(),
        });
        while set.conns.len() > limits.max_idle {
            // Dropping the sender closes its connection.
            set.conns.remove(0);
        }
        if !set.reaper {
            set.reaper = true;
            tokio::spawn(reap(Arc::downgrade(&self.pool)));
        }
    }

    /// Closes every unused connection now (a client whose provisioning is
    /// done: the servers need not keep its sockets until the idle timeout).
    pub fn close_idle(&self) {
        if let Ok(mut set) = self.pool.idle.lock() {
            set.conns.clear();
        }
    }

    /// How many unused connections are kept now.
    pub fn idle_connections(&self) -> usize {
        self.pool.idle.lock().map_or(0, |s| s.conns.len())
    }

    /// What this client (and its clones) did so far.
    pub fn stats(&self) -> PoolStats {
        let c = &self.pool.counters;
        PoolStats {
            connections: c.connections.load(Ordering::Relaxed),
            resumed: c.resumed.load(Ordering::Relaxed),
            reused: c.reused.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
        }
    }
}

/// Closes the pool's connections as they expire; ends when none is left
/// or the pool is gone (its connections closed with it).
async fn reap(pool: Weak<Pool>) {
    loop {
        let next = {
            let Some(pool) = pool.upgrade() else { return };
            let Ok(mut set) = pool.idle.lock() else {
                return;
            };
            let timeout = pool.limits.idle_timeout;
            set.conns
                .retain(|c| !c.sender.is_closed() && c.since.elapsed() < timeout);
            match set.conns.first() {
                Some(oldest) => oldest.since + timeout,
                None => {
                    set.reaper = false;
                    return;
                }
            }
        };
        tokio::time::sleep_until(next.into()).await;
    }
}

/// RFC 9110 9.2.2: methods whose repetition has the effect of one request.
fn idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE"
    )
}

/// Sends `request` to the server at `to` (an [`Endpoint`], or a
/// `SocketAddr` for plain HTTP) on a connection of its own, closed after
/// the answer, and reads the whole response.
///
/// # Errors
/// Connection, TLS ([`NetError::Tls`]: a certificate that does not
/// verify), protocol or size failures, and a timeout.
pub async fn fetch(
    to: impl Into<Endpoint>,
    request: &HttpRequest,
) -> Result<HttpResponse, NetError> {
    HttpClient::new(PoolLimits {
        max_idle: 0,
        ..PoolLimits::default()
    })
    .fetch(&to.into(), request)
    .await
}

/// hyper's HTTP/1.1 handshake over an established (TLS) stream; the
/// connection runs in its own task.
async fn http_handshake<S>(
    addr: SocketAddr,
    io: TokioIo<S>,
) -> Result<SendRequest<Full<Bytes>>, NetError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| NetError::Http(format!("handshake with {addr}: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("HTTP connection to {addr}: {e}");
        }
    });
    Ok(sender)
}

/// One request and its whole response over `sender`'s connection, and
/// whether the connection can carry another request.
async fn exchange(
    addr: SocketAddr,
    sender: &mut SendRequest<Full<Bytes>>,
    request: &HttpRequest,
) -> Result<(HttpResponse, bool), Failure> {
    let failed = |what: String| Failure {
        error: NetError::Http(what),
        unsent: false,
    };
    let mut builder = hyper::Request::builder()
        .method(request.method.as_str())
        .uri(request.path.as_str())
        .header(hyper::header::HOST, addr.to_string());
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let req = builder
        .body(Full::new(Bytes::from(request.body.clone())))
        .map_err(|e| failed(format!("building {} {}: {e}", request.method, request.path)))?;
    // A kept connection wants its next request once its task has seen the
    // last response through; a closed one fails here, before anything is sent.
    sender.ready().await.map_err(|e| Failure {
        unsent: true,
        error: NetError::Http(format!("connection to {addr}: {e}")),
    })?;
    let resp = sender.send_request(req).await.map_err(|e| Failure {
        unsent: e.is_canceled(),
        error: NetError::Http(format!(
            "{} {} to {addr}: {e}",
            request.method, request.path
        )),
    })?;
    let status = resp.status().as_u16();
    // The server's wish to close (RFC 9112 9.6); hyper closes the
    // connection after this response, so it is not kept.
    let closing = resp
        .headers()
        .get_all(hyper::header::CONNECTION)
        .iter()
        .any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
        })
        || resp.version() != hyper::Version::HTTP_11;
    // The caller may need a redirect's Location (the IdMS's authorization
    // response) or an authentication challenge.
    let headers = [hyper::header::LOCATION, hyper::header::WWW_AUTHENTICATE]
        .iter()
        .filter_map(|name| {
            let v = resp.headers().get(name)?.to_str().ok()?;
            Some((name.as_str().to_owned(), v.to_owned()))
        })
        .collect();
    let content_type = resp
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| failed(format!("reading the response from {addr}: {e}")))?
        .to_bytes()
        .to_vec();
    Ok((
        HttpResponse {
            status,
            content_type,
            headers,
            body,
        },
        !closing,
    ))
}
