//! The GMK poll of a running client against a GMS over HTTP: the next
//! GMK arrives before the current one expires, a GMK rolled after a
//! member's removal reaches the remaining members, and the removed
//! member drops the group (docs/key-lifecycle.md).
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcx_client::{Provisioning, keep_gmks_fresh, refresh_gmks};
use mcx_core::{Client, ClientConfig, GmkInfo};
use mcx_gms::{Gms, GmsConfig, GmsUser, GroupConfig};
use mcx_ibc::kms::Community;
use mcx_net::node::{BoundNode, NodeHandle};
use mcx_net::{Directory, Transport};

const KMS: &str = "kms.mcx.test";
const GMS: &str = "sip:gms@mcx.test";
const GROUP: &str = "sip:group-a@mcx.test";
const ALICE: &str = "sip:alice@mcx.test";
const BOB: &str = "sip:bob@mcx.test";

fn token(u: &str) -> String {
    format!("token-{}", u.trim_start_matches("sip:"))
}

struct Setup {
    community: Community,
    gms: Arc<Mutex<Gms>>,
    gms_http: SocketAddr,
    _server: tokio::task::JoinHandle<()>,
}

/// A GMS with one group (Alice, Bob) whose GMKs live `lifetime` seconds,
/// served over HTTP.
async fn gms(lifetime: u64) -> Setup {
    let mut rng = mcx_net::os_rng();
    let community = Community::generate(KMS, 30 * 86_400, 0, &mut rng).unwrap();
    let kms = community.public().clone();
    let now = mcx_net::now().unix;
    let period = mcx_ibc::uid::key_period_no(now, kms.key_period_len, 0).unwrap();
    let config = GmsConfig {
        gms_uri: GMS.into(),
        groups: vec![GroupConfig {
            id: GROUP.into(),
            display_name: "A".into(),
            members: vec![ALICE.into(), BOB.into()],
        }],
        users: [ALICE, BOB]
            .iter()
            .map(|u| GmsUser {
                uri: (*u).into(),
                token: token(u),
            })
            .collect(),
        gmk_lifetime_secs: lifetime,
    };
    let keys = community.issue(GMS, period, &mut rng).unwrap();
    let gms = Arc::new(Mutex::new(
        Gms::open(None, None, config, kms, keys, now, &mut rng).unwrap(),
    ));
    let served = gms.clone();
    let handler: mcx_server::Handler = Arc::new(move |req| {
        served
            .lock()
            .unwrap()
            .handle(&req, mcx_net::now().unix, &mut mcx_net::os_rng())
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gms_http = listener.local_addr().unwrap();
    Setup {
        community,
        gms,
        gms_http,
        _server: mcx_server::serve_http(listener, handler),
    }
}

/// A running client of `user` (no GMK yet) and its provisioning.
async fn client(s: &Setup, user: &str) -> (NodeHandle<Client>, Provisioning) {
    let kms = s.community.public().clone();
    let period = mcx_ibc::uid::key_period_no(mcx_net::now().unix, kms.key_period_len, 0).unwrap();
    let keys = s
        .community
        .issue(user, period, &mut mcx_net::os_rng())
        .unwrap();
    let config = ClientConfig::new(user, "sip:ctrl@mcx.test", GMS, vec![ALICE.into()]);
    let role = Client::new(config, kms, keys).unwrap();
    let node = BoundNode::bind("127.0.0.1:0".parse().unwrap(), Transport::Udp, None)
        .await
        .unwrap()
        .run(
            role,
            Arc::new(Directory::new()),
            mcx_sip::Timers::default(),
            None,
        )
        .unwrap();
    let prov = Provisioning {
        user_uri: user.into(),
        token: token(user),
        kms_uri: KMS.into(),
        // Not used: the keys were issued above.
        kms_http: "127.0.0.1:9".parse::<SocketAddr>().unwrap().into(),
        gms_http: s.gms_http.into(),
        kms_security: None,
    };
    (node, prov)
}

async fn gmks(node: &NodeHandle<Client>) -> Vec<GmkInfo> {
    node.query(|c, _, _| c.gmks(GROUP)).await.unwrap()
}

#[tokio::test]
async fn a_rolled_gmk_reaches_the_remaining_member_and_the_removed_one_drops_the_group() {
    let s = gms(0).await;
    let (alice, alice_p) = client(&s, ALICE).await;
    let (bob, bob_p) = client(&s, BOB).await;
    for (node, p) in [(&alice, &alice_p), (&bob, &bob_p)] {
        let r = refresh_gmks(p, &node.commander()).await.unwrap();
        assert_eq!((r.accepted, r.refused.len()), (1, 0));
    }
    let first = gmks(&alice).await[0].gmk_id;
    assert_eq!(gmks(&bob).await[0].gmk_id, first);

    let rolled = s
        .gms
        .lock()
        .unwrap()
        .remove_member(GROUP, BOB, mcx_net::now().unix, &mut mcx_net::os_rng())
        .unwrap();
    assert_ne!(rolled, first);

    let r = refresh_gmks(&alice_p, &alice.commander()).await.unwrap();
    assert_eq!(r.accepted, 1);
    assert!(gmks(&alice).await.iter().any(|g| g.gmk_id == rolled));
    let sending = alice
        .query(|c, t, _| c.sending_gmk_id(t, GROUP))
        .await
        .unwrap();
    assert_eq!(sending, Ok(rolled), "calls now go under the rolled GMK");

    // Bob's index no longer lists the group: he drops its GMKs.
    let r = refresh_gmks(&bob_p, &bob.commander()).await.unwrap();
    assert_eq!(r.left, [GROUP]);
    assert!(gmks(&bob).await.is_empty());
    alice.stop();
    bob.stop();
}

/// GMKs of 8 s: the poll fetches the next one at half the current one's
/// life (4 s), well before the interval (60 s), and holds both.
#[tokio::test]
async fn the_poll_fetches_the_next_gmk_before_the_current_one_expires() {
    let s = gms(8).await;
    let (alice, p) = client(&s, ALICE).await;
    refresh_gmks(&p, &alice.commander()).await.unwrap();
    let first = gmks(&alice).await;
    let [cur] = first.as_slice() else {
        panic!("{first:?}")
    };
    let poll = tokio::spawn(keep_gmks_fresh(
        p,
        alice.commander(),
        Duration::from_secs(60),
        Duration::from_secs(600),
    ));
    let mut held = Vec::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        held = gmks(&alice).await;
        if held.len() == 2 {
            break;
        }
    }
    assert_eq!(held.len(), 2, "{held:?}");
    assert_eq!(held[1].activation, cur.expiry);
    assert!(mcx_net::now().unix < cur.expiry, "fetched before expiry");
    poll.abort();
    alice.stop();
}
