//! The HTTP adapter in front of the sans-IO KMS, over a real socket: what
//! the service answers reaches the client intact (status, content type,
//! body), and the adapter's own limits hold.
#![allow(clippy::unwrap_used)]

use mcx_kms::http::HttpRequest;
use mcx_kms::{Kms, KmsConfig, KmsUser};
use mcx_net::http::fetch;
use tokio::net::TcpListener;

const KMS_URI: &str = "kms.test.example";
const ALICE: &str = "sip:alice@test.example";

async fn kms() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
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
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (
        addr,
        mcx_server::serve_http(listener, mcx_server::kms_handler(kms)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_over_http_provisions_a_user() {
    let (addr, server) = kms().await;
    let now = mcx_net::now().unix;
    let init = mcx_kms::client::init_request(KMS_URI, ALICE, "alice-token", now);
    let resp = fetch(addr, &init).await.unwrap();
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert!(resp.content_type.contains("xml"), "{}", resp.content_type);
    let community = mcx_kms::client::parse_init_response(&resp.body, KMS_URI).unwrap();
    let prov = mcx_kms::client::key_prov_request(KMS_URI, ALICE, "alice-token", now);
    let resp = fetch(addr, &prov).await.unwrap();
    assert_eq!(resp.status, 200);
    let keys =
        mcx_kms::client::parse_key_prov_response(&resp.body, &community, ALICE, now).unwrap();
    assert_eq!(keys.user_uri, ALICE);
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_limits_reach_the_client() {
    let (addr, server) = kms().await;
    let now = mcx_net::now().unix;
    // Wrong token: the service's 401 and its reason come through.
    let bad = mcx_kms::client::key_prov_request(KMS_URI, ALICE, "wrong", now);
    let resp = fetch(addr, &bad).await.unwrap();
    assert_eq!(resp.status, 401);
    assert!(!resp.body.is_empty());
    // Unknown path.
    let resp = fetch(addr, &HttpRequest::new("GET", "/nothing/here"))
        .await
        .unwrap();
    assert_eq!(resp.status, 404);
    // A body over the adapter's limit is refused before the service runs.
    let mut big = HttpRequest::new("POST", mcx_kms::INIT_PATH);
    big.body = vec![b'x'; mcx_server::MAX_REQUEST_BODY + 1];
    let resp = fetch(addr, &big).await.unwrap();
    assert_eq!(resp.status, 413);
    server.abort();
}
