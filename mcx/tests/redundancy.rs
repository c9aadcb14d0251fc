//! Redundant KMS and GMS on PostgreSQL (docs/deployment.md): the test
//! starts its own PostgreSQL server, two KMS and two GMS `mcx run`
//! processes on it (the second of each with `--listen`, listed in the
//! topology's `replicas`), and provisions clients through
//! `mcx_client::Servers` lists in a loop. Midway it kills (SIGKILL) the
//! first KMS and the first GMS: every provisioning still succeeds, from
//! the survivors, with the same community, the same key set per user and
//! the same GMK (and RAND) per group as before; the audit logs in the
//! database hold every issue. The database password never shows in the
//! processes' logs. Without PostgreSQL binaries the test says SKIPPED.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../../mcx-kms/tests/postgres/mod.rs"]
mod postgres;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::net::SocketAddr;

use common::lab::READY;
use common::proc::Proc;
use common::topology::{Listen, default, each, place};
use mcx_client::{Provisioning, Servers};
use mcx_ibc::sakke::ReceiverKey;
use mcx_mikey::gmk::GmkReceiver;
use mcx_mikey::replay::ReplayCache;
use mcx_net::http::Endpoint;
use toml::Value;

/// An accepted GMK: (GMK-ID, GMK, RAND).
type AcceptedGmk = (u32, Vec<u8>, Vec<u8>);

/// What one provisioning gave a user: its keys and, per group, the
/// accepted GMKs (GMK-ID, GMK, RAND).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Got {
    community: Vec<u8>,
    ssk: Vec<u8>,
    rsk: Vec<u8>,
    gmks: BTreeMap<String, Vec<AcceptedGmk>>,
}

async fn provision(p: &Provisioning, gms_uri: &str) -> Got {
    let got = mcx_client::provision(p)
        .await
        .unwrap_or_else(|e| panic!("{}: provisioning failed: {e}", p.user_uri));
    let (community, keys) = (got.community, got.keys);
    let own = ReceiverKey::new(&community.sakke_public, &keys.uid, &keys.rsk).unwrap();
    let now = mcx_net::now().unix;
    let mut gmks = BTreeMap::new();
    for doc in &got.groups {
        let accepted = doc
            .gktps
            .iter()
            .map(|gktp| {
                let g = GmkReceiver {
                    own_uri: &p.user_uri,
                    own_key: &own,
                    key_period_no: keys.key_period_no,
                    kms: &community,
                    gms_uri,
                }
                .accept(gktp, now, &mut ReplayCache::default())
                .unwrap();
                (g.gmk_id.0, g.gmk.as_bytes().to_vec(), g.rand)
            })
            .collect();
        gmks.insert(doc.group_id.clone(), accepted);
    }
    Got {
        community: community.sakke_public.to_bytes().to_vec(),
        ssk: keys.ssk.to_bytes().to_vec(),
        rsk: keys.rsk.to_bytes().to_vec(),
        gmks,
    }
}

