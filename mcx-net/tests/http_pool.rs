//! The HTTP client's kept connections (`mcx_net::http::HttpClient`, RFC
//! 9112 9.3) against a scripted HTTP/1.1 server on loopback: requests to
//! one server share one connection; a kept connection the server closed
//! is replaced; a request lost on a kept connection is sent again on a
//! fresh one only when that is safe; an unused connection is closed after
//! the pool's idle bound (seen from the server's side); TLS sessions are
//! resumed on a new connection and still checked.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mcx_kms::http::HttpRequest;
use mcx_net::TlsTarget;
use mcx_net::http::{Endpoint, HttpClient, PoolLimits};
use mcx_tls::{Ca, ClientAuth, Subject};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// What the scripted server does on each connection.
#[derive(Clone, Copy)]
struct Script {
    /// Requests answered on a connection; the next one is read and the
    /// connection closed without an answer.
    answer: usize,
    /// Close a connection idle this long.
    idle_close: Option<Duration>,
}

/// What the scripted server saw.
struct Seen {
    /// Connections accepted.
    accepted: Arc<AtomicUsize>,
    /// TLS handshakes that resumed a session.
    resumed: Arc<AtomicUsize>,
    /// For each connection closed by the client: how long after its last
    /// answer.
    closed_by_client: mpsc::UnboundedReceiver<Duration>,
}

/// Reads one request head (and a Content-Length body); `None` at end of
/// stream.
async fn read_request(s: &mut (impl AsyncRead + Unpin)) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return Some(head);
            }
        }
        let n = s.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
    }
}

async fn serve_one<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    script: Script,
    closed: mpsc::UnboundedSender<Duration>,
) {
    let mut last = Instant::now();
    for i in 0.. {
        if i == script.answer {
            // Take the next request and close without answering it.
            let _ = read_request(&mut s).await;
            return;
        }
        let request = match script.idle_close {
            Some(after) => match tokio::time::timeout(after, read_request(&mut s)).await {
                Ok(r) => r,
                // Idle too long: closed by the server.
                Err(_) => return,
            },
            None => read_request(&mut s).await,
        };
        if request.is_none() {
            if i > 0 {
                closed.send(last.elapsed()).unwrap();
            }
            return;
        }
        let body = format!("answer {i}");
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(body.as_bytes()).await.unwrap();
        s.flush().await.unwrap();
        last = Instant::now();
    }
}

/// A scripted server over plain HTTP, or HTTPS with `tls`.
async fn server(
    script: Script,
    tls: Option<Arc<mcx_tls::rustls::ServerConfig>>,
) -> (SocketAddr, Seen) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::unbounded_channel();
    let resumed = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let resumptions = resumed.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            let tx = tx.clone();
            let tls = tls.clone();
            let resumptions = resumptions.clone();
            tokio::spawn(async move {
                match tls {
                    None => serve_one(s, script, tx).await,
                    Some(config) => {
                        let Ok(s) = mcx_tls::tokio_rustls::TlsAcceptor::from(config)
                            .accept(s)
                            .await
                        else {
                            return;
                        };
                        if s.get_ref().1.handshake_kind()
                            == Some(mcx_tls::rustls::HandshakeKind::Resumed)
                        {
                            resumptions.fetch_add(1, Ordering::Relaxed);
                        }
                        serve_one(s, script, tx).await;
                    }
                }
            });
        }
    });
    (
        addr,
        Seen {
            accepted,
            resumed,
            closed_by_client: rx,
        },
    )
}

const FOREVER: Script = Script {
    answer: usize::MAX,
    idle_close: None,
};

fn get() -> HttpRequest {
    HttpRequest::new("GET", "/x")
}

