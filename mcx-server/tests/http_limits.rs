//! The HTTP adapter's limits over real loopback sockets: a trickled body
//! is cut off, an idle kept-alive connection is closed, a connection is
//! closed after its last allowed request, near the connection cap a new
//! connection is not kept alive, and past the cap new connections are
//! closed while open ones are served.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcx_kms::http::HttpResponse;
use mcx_server::{HttpLimits, serve_http_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn server(limits: HttpLimits) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler: mcx_server::Handler = Arc::new(|req| {
        HttpResponse::with_body(
            200,
            "text/plain",
            format!("{} {} {}", req.method, req.path, req.body.len()).into_bytes(),
        )
    });
    // Dropping the JoinHandle detaches the server; it ends with the runtime.
    drop(serve_http_with(listener, handler, limits));
    addr
}

fn limits() -> HttpLimits {
    HttpLimits {
        header_read_timeout: Duration::from_secs(5),
        body_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        ..HttpLimits::default()
    }
}

const GET: &[u8] = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n";

/// Reads one response (head + Content-Length body) from `c`.
async fn response(c: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(3), c.read(&mut buf))
            .await
            .expect("no response")
            .unwrap();
        assert!(
            n > 0,
            "closed before a response: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return text;
            }
        }
    }
}

/// Time until the server closes `c` (data read meanwhile is returned too).
async fn closed_after(
    c: &mut (impl tokio::io::AsyncRead + Unpin),
    within: Duration,
) -> Option<(Duration, String)> {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((start + within).into(), c.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => {
                return Some((start.elapsed(), String::from_utf8_lossy(&got).into()));
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_is_cut_off() {
    let body_timeout = Duration::from_millis(800);
    let addr = server(HttpLimits {
        body_timeout,
        ..limits()
    })
    .await;
    let (mut reader, mut c) = TcpStream::connect(addr).await.unwrap().into_split();
    c.write_all(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    let trickle = async {
        for _ in 0..100 {
            if c.write_all(b"a").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let (closed, ()) = tokio::join!(closed_after(&mut reader, Duration::from_secs(5)), trickle);
    let (_, text) = closed.expect("a trickled body must not hold the connection");
    let took = start.elapsed();
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(took < body_timeout + Duration::from_secs(2), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_kept_alive_connection_is_closed() {
    let idle = Duration::from_millis(700);
    let addr = server(HttpLimits {
        idle_timeout: idle,
        ..limits()
    })
    .await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(GET).await.unwrap();
    assert!(response(&mut c).await.starts_with("HTTP/1.1 200"));
    // Kept alive: a second request on it works.
    c.write_all(GET).await.unwrap();
    assert!(response(&mut c).await.starts_with("HTTP/1.1 200"));
    let (after, _) = closed_after(&mut c, Duration::from_secs(4))
        .await
        .expect("an idle connection must be closed");
    assert!(after >= idle - Duration::from_millis(100), "{after:?}");
    assert!(after < idle + Duration::from_secs(1), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_cap_new_connections_are_closed_and_open_ones_served() {
    let addr = server(HttpLimits {
        max_connections: 2,
        ..limits()
    })
    .await;
    let mut a = TcpStream::connect(addr).await.unwrap();
    let mut b = TcpStream::connect(addr).await.unwrap();
    // Both accepted (a request answered on each proves it).
    a.write_all(GET).await.unwrap();
    assert!(response(&mut a).await.starts_with("HTTP/1.1 200"));
    b.write_all(GET).await.unwrap();
    assert!(response(&mut b).await.starts_with("HTTP/1.1 200"));
    let mut c = TcpStream::connect(addr).await.unwrap();
    let (after, text) = closed_after(&mut c, Duration::from_secs(2))
        .await
        .expect("connection 3 must be closed");
    assert!(text.is_empty(), "{text}");
    assert!(after < Duration::from_secs(1), "{after:?}");
    // The open ones still work, honest requests and all.
    a.write_all(b"POST /y HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .unwrap();
    let text = response(&mut a).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("POST /y 5"), "{text}");
    // A slot frees when a connection ends.
    drop(b);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut d = TcpStream::connect(addr).await.unwrap();
    d.write_all(GET).await.unwrap();
    assert!(response(&mut d).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_is_closed_after_its_last_allowed_request() {
    let addr = server(HttpLimits {
        max_requests_per_connection: 3,
        ..limits()
    })
    .await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    for _ in 0..2 {
        c.write_all(GET).await.unwrap();
        let text = response(&mut c).await;
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(
            !text.to_ascii_lowercase().contains("connection: close"),
            "{text}"
        );
    }
    // The third answer says so (RFC 9112 9.6), and the server closes.
    answered_then_closed(&mut c).await;
}

/// A GET on `c` is answered 200 with `Connection: close` (RFC 9112 9.6),
/// and the server closes `c` within a second after it.
async fn answered_then_closed(c: &mut TcpStream) {
    c.write_all(GET).await.unwrap();
    let text = response(c).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    let (after, rest) = closed_after(c, Duration::from_secs(2))
        .await
        .expect("the connection must be closed after its last answer");
    assert!(rest.is_empty(), "{rest}");
    assert!(after < Duration::from_secs(1), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_the_cap_a_new_connection_answers_once_and_closes() {
    let addr = server(HttpLimits {
        max_connections: 4,
        ..limits()
    })
    .await;
    // Three kept-alive connections: a quarter of the cap is left.
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(GET).await.unwrap();
        let text = response(&mut c).await;
        assert!(
            !text.to_ascii_lowercase().contains("connection: close"),
            "{text}"
        );
        open.push(c);
    }
    // The fourth is served once, told so, and closed: idle kept-alive
    // connections cannot take the last places.
    let mut d = TcpStream::connect(addr).await.unwrap();
    answered_then_closed(&mut d).await;
    // The kept ones still serve further requests.
    open[0].write_all(GET).await.unwrap();
    assert!(response(&mut open[0]).await.starts_with("HTTP/1.1 200"));
    // Once one ends, a newcomer is kept alive again.
    drop(open.pop());
    drop(open.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut e = TcpStream::connect(addr).await.unwrap();
    e.write_all(GET).await.unwrap();
    let text = response(&mut e).await;
    assert!(
        !text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
}
