//! Fail-over between KMS instances (`mcx_client::Servers`): a connection
//! refused, a 5xx answer or no answer within the attempt timeout moves to
//! the next instance; a refusal (4xx) is the service's answer and is not
//! retried elsewhere; when every instance fails, the error names each
//! URL tried and why. A kept connection to an instance that dies is not a
//! failure: the next instance answers; one cut while its instance lives
//! is replaced by a fresh connection to the same instance.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ALICE, KMS_URI};
use mcx_client::{ClientError, Servers};
use mcx_kms::http::HttpResponse;
use mcx_net::http::Endpoint;
use tokio::net::TcpListener;

async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

/// An address nothing listens on (connection refused).
async fn dead() -> SocketAddr {
    listener().await.1
}

/// A server that answers every request with 503.
async fn failing() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let (l, addr) = listener().await;
    let handler: mcx_server::Handler =
        Arc::new(|_| HttpResponse::error(503, "database unavailable"));
    (addr, mcx_server::serve_http(l, handler))
}

/// A server that accepts connections and never answers.
async fn hung() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let (l, addr) = listener().await;
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    (addr, task)
}

async fn kms() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let kms = common::kms(&[(ALICE, "alice-token")]);
    let (l, addr) = listener().await;
    (
        addr,
        mcx_server::serve_http(l, mcx_server::kms_handler(kms)),
    )
}

fn servers(addrs: &[SocketAddr]) -> Servers {
    Servers::new(addrs.iter().map(|a| Endpoint::from(*a)).collect())
}

async fn provision(s: &Servers, token: &str) -> Result<(), ClientError> {
    mcx_client::provision_keys(KMS_URI, ALICE, token, s, None)
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moves_past_refused_connections_5xx_and_silence() {
    let (good, _k) = kms().await;
    let (bad, _f) = failing().await;
    let (silent, _h) = hung().await;
    let down = dead().await;
    let list = servers(&[down, bad, silent, good]).with_attempt_timeout(Duration::from_millis(300));
    let started = Instant::now();
    provision(&list, "alice-token").await.unwrap();
    // The silent instance cost one attempt timeout, no more.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The instance that answered is asked first from now on: no more
    // waiting for the silent one.
    let again = Instant::now();
    provision(&list, "alice-token").await.unwrap();
    assert!(
        again.elapsed() < Duration::from_millis(300),
        "{:?}",
        again.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_the_answer_and_is_not_retried() {
    let (good, _k) = kms().await;
    let down = dead().await;
    let list = servers(&[good, down]);
    match provision(&list, "wrong-token").await {
        Err(ClientError::Refused { status: 401, .. }) => {}
        other => panic!("expected the KMS's 401, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_all_fail_the_error_names_every_url() {
    let (bad, _f) = failing().await;
    let (silent, _h) = hung().await;
    let down = dead().await;
    let list = servers(&[down, bad, silent]).with_attempt_timeout(Duration::from_millis(200));
    let e = provision(&list, "alice-token").await.unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, ClientError::AllFailed { service: "KMS", ref tried } if tried.len() == 3),
        "{e:?}"
    );
    for (addr, why) in [
        (down, "connecting"),
        (bad, "answered 503"),
        (silent, "no answer within"),
    ] {
        assert!(text.contains(&format!("http://{addr} (")), "{text}");
        assert!(text.contains(why), "{text}");
    }
}

/// A TCP relay to `to` that can cut its connections (the instance's
/// kept connections die) and stop listening (the instance is gone).
struct Relay {
    addr: SocketAddr,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    conns: Arc<std::sync::Mutex<tokio::task::JoinSet<()>>>,
    listening: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn to(to: SocketAddr) -> Self {
        let (l, addr) = listener().await;
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let conns = Arc::new(std::sync::Mutex::new(tokio::task::JoinSet::new()));
        let listening = tokio::spawn({
            let (accepted, conns) = (accepted.clone(), conns.clone());
            async move {
                while let Ok((mut inbound, _)) = l.accept().await {
                    accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    conns.lock().unwrap().spawn(async move {
                        if let Ok(mut out) = tokio::net::TcpStream::connect(to).await {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                        }
                    });
                }
            }
        });
        Self {
            addr,
            accepted,
            conns,
            listening,
        }
    }

    /// Closes every relayed connection (both ends).
    fn cut(&self) {
        self.conns.lock().unwrap().abort_all();
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_connection_that_dies_is_not_a_failure() {
    let (a, _ka) = kms().await;
    let (b, _kb) = kms().await;
    let mut relay = Relay::to(a).await;
    let list = servers(&[relay.addr, b]);
    provision(&list, "alice-token").await.unwrap();
    // KmsInit and KmsKeyProv on one kept connection to A.
    assert_eq!(relay.accepted(), 1);
    assert_eq!(list.stats().reused, 1, "{:?}", list.stats());

    // The connection dies while A lives: a fresh connection to A.
    relay.cut();
    provision(&list, "alice-token").await.unwrap();
    assert_eq!(relay.accepted(), 2, "A was not asked again");
    assert_eq!(list.stats().connections, 2, "{:?}", list.stats());

    // A dies with a kept connection open: B answers, at once.
    relay.listening.abort();
    // Its listener closed before anything connects again.
    let _ = (&mut relay.listening).await;
    relay.cut();
    let started = Instant::now();
    provision(&list, "alice-token").await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(relay.accepted(), 2);
    assert_eq!(list.stats().connections, 3, "B: {:?}", list.stats());
}
