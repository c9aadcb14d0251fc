//! Provisioning from a real KMS over HTTP with the TS 33.180 D.1 security
//! extension: a client holding its TrK/InK gets validated keys; a client
//! with other keys, or none, is refused, as is a response without the
//! extension when the client has keys.
#![allow(clippy::unwrap_used)]

use mcx_kms::secext::{SecExtError, SecurityKeys};
use mcx_kms::{Kms, KmsConfig, KmsError, KmsUser, XmlError};
use tokio::net::TcpListener;

const KMS_URI: &str = "kms.test.example";
const ALICE: &str = "sip:alice@test.example";
const BOB: &str = "sip:bob@test.example";

fn alice_keys() -> SecurityKeys {
    SecurityKeys::new([0x11; 32], [0x22; 32])
}

/// A KMS where Alice has a TrK/InK and Bob has none.
async fn kms() -> std::net::SocketAddr {
    let user = |uri: &str, token: &str, security| KmsUser {
        uri: uri.into(),
        token: token.into(),
        security,
    };
    let config = KmsConfig {
        kms_uri: KMS_URI.into(),
        key_period_len: 30 * 86_400,
        key_period_offset: 0,
        users: vec![
            user(ALICE, "alice-token", Some(alice_keys())),
            user(BOB, "bob-token", None),
        ],
    };
    let kms = Kms::open(None, None, config, &mut mcx_net::os_rng()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    mcx_server::serve_http(listener, mcx_server::kms_handler(kms));
    addr
}

fn secext(err: mcx_client::ClientError) -> SecExtError {
    match err {
        mcx_client::ClientError::Kms(KmsError::Xml(XmlError::SecExt(e))) => e,
        other => panic!("not a security extension refusal: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_with_the_security_extension() {
    let addr = kms().await;
    let keys = alice_keys();
    let (community, user) =
        mcx_client::provision_keys(KMS_URI, ALICE, "alice-token", &addr.into(), Some(&keys))
            .await
            .unwrap();
    assert_eq!(community.kms_uri, KMS_URI);
    assert_eq!(user.user_uri, ALICE);

    // Another InK: the signature does not verify.
    let other_ink = SecurityKeys::new([0x11; 32], [0x23; 32]);
    let err = mcx_client::provision_keys(
        KMS_URI,
        ALICE,
        "alice-token",
        &addr.into(),
        Some(&other_ink),
    )
    .await
    .unwrap_err();
    assert_eq!(secext(err), SecExtError::BadSignature);

    // Another TrK: signed correctly, but the keys do not decrypt.
    let other_trk = SecurityKeys::new([0x12; 32], [0x22; 32]);
    let err = mcx_client::provision_keys(
        KMS_URI,
        ALICE,
        "alice-token",
        &addr.into(),
        Some(&other_trk),
    )
    .await
    .unwrap_err();
    assert_eq!(secext(err), SecExtError::Decrypt("UserDecryptKey"));

    // Bob's KMS answers without the extension: a client with keys refuses.
    let err = mcx_client::provision_keys(KMS_URI, BOB, "bob-token", &addr.into(), Some(&keys))
        .await
        .unwrap_err();
    assert_eq!(secext(err), SecExtError::NotSigned);
    // Bob without keys is served as before.
    mcx_client::provision_keys(KMS_URI, BOB, "bob-token", &addr.into(), None)
        .await
        .unwrap();
}
