//! tokio drivers for the MCX servers.
//!
//! - [`serve_http`]: the HTTP/1.1 adapter (hyper) in front of a sans-IO
//!   service such as [`mcx_kms::Kms`] or [`mcx_gms::Gms`]: it reads the
//!   request whole, runs the service on the blocking pool (key issuing
//!   is CPU work) and writes its answer. [`HttpLimits`] bound what clients
//!   can hold: connections, time to send a request, idle keep-alive time;
//!   accept errors (out of file descriptors) are waited out, not spun on.
//!   [`serve_https_with`] is the same behind TLS (rustls): the handshake
//!   runs in the connection's task within the header read timeout.
//! - The controlling server and MC servers are [`mcx_core`] roles run by
//!   [`mcx_net::node::BoundNode::run`]; nothing server-specific is needed
//!   beyond that.
#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use mcx_kms::http::{HttpRequest, HttpResponse};
use mcx_net::{AcceptBackoff, accept_loop};
use mcx_tls::tokio_rustls;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// Largest request body accepted.
pub const MAX_REQUEST_BODY: usize = 1024 * 1024;

/// How long a client may take to send its request headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Least time between two log lines about refused connections.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What HTTP clients can hold of a server: each limit turns a slow or
/// silent client into a closed connection instead of a held descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Most connections open at once; further ones are closed as soon as
    /// they are accepted. Default 256 (provisioning is a few requests per
    /// client, made a few at a time). Once three quarters are open, a new
    /// connection answers one request and closes (`Connection: close`), so
    /// that idle kept-alive connections cannot hold the rest.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers (hyper
    /// also applies it while waiting for the next request on a kept-alive
    /// connection). Default [`HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body once its
    /// headers are in; after it the request is answered 408 and the
    /// connection closed. Default 15 s.
    pub body_timeout: Duration,
    /// A connection with no request in progress and no octet read or
    /// written for this long is closed (idle keep-alive, or a client that
    /// does not read its answer). Default 15 s.
    pub idle_timeout: Duration,
    /// Largest request body accepted (413 beyond). Default [`MAX_REQUEST_BODY`].
    pub max_body: usize,
    /// Most requests answered on one connection: the answer to the last
    /// one says `Connection: close` (RFC 9112 9.6) and the connection is
    /// closed after it, so that no client holds a connection for ever
    /// however busy it keeps it. Default 100 (a client's start-up is four
    /// or five requests).
    pub max_requests_per_connection: u32,
    /// Waits after accept errors.
    pub accept_backoff: AcceptBackoff,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            header_read_timeout: HEADER_READ_TIMEOUT,
            body_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(15),
            max_body: MAX_REQUEST_BODY,
            max_requests_per_connection: 100,
            accept_backoff: AcceptBackoff::default(),
        }
    }
}

/// A sans-IO HTTP service.
pub type Handler = Arc<dyn Fn(HttpRequest) -> HttpResponse + Send + Sync>;

/// Time the services of this process spent answering one kind of request
/// (the handler's own time on its thread, not the queueing before it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceTime {
    /// Requests answered.
    pub requests: u64,
    /// Their total time.
    pub total: Duration,
    /// The longest one.
    pub max: Duration,
}

/// TLS handshakes completed by this process's HTTPS servers, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsHandshakes {
    /// Full handshakes: the server's certificate sent and signed for,
    /// the client's checked if it sent one.
    pub full: u64,
    /// Resumed ones (a ticket of an earlier session: no certificate).
    pub resumed: u64,
}

static TLS_FULL: AtomicU64 = AtomicU64::new(0);
static TLS_RESUMED: AtomicU64 = AtomicU64::new(0);

/// The TLS handshakes this process's HTTPS servers completed since the
/// start or the last [`reset_tls_handshakes`] (all servers together).
pub fn tls_handshakes() -> TlsHandshakes {
    TlsHandshakes {
        full: TLS_FULL.load(Ordering::Relaxed),
        resumed: TLS_RESUMED.load(Ordering::Relaxed),
    }
}

/// Starts [`tls_handshakes`] again from zero (a benchmark's measured part).
pub fn reset_tls_handshakes() {
    TLS_FULL.store(0, Ordering::Relaxed);
    TLS_RESUMED.store(0, Ordering::Relaxed);
}

static SERVICE_TIMES: Mutex<std::collections::BTreeMap<String, ServiceTime>> =
    Mutex::new(std::collections::BTreeMap::new());

/// `METHOD /path` with the query dropped and each segment naming a user
/// or group (with `@`, `:` or `%`) replaced by `{id}`: one key per kind of
/// request.
fn route_of(method: &str, path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let segments: Vec<&str> = path
        .split('/')
        .map(|s| {
            if s.contains(['@', ':', '%']) {
                "{id}"
            } else {
                s
            }
        })
        .collect();
    format!("{method} {}", segments.join("/"))
}

fn record_service_time(route: String, took: Duration) {
    let mut times = SERVICE_TIMES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let t = times.entry(route).or_default();
    t.requests += 1;
    t.total += took;
    t.max = t.max.max(took);
}