fn post() -> HttpRequest {
    let mut r = HttpRequest::new("POST", "/x");
    r.body = b"<request/>".to_vec();
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_to_one_server_share_one_connection() {
    let (addr, seen) = server(FOREVER, None).await;
    let client = HttpClient::default();
    let to = Endpoint::from(addr);
    for i in 0..4 {
        let r = client.fetch(&to, &get()).await.unwrap();
        assert_eq!(r.body, format!("answer {i}").as_bytes());
    }
    assert_eq!(seen.accepted.load(Ordering::Relaxed), 1);
    let stats = client.stats();
    assert_eq!((stats.connections, stats.reused), (1, 3), "{stats:?}");
    // The one-shot fetch keeps nothing: a connection per request.
    mcx_net::http::fetch(addr, &get()).await.unwrap();
    mcx_net::http::fetch(addr, &get()).await.unwrap();
    assert_eq!(seen.accepted.load(Ordering::Relaxed), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_connection_the_server_closed_is_replaced() {
    let (addr, seen) = server(
        Script {
            idle_close: Some(Duration::from_millis(100)),
            ..FOREVER
        },
        None,
    )
    .await;
    let client = HttpClient::default();
    let to = Endpoint::from(addr);
    client.fetch(&to, &post()).await.unwrap();
    assert_eq!(client.idle_connections(), 1);
    // The server closes its side; the client has not been told otherwise.
    tokio::time::sleep(Duration::from_millis(400)).await;
    // A POST (not repeatable) goes through: the closed connection is
    // noticed before anything is sent on it.
    let r = client.fetch(&to, &post()).await.unwrap();
    assert_eq!(r.body, b"answer 0");
    assert_eq!(seen.accepted.load(Ordering::Relaxed), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_lost_on_a_kept_connection_is_resent_only_when_safe() {
    // Each connection answers one request, then takes the next and closes
    // without answering (a server that went away mid-request).
    let lossy = Script {
        answer: 1,
        idle_close: None,
    };
    let (addr, seen) = server(lossy, None).await;
    let to = Endpoint::from(addr);

    // GET is idempotent: resent on a fresh connection, answered there.
    let client = HttpClient::default();
    client.fetch(&to, &get()).await.unwrap();
    let r = client.fetch(&to, &get()).await.unwrap();
    assert_eq!(r.body, b"answer 0");
    assert_eq!(client.stats().retried, 1);
    assert_eq!(seen.accepted.load(Ordering::Relaxed), 2);

    // A POST may have been acted on: not resent, the failure is the answer.
    let client = HttpClient::default();
    client.fetch(&to, &post()).await.unwrap();
    let e = client.fetch(&to, &post()).await.unwrap_err();
    assert!(matches!(e, mcx_net::NetError::Http(_)), "{e:?}");
    assert_eq!(client.stats().retried, 0);
    assert_eq!(seen.accepted.load(Ordering::Relaxed), 3);

    // Unless the caller says it is safe to repeat.
    let client = HttpClient::default();
    client.fetch_repeatable(&to, &post()).await.unwrap();
    let r = client.fetch_repeatable(&to, &post()).await.unwrap();
    assert_eq!(r.body, b"answer 0");
    assert_eq!(client.stats().retried, 1);
    assert_eq!(seen.accepted.load(Ordering::Relaxed), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unused_connection_is_closed_after_the_idle_bound() {
    let (addr, mut seen) = server(FOREVER, None).await;
    let bound = Duration::from_millis(300);
    let client = HttpClient::new(PoolLimits {
        max_idle: 4,
        idle_timeout: bound,
    });
    client.fetch(&Endpoint::from(addr), &get()).await.unwrap();
    assert_eq!(client.idle_connections(), 1);
    // The server sees the client close it: not before the bound, and not
    // much after it.
    let after = tokio::time::timeout(Duration::from_secs(3), seen.closed_by_client.recv())
        .await
        .expect("the idle connection was not closed")
        .unwrap();
    assert!(
        after >= bound - Duration::from_millis(20) && after < bound * 4,
        "{after:?}"
    );
    assert_eq!(client.idle_connections(), 0);

    // close_idle closes at once; dropping the client too.
    let client = HttpClient::default();
    client.fetch(&Endpoint::from(addr), &get()).await.unwrap();
    client.close_idle();
    let after = tokio::time::timeout(Duration::from_secs(1), seen.closed_by_client.recv())
        .await
        .expect("close_idle did not close")
        .unwrap();
    assert!(after < Duration::from_millis(500), "{after:?}");
    let client = HttpClient::default();
    client.fetch(&Endpoint::from(addr), &get()).await.unwrap();
    drop(client);
    tokio::time::timeout(Duration::from_secs(1), seen.closed_by_client.recv())
        .await
        .expect("dropping the client did not close")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_max_idle_connections_are_kept() {
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(server(FOREVER, None).await);
    }
    let client = HttpClient::new(PoolLimits {
        max_idle: 2,
        idle_timeout: Duration::from_secs(30),
    });
    for (addr, _) in &servers {
        client.fetch(&Endpoint::from(*addr), &get()).await.unwrap();
    }
    assert_eq!(client.idle_connections(), 2);
    // The oldest was closed.
    let (_, seen) = &mut servers[0];
    tokio::time::timeout(Duration::from_secs(1), seen.closed_by_client.recv())
        .await
        .expect("the oldest connection was kept")
        .unwrap();
}

/// A server certificate of `ca` for `name` at loopback.
fn tls_server(ca: &Ca, name: &str) -> Arc<mcx_tls::rustls::ServerConfig> {
    let id = ca.issue(&Subject::new(name, [LOOPBACK])).unwrap();
    mcx_tls::server_config(&id, &ca.trust().unwrap(), ClientAuth::None, None).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_tls_connection_resumes_the_session_and_is_still_checked() {
    let ca = Ca::generate("test CA").unwrap();
    let (addr, seen) = server(FOREVER, Some(tls_server(&ca, "kms.test.example"))).await;
    let config = mcx_tls::client_config(&ca.trust().unwrap(), None, None).unwrap();
    let to = Endpoint::https(
        addr,
        TlsTarget {
            config: config.clone(),
            identity: Some("kms.test.example".into()),
        },
    );
    let client = HttpClient::default();
    client.fetch(&to, &get()).await.unwrap();
    client.fetch(&to, &get()).await.unwrap();
    assert_eq!(client.stats().connections, 1);
    assert_eq!(client.stats().resumed, 0, "nothing to resume yet");
    client.close_idle();
    client.fetch(&to, &get()).await.unwrap();
    let stats = client.stats();
    assert_eq!((stats.connections, stats.resumed), (2, 1), "{stats:?}");
    assert_eq!(seen.accepted.load(Ordering::Relaxed), 2);
    assert_eq!(seen.resumed.load(Ordering::Relaxed), 1, "the server's view");

    // A resumed session keeps the certificate of its full handshake: a
    // connection demanding another identity is refused all the same.
    let other = Endpoint::https(
        addr,
        TlsTarget {
            config,
            identity: Some("gms.test.example".into()),
        },
    );
    let client = HttpClient::default();
    match client.fetch(&other, &get()).await {
        Err(mcx_net::NetError::Tls(e)) => assert!(e.contains("does not name"), "{e}"),
        other => panic!("expected a TLS error, got {other:?}"),
    }
    // (The server completes its side just after the client refused.)
    let deadline = Instant::now() + Duration::from_secs(2);
    while seen.resumed.load(Ordering::Relaxed) < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        seen.resumed.load(Ordering::Relaxed),
        2,
        "the refused connection did not resume: the test shows nothing"
    );
}