#[test]
fn clients_keep_provisioning_when_a_kms_and_a_gms_die() {
    let Some(pg) = postgres::TempPostgres::start("redundancy") else {
        return;
    };
    let dir = pg.dir().join("lab");
    std::fs::create_dir_all(&dir).unwrap();

    // The default topology without IdMS and TLS (static tokens, plain
    // HTTP), every address placed; KMS and GMS on PostgreSQL with a
    // second instance each.
    let mut t = default();
    t.remove("idms");
    t.remove("tls");
    let ports: BTreeMap<(String, &str), SocketAddr> = BTreeMap::new();
    let ports = std::sync::Mutex::new(ports);
    place(&mut t, &dir, |role, what| {
        let tag = match what {
            Listen::Http => "http",
            Listen::Sip => "sip",
            Listen::Floor => "floor",
        };
        *ports
            .lock()
            .unwrap()
            .entry((role.to_owned(), tag))
            .or_insert_with(|| SocketAddr::from(([127, 0, 0, 1], common::free_port())))
    });
    let mut second = BTreeMap::new();
    for role in ["kms", "gms"] {
        let node = t[role].as_table_mut().unwrap();
        node.remove("database");
        let other = SocketAddr::from(([127, 0, 0, 1], common::free_port()));
        node.insert(
            "replicas".into(),
            Value::Array(vec![Value::String(other.to_string())]),
        );
        second.insert(role, other);
    }
    for u in t["user"].as_array_mut().unwrap() {
        let u = u.as_table_mut().unwrap();
        u.remove("trk");
        u.remove("ink");
        u.insert("transport".into(), "udp".into());
    }
    for s in t["mc_server"].as_array_mut().unwrap() {
        s.as_table_mut()
            .unwrap()
            .insert("transport".into(), "udp".into());
    }
    t["controlling"]
        .as_table_mut()
        .unwrap()
        .insert("transport".into(), "udp".into());
    let first = |role: &str| -> SocketAddr { t[role]["http"].as_str().unwrap().parse().unwrap() };
    let (kms1, gms1) = (first("kms"), first("gms"));
    let topology = dir.join("topology.toml");
    std::fs::write(&topology, toml::to_string(&t).unwrap()).unwrap();

    // The URL (with the password) goes in the environment only.
    let url = pg.url();
    let start = |name: &str, role: &str, listen: Option<SocketAddr>| {
        let var = if role == "kms" {
            mcx_kms::db::KMS_DATABASE_URL_ENV
        } else {
            mcx_kms::db::GMS_DATABASE_URL_ENV
        };
        let mut args = vec![
            OsStr::new("run").to_owned(),
            topology.clone().into_os_string(),
            OsStr::new(role).to_owned(),
        ];
        if let Some(addr) = listen {
            args.push("--listen".into());
            args.push(addr.to_string().into());
        }
        // At debug, everything but the PostgreSQL client's statement
        // parameters is logged (checked below).
        let env = [(var, OsStr::new(&url)), ("MCX_LOG", OsStr::new("debug"))];
        let mut p = Proc::mcx_env(name, &args, &env);
        p.expect(&format!("ready {role}"), READY);
        p
    };
    // Both KMS instances start on the empty database at once.
    let mut kms_a = Proc::mcx_env(
        "kms-a",
        ["run".as_ref(), topology.as_os_str(), "kms".as_ref()],
        &[(mcx_kms::db::KMS_DATABASE_URL_ENV, OsStr::new(&url))],
    );
    let mut kms_b = start("kms-b", "kms", Some(second["kms"]));
    kms_a.expect("ready kms", READY);
    let mut gms_a = start("gms-a", "gms", None);
    let mut gms_b = start("gms-b", "gms", Some(second["gms"]));

    let gms_uri = t["gms"]["uri"].as_str().unwrap().to_owned();
    let kms_uri = t["kms"]["uri"].as_str().unwrap().to_owned();
    let servers = |a: SocketAddr, b: SocketAddr| {
        Servers::new(vec![Endpoint::from(a), Endpoint::from(b)])
            .with_attempt_timeout(std::time::Duration::from_secs(5))
    };
    let (kms, gms) = (servers(kms1, second["kms"]), servers(gms1, second["gms"]));
    let users: Vec<(String, String)> = each(&t, "user", "uri")
        .into_iter()
        .zip(each(&t, "user", "password"))
        .collect();
    let prov = |(uri, token): &(String, String)| Provisioning {
        user_uri: uri.clone(),
        token: token.clone(),
        kms_uri: kms_uri.clone(),
        kms_http: kms.clone(),
        gms_http: gms.clone(),
        kms_security: None,
    };

    let rt = tokio::runtime::Runtime::new().unwrap();
    let rounds = 3;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let plan: Vec<Provisioning> = (0..rounds).flat_map(|_| users.iter().map(prov)).collect();
    let total = plan.len();
    let task = rt.spawn(async move {
        for p in plan {
            let got = provision(&p, &gms_uri).await;
            if tx.send((p.user_uri.clone(), got)).is_err() {
                return;
            }
        }
    });
    let mut results: Vec<(String, Got)> = Vec::new();
    rt.block_on(async {
        // One round from both pairs, then the first KMS and GMS die
        // while the loop goes on.
        while results.len() < users.len() {
            results.push(rx.recv().await.expect("a result"));
        }
        kms_a.kill();
        gms_a.kill();
        while let Some(r) = rx.recv().await {
            results.push(r);
        }
    });
    rt.block_on(task).unwrap();
    assert_eq!(results.len(), total, "provisionings were lost");

    // Same keys per user, same community, same GMKs per group, before and
    // after the instances died.
    let mut per_user: BTreeMap<&str, &Got> = BTreeMap::new();
    let mut per_group: BTreeMap<&str, &Vec<AcceptedGmk>> = BTreeMap::new();
    for (user, got) in &results {
        let seen = per_user.entry(user).or_insert(got);
        assert_eq!(
            *seen, got,
            "{user} got other keys or GMKs from the survivors"
        );
        assert_eq!(got.community, results[0].1.community);
        for (group, gmks) in &got.gmks {
            assert_eq!(gmks.len(), 1, "{group}: one GMK in force");
            let first = per_group.entry(group).or_insert(gmks);
            assert_eq!(*first, gmks, "{group}: members hold different GMKs");
        }
    }
    assert!(per_group.len() >= 2, "no group documents: {per_group:?}");

    // Nothing lost: every key set issued is in the shared audit log.
    let db = mcx_kms::DatabaseUrl::parse(&url).unwrap();
    let issued: i64 = db
        .connect("mcx_kms")
        .unwrap()
        .query_one("SELECT count(*) FROM issued", &[])
        .unwrap()
        .get(0);
    assert!(
        issued >= i64::try_from(total).unwrap(),
        "{issued} issues logged for {total}"
    );

    // The password was in every instance's environment, never in a log,
    // and the logs at debug carry no statement parameters.
    for p in [&kms_a, &kms_b, &gms_a, &gms_b] {
        let err = p.stderr();
        assert!(
            !err.contains(postgres::PASSWORD),
            "{}: the password in its log",
            p.name
        );
        assert!(
            !err.contains("with parameters"),
            "{}: statement parameters logged",
            p.name
        );
    }
    assert!(
        kms_b
            .stderr()
            .contains("postgres://mcx:<redacted>@127.0.0.1"),
        "{}",
        kms_b.stderr()
    );
    kms_b.terminate();
    gms_b.terminate();
    // The survivors stop in order (their connections closed off the
    // async threads: no panic from the PostgreSQL client's runtime).
    for p in [&mut kms_b, &mut gms_b] {
        let status = p.wait_exit(std::time::Duration::from_secs(30));
        assert!(
            status.success(),
            "{}: {status}; stderr:\n{}",
            p.name,
            p.stderr()
        );
        assert!(!p.stderr().contains("panicked"), "{}", p.stderr());
    }
}