/// The time every HTTP(S) service of this process spent per kind of
/// request since start (or [`reset_service_times`]): `mcx bench
/// provision` reports it.
pub fn service_times() -> Vec<(String, ServiceTime)> {
    SERVICE_TIMES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// Forgets the times [`service_times`] reports.
pub fn reset_service_times() {
    SERVICE_TIMES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clear();
}

/// The HTTP handler of a KMS: requests run concurrently on the blocking
/// pool (the KMS serialises only its SQLite statements).
pub fn kms_handler(kms: mcx_kms::Kms) -> Handler {
    Arc::new(move |req| kms.handle(&req, mcx_net::now().unix))
}

/// The HTTP handler of an IdMS (TS 33.180 Annex B): `GET /authorize`
/// and `POST /token`. Token answers are never cached (RFC 6749 5.1).
pub fn idms_handler(idms: mcx_idms::server::Idms) -> Handler {
    let idms = Mutex::new(idms);
    Arc::new(move |req| {
        let now = mcx_net::now().unix;
        let mut rng = mcx_net::os_rng();
        let authorization = req
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
            .map(|(_, v)| v.as_str());
        let Ok(mut idms) = idms.lock() else {
            return HttpResponse::error(500, "IdMS state poisoned by an earlier failure");
        };
        let answer = idms.handle(
            &req.method,
            &req.path,
            authorization,
            &req.body,
            now,
            &mut rng,
        );
        let mut resp =
            HttpResponse::with_body(answer.status, "application/json", answer.body.into_bytes());
        resp.headers
            .push(("Cache-Control".into(), "no-store".into()));
        if let Some(location) = answer.location {
            resp.headers.push(("Location".into(), location));
        }
        if answer.challenge_basic {
            resp.headers
                .push(("WWW-Authenticate".into(), "Basic realm=\"mcx\"".into()));
        }
        resp
    })
}

/// The HTTP handler of a GMS: requests run concurrently on the blocking
/// pool (GKTPs are built outside the GMS's locks).
pub fn gms_handler(gms: mcx_gms::Gms) -> Handler {
    Arc::new(move |req| gms.handle(&req, mcx_net::now().unix, &mut mcx_net::os_rng()))
}

/// Serves `handler` on `listener` with [`HttpLimits::default`] until the
/// task is aborted.
pub fn serve_http(listener: TcpListener, handler: Handler) -> JoinHandle<()> {
    serve_http_with(listener, handler, HttpLimits::default())
}

/// Serves `handler` on `listener` within `limits` until the task is aborted.
pub fn serve_http_with(
    listener: TcpListener,
    handler: Handler,
    limits: HttpLimits,
) -> JoinHandle<()> {
    serve(listener, handler, limits, None)
}

/// Serves `handler` over HTTPS on `listener` within `limits` until the
/// task is aborted. A client whose handshake fails or takes longer than
/// `limits.header_read_timeout` is dropped (logged at debug level).
pub fn serve_https_with(
    listener: TcpListener,
    handler: Handler,
    limits: HttpLimits,
    tls: Arc<mcx_tls::rustls::ServerConfig>,
) -> JoinHandle<()> {
    serve(listener, handler, limits, Some(TlsAcceptor::from(tls)))
}

fn serve(
    listener: TcpListener,
    handler: Handler,
    limits: HttpLimits,
    tls: Option<TlsAcceptor>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(
            limits.max_connections.min(Semaphore::MAX_PERMITS),
        ));
        let errors = AtomicU64::new(0);
        let mut refused = 0u64;
        let mut refusal_logged: Option<Instant> = None;
        accept_loop(
            "HTTP",
            limits.accept_backoff,
            &errors,
            || listener.accept(),
            tokio::time::sleep,
            |(stream, peer): (TcpStream, std::net::SocketAddr)| {
                match slots.clone().try_acquire_owned() {
                    Ok(slot) => {
                        // Three quarters of the connections in use: this
                        // one answers a single request and closes, so that
                        // kept-alive idle connections cannot fill the cap
                        // and turn newcomers away.
                        let crowded = slots.available_permits() < limits.max_connections / 4;
                        let handler = handler.clone();
                        let tls = tls.clone();
                        tokio::spawn(async move {
                            match tls {
                                None => {
                                    serve_connection(stream, peer, handler, limits, crowded).await;
                                }
                                Some(tls) => {
                                    let handshake = tokio::time::timeout(
                                        limits.header_read_timeout,
                                        tls.accept(stream),
                                    );
                                    match handshake.await {
                                        Ok(Ok(stream)) => {
                                            let resumed = stream.get_ref().1.handshake_kind()
                                                == Some(mcx_tls::rustls::HandshakeKind::Resumed);
                                            if resumed { &TLS_RESUMED } else { &TLS_FULL }
                                                .fetch_add(1, Ordering::Relaxed);
                                            serve_connection(stream, peer, handler, limits, crowded)
                                                .await;
                                        }
                                        Ok(Err(e)) => {
                                            tracing::debug!("HTTPS from {peer}: handshake: {e}");
                                        }
                                        Err(_) => {
                                            tracing::debug!("HTTPS from {peer}: handshake timed out");
                                        }
                                    }
                                }
                            }
                            drop(slot);
                        });
                    }
                    Err(_) => {
                        // Dropping the stream closes it.
                        refused += 1;
                        if refusal_logged.is_none_or(|t| t.elapsed() >= REFUSAL_LOG_INTERVAL) {
                            refusal_logged = Some(Instant::now());
                            tracing::warn!(
                                "HTTP: {} connections open, refusing more (e.g. {peer}; {refused} refused so far)",
                                limits.max_connections
                            );
                        }
                    }
                }
                std::future::ready(ControlFlow::Continue(()))
            },
        )
        .await;
    })
}

