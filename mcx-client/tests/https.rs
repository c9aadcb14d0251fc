//! Provisioning over HTTPS with certificates of a demo CA: the user's keys
//! arrive; a KMS whose certificate is of another CA, or names another
//! KMS, is refused before any request is sent.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use mcx_client::ClientError;
use mcx_kms::{Kms, KmsConfig, KmsUser};
use mcx_net::http::Endpoint;
use mcx_net::{NetError, TlsTarget};
use mcx_tls::{Ca, ClientAuth, Subject};
use tokio::net::TcpListener;

const KMS_URI: &str = "kms.test.example";
const ALICE: &str = "sip:alice@test.example";
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A KMS over HTTPS presenting a certificate of `ca` for `name`.
async fn kms_over_https(ca: &Ca, name: &str) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let config = KmsConfig {
        kms_uri: KMS_URI.into(),
        key_period_len: 30 * 86_400,
        key_period_offset: 0,
        users: vec![KmsUser {
            uri: ALICE.into(),
            token: "alice-token".into(),
            security: None,
        }],
    };
    let kms = Kms::open(
        None,
        None,
        config,
        &mut rand_core::UnwrapErr(getrandom::SysRng),
    )
    .unwrap();
    let identity = ca.issue(&Subject::new(name, [LOOPBACK])).unwrap();
    let tls =
        mcx_tls::server_config(&identity, &ca.trust().unwrap(), ClientAuth::None, None).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = mcx_server::serve_https_with(
        listener,
        mcx_server::kms_handler(kms),
        mcx_server::HttpLimits::default(),
        tls,
    );
    (addr, server)
}

fn endpoint(trusted: &Ca, addr: SocketAddr) -> Endpoint {
    let config = mcx_tls::client_config(&trusted.trust().unwrap(), None, None).unwrap();
    Endpoint::https(
        addr,
        TlsTarget {
            config,
            identity: Some(KMS_URI.into()),
        },
    )
}

async fn provision(to: &Endpoint) -> Result<(), ClientError> {
    mcx_client::provision_keys(KMS_URI, ALICE, "alice-token", &to.clone().into(), None)
        .await
        .map(|_| ())
}

fn tls_error(r: Result<(), ClientError>) -> String {
    match r {
        Err(ClientError::Net(NetError::Tls(e))) => e,
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_provisioned_over_https() {
    let ca = Ca::generate("test CA").unwrap();
    let (addr, server) = kms_over_https(&ca, KMS_URI).await;
    let (_, keys) = mcx_client::provision_keys(
        KMS_URI,
        ALICE,
        "alice-token",
        &endpoint(&ca, addr).into(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(keys.user_uri, ALICE);
    // The same server does not answer plain HTTP.
    assert!(provision(&Endpoint::from(addr)).await.is_err());
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kms_of_another_ca_is_refused() {
    let ca = Ca::generate("test CA").unwrap();
    let impostor = Ca::generate("impostor CA").unwrap();
    let (addr, server) = kms_over_https(&impostor, KMS_URI).await;
    let e = tls_error(provision(&endpoint(&ca, addr)).await);
    assert!(e.contains(&format!("handshake with {addr}")), "{e}");
    assert!(e.contains("invalid peer certificate"), "{e}");
    assert!(e.contains("UnknownIssuer"), "{e}");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_naming_another_server_is_refused() {
    let ca = Ca::generate("test CA").unwrap();
    // Of the right CA, but another role's (say the GMS's) certificate.
    let (addr, server) = kms_over_https(&ca, "sip:gms@test.example").await;
    let e = tls_error(provision(&endpoint(&ca, addr)).await);
    assert!(e.contains(&format!("does not name {KMS_URI}")), "{e}");
    server.abort();
}
