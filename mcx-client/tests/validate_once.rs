//! A client's start-up validates each of its keys once: the KMS client
//! checks the key set on receipt (RFC 6507 5.1.2, RFC 6508 6.1.2) and the
//! client role takes the signer and receiver that check made, without a
//! second RSK validation (a pairing each). Counted with the process-wide
//! RSK validation counter of `mcx-ibc`; this binary holds this one test so
//! that nothing else validates meanwhile.
#![allow(clippy::unwrap_used)]

mod common;

use common::{ALICE, GMS_URI, GROUP, KMS_URI};
use mcx_client::Provisioning;
use mcx_core::ClientConfig;
use mcx_ibc::sakke::internal::rsk_validations;
use tokio::net::TcpListener;

async fn listener() -> (TcpListener, std::net::SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_validates_the_rsk_once() {
    let kms = common::kms(&[(ALICE, "alice-token"), (GMS_URI, "gms-token")]);
    let (l, kms_http) = listener().await;
    let _kms = mcx_server::serve_http(l, mcx_server::kms_handler(kms));

    // The GMS provisions its own keys first; they are not the client's.
    let (community, gms_keys) =
        mcx_client::provision_keys(KMS_URI, GMS_URI, "gms-token", &kms_http.into(), None)
            .await
            .unwrap();
    let gms = common::gms(community, gms_keys);
    let (l, gms_http) = listener().await;
    let _gms = mcx_server::serve_http(l, mcx_server::gms_handler(gms));

    let before = rsk_validations();
    let prov = Provisioning {
        user_uri: ALICE.into(),
        token: "alice-token".into(),
        kms_uri: KMS_URI.into(),
        kms_http: kms_http.into(),
        gms_http: gms_http.into(),
        kms_security: None,
    };
    let provisioned = mcx_client::provision(&prov).await.unwrap();
    // One key set, or two at a start-up near a key period boundary.
    let key_sets = 1 + u64::from(provisioned.next_keys.is_some());
    assert_eq!(rsk_validations() - before, key_sets, "on receipt");
    let config = ClientConfig::new(ALICE, "sip:ctrl@test.example", GMS_URI, Vec::new());
    let client = tokio::task::spawn_blocking(move || mcx_client::build_client(config, provisioned))
        .await
        .unwrap()
        .unwrap();
    // The role took the validated keys and decrypted its GKTP with them.
    assert_eq!(client.gmk_groups(), vec![GROUP.to_owned()]);
    assert_eq!(
        rsk_validations() - before,
        key_sets,
        "the client role validated the RSK again"
    );
}