/// What a connection's watchdog needs to tell idle from busy.
#[derive(Debug)]
struct Activity {
    since: Instant,
    /// Milliseconds after `since` of the last octet read or written.
    last_io_ms: AtomicU64,
    /// Requests being answered (their body read or the service running).
    in_flight: AtomicUsize,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_io_ms.store(ms, Ordering::Relaxed);
    }
    fn last_io(&self) -> Instant {
        self.since + Duration::from_millis(self.last_io_ms.load(Ordering::Relaxed))
    }
}

/// Marks a request in flight until dropped (also when hyper drops the
/// service future because the connection ended).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(a: Arc<Activity>) -> Self {
        a.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(a)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A stream that notes when octets last moved, for the idle watchdog.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Serves one connection until it ends, or until it has been idle (no
/// request in flight, no octet moving) for `limits.idle_timeout`; a
/// `crowded` one only for its first request (`Connection: close`).
async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    peer: std::net::SocketAddr,
    handler: Handler,
    limits: HttpLimits,
    crowded: bool,
) {
    let activity = Arc::new(Activity {
        since: Instant::now(),
        last_io_ms: AtomicU64::new(0),
        in_flight: AtomicUsize::new(0),
    });
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        let answered = std::sync::atomic::AtomicU32::new(0);
        service_fn(move |req| {
            let busy = InFlight::new(activity.clone());
            let handler = handler.clone();
            // hyper calls the service for one request at a time on an
            // HTTP/1.1 connection, in order.
            let n = answered.fetch_add(1, Ordering::Relaxed).saturating_add(1);
            let last = crowded || n >= limits.max_requests_per_connection;
            async move {
                let r = respond(req, handler, limits, last).await;
                drop(busy);
                r
            }
        })
    };
    // A client that trickles its headers is cut off (slowloris).
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(io, service);
    tokio::pin!(conn);
    loop {
        let wake = if activity.in_flight.load(Ordering::Relaxed) > 0 {
            // The body and service have their own bounds; look again later.
            Instant::now() + limits.idle_timeout
        } else {
            activity.last_io() + limits.idle_timeout
        };
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!("HTTP connection from {peer}: {e}");
                }
                return;
            }
            () = tokio::time::sleep_until(wake.into()) => {
                if activity.in_flight.load(Ordering::Relaxed) == 0
                    && activity.last_io().elapsed() >= limits.idle_timeout
                {
                    // Dropping the connection closes it.
                    tracing::debug!("HTTP connection from {peer}: idle for {:?}; closing", limits.idle_timeout);
                    return;
                }
            }
        }
    }
}

async fn respond(
    req: hyper::Request<Incoming>,
    handler: Handler,
    limits: HttpLimits,
    last: bool,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    // A client that sends its headers and then trickles the body is cut off too.
    let body = tokio::time::timeout(
        limits.body_timeout,
        Limited::new(body, limits.max_body).collect(),
    )
    .await;
    let mut close = last;
    let answer = match body {
        Err(_) => {
            close = true;
            HttpResponse::error(408, "request body not received in time")
        }
        Ok(Err(e)) => {
            HttpResponse::error(413, &format!("request body unreadable or too large: {e}"))
        }
        Ok(Ok(body)) => {
            let request = HttpRequest {
                method: parts.method.as_str().to_owned(),
                path: parts
                    .uri
                    .path_and_query()
                    .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned()),
                headers: parts
                    .headers
                    .iter()
                    .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                    .collect(),
                body: body.to_bytes().to_vec(),
            };
            tokio::task::spawn_blocking(move || {
                let started = Instant::now();
                let route = route_of(&request.method, &request.path);
                let answer = handler(request);
                record_service_time(route, started.elapsed());
                answer
            })
            .await
            .unwrap_or_else(|_| HttpResponse::error(500, "the service failed"))
        }
    };
    let mut resp = hyper::Response::new(Full::new(Bytes::from(answer.body)));
    *resp.status_mut() = hyper::StatusCode::from_u16(answer.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(ct) = hyper::header::HeaderValue::from_str(&answer.content_type) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, ct);
    }
    for (name, value) in &answer.headers {
        if let (Ok(n), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_str(value),
        ) {
            resp.headers_mut().append(n, v);
        }
    }
    if close {
        // The connection's last request, or the rest of the body may still
        // come: the stream cannot carry another request.
        resp.headers_mut().insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
    }
    Ok(resp)
}
