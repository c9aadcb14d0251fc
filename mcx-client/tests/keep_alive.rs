//! A client's start-up over HTTPS costs one TLS handshake per server:
//! KmsInit and KmsKeyProv share one connection to the KMS, the group index
//! and document one to the GMS (HTTP/1.1 persistent connections), and a
//! later start-up with the same TLS configuration resumes the sessions
//! instead of full handshakes. Counted at the servers
//! (`mcx_server::tls_handshakes`, process-wide: this binary holds this one
//! TLS test so that nothing else handshakes meanwhile). A server's
//! `Connection: close` (its per-connection request bound) is obeyed: the
//! next request goes on a new connection, not a failed one.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

mod common;

use common::{ALICE, GMS_URI, KMS_URI};
use mcx_client::{Provisioning, Servers};
use mcx_net::TlsTarget;
use mcx_net::http::Endpoint;
use mcx_server::TlsHandshakes;
use mcx_tls::{Ca, ClientAuth, Subject};
use tokio::net::TcpListener;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

fn https(ca: &Ca, name: &str) -> Arc<mcx_tls::rustls::ServerConfig> {
    let id = ca.issue(&Subject::new(name, [LOOPBACK])).unwrap();
    mcx_tls::server_config(&id, &ca.trust().unwrap(), ClientAuth::Optional, None).unwrap()
}

fn endpoint(config: &Arc<mcx_tls::rustls::ClientConfig>, addr: SocketAddr, name: &str) -> Endpoint {
    Endpoint::https(
        addr,
        TlsTarget {
            config: config.clone(),
            identity: Some(name.into()),
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_up_does_one_handshake_per_server() {
    let ca = Ca::generate("test CA").unwrap();
    let kms = common::kms(&[(ALICE, "alice-token"), (GMS_URI, "gms-token")]);
    let (l, kms_addr) = listener().await;
    let limits = mcx_server::HttpLimits::default();
    let _kms =
        mcx_server::serve_https_with(l, mcx_server::kms_handler(kms), limits, https(&ca, KMS_URI));
    let gms_config = mcx_tls::client_config(&ca.trust().unwrap(), None, None).unwrap();
    let (community, gms_keys) = mcx_client::provision_keys(
        KMS_URI,
        GMS_URI,
        "gms-token",
        &endpoint(&gms_config, kms_addr, KMS_URI).into(),
        None,
    )
    .await
    .unwrap();
    let gms = common::gms(community, gms_keys);
    let (l, gms_addr) = listener().await;
    let _gms = mcx_server::serve_https_with(
        l,
        mcx_server::gms_handler(gms),
        limits,
        https(&ca, "gms.test.example"),
    );

    // Alice's device: its own TLS configuration (no session of earlier
    // connections to resume).
    let config = mcx_tls::client_config(&ca.trust().unwrap(), None, None).unwrap();
    let start_up = || async {
        let prov = Provisioning {
            user_uri: ALICE.into(),
            token: "alice-token".into(),
            kms_uri: KMS_URI.into(),
            kms_http: Servers::from(endpoint(&config, kms_addr, KMS_URI)),
            gms_http: Servers::from(endpoint(&config, gms_addr, "gms.test.example")),
            kms_security: None,
        };
        let provisioned = mcx_client::provision(&prov).await.unwrap();
        assert_eq!(provisioned.groups.len(), 1);
        (prov.kms_http.stats(), prov.gms_http.stats())
    };

    mcx_server::reset_tls_handshakes();
    let (kms, gms) = start_up().await;
    // KmsInit + KmsKeyProv on one connection; index + document on one.
    assert_eq!((kms.connections, kms.reused), (1, 1), "KMS: {kms:?}");
    assert_eq!((gms.connections, gms.reused), (1, 1), "GMS: {gms:?}");
    assert_eq!(
        mcx_server::tls_handshakes(),
        TlsHandshakes {
            full: 2,
            resumed: 0
        },
        "one full handshake per server"
    );

    // The device starts again: new connections, the sessions resumed
    // (no certificate signed or verified).
    mcx_server::reset_tls_handshakes();
    let (kms, gms) = start_up().await;
    assert_eq!((kms.resumed, gms.resumed), (1, 1), "{kms:?} {gms:?}");
    assert_eq!(
        mcx_server::tls_handshakes(),
        TlsHandshakes {
            full: 0,
            resumed: 2
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_server_ends_is_not_reused() {
    let handler: mcx_server::Handler =
        Arc::new(|_| mcx_kms::http::HttpResponse::with_body(200, "text/plain", b"ok".to_vec()));
    let (l, addr) = listener().await;
    let _server = mcx_server::serve_http_with(
        l,
        handler,
        mcx_server::HttpLimits {
            max_requests_per_connection: 2,
            ..mcx_server::HttpLimits::default()
        },
    );
    let servers = Servers::from(addr);
    for _ in 0..5 {
        let r = servers
            .fetch("test", &mcx_kms::http::HttpRequest::new("GET", "/x"))
            .await
            .unwrap();
        assert_eq!(r.body, b"ok");
    }
    let stats = servers.stats();
    // Two requests per connection: 3 connections, 2 reuses, no failure.
    assert_eq!(
        (stats.connections, stats.reused, stats.retried),
        (3, 2, 0),
        "{stats:?}"
    );
}
