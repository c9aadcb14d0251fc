//! SIPp (Debian `sip-tester`) playing the peers of each server role, with
//! scenarios written from the specifications' call flows, not from our
//! output (`tests/sipp/*.xml`, each names its clauses): RFC 3665 3.1's
//! INVITE, 200, ACK, BYE with the headers TS 24.379 10.1.1.2.1.1 asks of a
//! call request (feature tags in Contact and Accept-Contact with
//! require;explicit, P-Preferred-Service, and P-Asserted-Identity and
//! P-Asserted-Service from a server), mcptt-info as TS 24.379 F.1 orders
//! it, and fresh wrapped TGMKs.
//!
//! - SIPp as the initiator against the controlling server (`mcx run …
//!   controlling`), with two SIPp stand-ins for the MC servers that check
//!   what it sends on;
//! - SIPp as the controlling server against an MC server (`mcx run … MC`),
//!   with a SIPp stand-in for the member, under either answer policy
//!   (`Confirmed`, `Unconfirmed`: RFC 4964 P-Answer-State).
//!
//! The MIKEY bodies: the test makes a KMS community and the dispatcher's
//! keys with `mcx kms init` / `mcx kms issue` and wraps a fresh TGMK for
//! groups A and B with `mcx mikey wrap-tgmk` (so the copies are signed by
//! the initiator, name the groups and carry a time stamp the servers take
//! as fresh); the base64 copies go into the scenarios through SIPp's
//! injection file (`-inf`, `[field0]`, `[field1]`), sent with
//! `Content-Transfer-Encoding: base64` since a scenario is text.
//!
//! Without `sipp` on the PATH every test here is skipped with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::free_port;
use common::proc::Proc;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The ports of one test's system.
struct Ports {
    controlling: u16,
    mcs_a: u16,
    mcs_b: u16,
    dispatcher: u16,
    a1: u16,
}

/// A test's directory, topology and wrapped TGMKs.
struct Lab {
    dir: PathBuf,
    topology: PathBuf,
    ports: Ports,
    /// `SEQUENTIAL` then `copy for A;copy for B` (base64).
    inject: PathBuf,
}

impl Lab {
    fn new(test: &str, answer: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("mcx-sipp-roles-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ports = Ports {
            controlling: free_port(),
            mcs_a: free_port(),
            mcs_b: free_port(),
            dispatcher: free_port(),
            a1: free_port(),
        };
        let topology = common::sipp_topology(
            [ports.controlling, ports.mcs_a, ports.mcs_b],
            &format!("answer = \"{answer}\""),
            &["sip:dispatcher@mcx.example", "sip:a1@mcx.example"],
            &[
                ("sip:dispatcher@mcx.example", ports.dispatcher),
                ("sip:a1@mcx.example", ports.a1),
            ],
            // No keep-alive: the SIPp peers answer only their scenario's messages.
            "[deadlines]\nkeepalive_ms = 0",
        );
        let path = dir.join("topology.toml");
        std::fs::write(&path, topology).unwrap();
        let inject = dir.join("wraps.csv");
        std::fs::write(&inject, format!("SEQUENTIAL\n{}\n", wraps(&dir).join(";"))).unwrap();
        Self {
            dir,
            topology: path,
            ports,
            inject,
        }
    }

    /// `mcx run TOPOLOGY role`, once it printed `ready`.
    fn run(&self, role: &str) -> Proc {
        let mut p = Proc::start(&self.topology, role);
        p.expect("ready", Duration::from_secs(30));
        p
    }

    /// A SIPp stand-in (`uas` scenario) bound to `port`, answering one call.
    fn stand_in(&self, name: &str, port: u16, extra: &[&str]) -> StandIn {
        StandIn(
            sipp_command(&self.dir, name, None, port, extra)
                .stdout(Stdio::null())
                .spawn()
                .expect("running sipp"),
        )
    }

    /// A SIPp caller (`uac` scenario) from `port` to `to`, with the wraps.
    fn call(&self, name: &str, port: u16, to: u16, extra: &[&str]) -> Output {
        sipp_command(&self.dir, name, Some(to), port, extra)
            .arg("-inf")
            .arg(&self.inject)
            .output()
            .expect("running sipp")
    }
}

/// A stand-in SIPp process, killed on drop (a failing test leaves none).
struct StandIn(Child);

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The copies of one fresh TGMK for groups A and B, base64, signed by the
/// dispatcher (keys of a community made for this test).
fn wraps(dir: &Path) -> Vec<String> {
    let mcx = |args: &[&str]| -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_mcx"))
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mcx {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    mcx(&[
        "kms",
        "init",
        "--kms-uri",
        "kms.mcx.example",
        "--out",
        "community.json",
    ]);
    let keys = mcx(&[
        "kms",
        "issue",
        "community.json",
        "--user",
        "sip:dispatcher@mcx.example",
    ]);
    std::fs::write(dir.join("dispatcher.json"), keys).unwrap();
    let out = mcx(&[
        "mikey",
        "wrap-tgmk",
        "--keys",
        "dispatcher.json",
        "--temporary-group",
        "sip:tg-1@mcx.example",
        "--group",
        "sip:group-a@mcx.example:0a000001:000102030405060708090a0b0c0d0e0f",
        "--group",
        "sip:group-b@mcx.example:0a000002:101112131415161718191a1b1c1d1e1f",
    ]);
    // One line per group: "GROUP MESSAGE".
    let copies: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap().to_owned())
        .collect();
    assert_eq!(copies.len(), 2, "{out}");
    copies
}

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(format!("{name}.xml"))
}

/// `sipp` for one call of scenario `name` over UDP from 127.0.0.1:`port`
/// (to 127.0.0.1:`to` for a caller), with message and error traces.
fn sipp_command(dir: &Path, name: &str, to: Option<u16>, port: u16, extra: &[&str]) -> Command {
    let mut c = Command::new("sipp");
    if let Some(to) = to {
        c.arg(format!("127.0.0.1:{to}"));
    }
    c.arg("-sf")
        .arg(scenario(name))
        .args(["-m", "1", "-t", "u1", "-i", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .args(["-timeout", "20s", "-timeout_error", "-nostdin"])
        .arg("-trace_err")
        .arg("-error_file")
        .arg(dir.join(format!("{name}-{port}-errors.log")))
        .arg("-trace_msg")
        .arg("-message_file")
        .arg(dir.join(format!("{name}-{port}-messages.log")))
        .args(extra)
        .current_dir(dir)
        .stdin(Stdio::null());
    c
}

/// Panics with SIPp's logs unless scenario `name` at `port` passed.
fn passed(dir: &Path, name: &str, port: u16, status: std::process::ExitStatus, stderr: &[u8]) {
    if status.success() {
        return;
    }
    let read = |what: &str| {
        std::fs::read_to_string(dir.join(format!("{name}-{port}-{what}.log"))).unwrap_or_default()
    };
    let head = |s: String| s.lines().take(150).collect::<Vec<_>>().join("\n");
    panic!(
        "SIPp scenario {name} failed ({status}).\n--- errors:\n{}\n--- messages:\n{}\n--- stderr:\n{}",
        head(read("errors")),
        head(read("messages")),
        String::from_utf8_lossy(stderr)
    );
}

/// Waits for a stand-in to finish its one call (its scenario passed).
fn finished(lab: &Lab, name: &str, port: u16, mut stand_in: StandIn) {
    for _ in 0..250 {
        if let Some(status) = stand_in.0.try_wait().unwrap() {
            return passed(&lab.dir, name, port, status, b"");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the {name} stand-in at port {port} did not finish its call within 25 s");
}

#[test]
fn sipp_initiator_calls_through_the_controlling_server_to_sipp_mc_servers() {
    if !common::sipp_available() {
        return;
    }
    let lab = Lab::new("initiator", "confirmed");
    let p = &lab.ports;
    let mcs_a = lab.stand_in(
        "mc_server_uas",
        p.mcs_a,
        &["-key", "me", "sip:mcs-a@mcx.example"],
    );
    let mcs_b = lab.stand_in(
        "mc_server_uas",
        p.mcs_b,
        &["-key", "me", "sip:mcs-b@mcx.example"],
    );
    let _controlling = lab.run("controlling");
    // The dispatcher's address: where the controlling server's answers and
    // in-dialog requests for the initiator go.
    let out = lab.call("initiator_call", p.dispatcher, p.controlling, &[]);
    passed(
        &lab.dir,
        "initiator_call",
        p.dispatcher,
        out.status,
        &out.stderr,
    );
    finished(&lab, "mc_server_uas", p.mcs_a, mcs_a);
    finished(&lab, "mc_server_uas", p.mcs_b, mcs_b);
}

/// SIPp as the controlling server, an MC server (`answer`), SIPp as its
/// member answering after `delay_ms`.
fn controlling_against_mc_server(test: &str, answer: &str, scenario: &str, delay_ms: &str) {
    if !common::sipp_available() {
        return;
    }
    let lab = Lab::new(test, answer);
    let p = &lab.ports;
    let member = lab.stand_in("member_uas", p.a1, &["-d", delay_ms]);
    let _mcs = lab.run("sip:mcs-a@mcx.example");
    let out = lab.call(scenario, p.controlling, p.mcs_a, &[]);
    passed(&lab.dir, scenario, p.controlling, out.status, &out.stderr);
    finished(&lab, "member_uas", p.a1, member);
}

#[test]
fn sipp_controlling_server_calls_a_confirmed_mc_server_and_a_sipp_member() {
    controlling_against_mc_server("confirmed", "confirmed", "controlling_call_confirmed", "0");
}

#[test]
fn sipp_controlling_server_calls_an_unconfirmed_mc_server_answered_before_its_member() {
    controlling_against_mc_server(
        "unconfirmed",
        "unconfirmed",
        "controlling_call_unconfirmed",
        "1000",
    );
}

/// The scenarios' checks bite: the Unconfirmed scenario fails against a
/// Confirmed MC server (its 200 OK says `P-Answer-State: Confirmed`).
#[test]
fn the_unconfirmed_scenario_fails_against_a_confirmed_mc_server() {
    if !common::sipp_available() {
        return;
    }
    let lab = Lab::new("mismatch", "confirmed");
    let p = &lab.ports;
    let _member = lab.stand_in("member_uas", p.a1, &["-d", "0"]);
    let _mcs = lab.run("sip:mcs-a@mcx.example");
    // A failed check ends SIPp's call only at its timeout: 3 s here.
    let out = lab.call(
        "controlling_call_unconfirmed",
        p.controlling,
        p.mcs_a,
        &["-timeout", "3s"],
    );
    assert!(
        !out.status.success(),
        "SIPp took a Confirmed answer for an Unconfirmed one"
    );
    let errors = std::fs::read_to_string(lab.dir.join(format!(
        "controlling_call_unconfirmed-{}-errors.log",
        p.controlling
    )))
    .unwrap_or_default();
    assert!(
        errors.contains("looking in ' Confirmed', with regexp 'Unconfirmed'"),
        "{errors}"
    );
}

/// SIPp as the MC server against a member's client. The client runs in
/// this test (mcx-net's node on a UDP socket), with keys of a community
/// made here and group A's GMK from a GMK I_MESSAGE it accepted, so that
/// the wrap SIPp carries (made here under that GMK, signed by the
/// dispatcher) is valid for it: it unwraps the TGMK and joins.
#[test]
fn sipp_mc_server_calls_a_member_who_unwraps_the_tgmk_and_joins() {
    use mcx_core::{Client, ClientConfig, ClientEvent};
    use mcx_ibc::eccsi::SigningKey;
    use mcx_ibc::kms::Community;
    use mcx_mikey::gmk::{GmkMessage, gmk_key_parameters};
    use mcx_mikey::message::Sp;
    use mcx_mikey::tgmk::{ConstituentGroup, TgmkWrap};
    use mcx_mikey::wire::Purpose;
    use mcx_mikey::{Gmk, KeyId};
    use mcx_net::node::BoundNode;
    use mcx_net::{Directory, Peer};
    use mcx_sip::{Timers, Transport};
    use std::sync::Arc;

    if !common::sipp_available() {
        return;
    }
    const GROUP: &str = "sip:group-a@mcx.example";
    const DISPATCHER: &str = "sip:dispatcher@mcx.example";
    const MEMBER: &str = "sip:a1@mcx.example";
    const MCS: &str = "sip:mcs-a@mcx.example";
    let lab_dir =
        std::env::temp_dir().join(format!("mcx-sipp-roles-member-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&lab_dir);
    std::fs::create_dir_all(&lab_dir).unwrap();
    let mut rng = mcx_net::os_rng();
    let now = mcx_net::now();

    // The KMS, the GMS's signing key, the member's and the dispatcher's keys.
    let community = Community::generate("kms.mcx.example", 30 * 86_400, 0, &mut rng).unwrap();
    let kms = community.public().clone();
    let period =
        mcx_ibc::uid::key_period_no(now.unix, kms.key_period_len, kms.key_period_offset).unwrap();
    let signer = |uri: &str, rng: &mut mcx_net::OsRng| {
        let k = community.issue(uri, period, rng).unwrap();
        SigningKey::new(&kms.kpak, &k.uid, k.ssk, k.pvt).unwrap()
    };
    let gms = signer("sip:gms@mcx.example", &mut rng);
    let dispatcher = signer(DISPATCHER, &mut rng);
    let member_keys = community.issue(MEMBER, period, &mut rng).unwrap();

    // The member's client: takes calls from the MC server, initiated by
    // the dispatcher; holds group A's GMK (the GMS step).
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let (sip_port, mcs_port) = (free_port(), free_port());
    let mut node = rt
        .block_on(BoundNode::bind(
            format!("127.0.0.1:{sip_port}").parse().unwrap(),
            Transport::Udp,
            Some("127.0.0.1:0".parse().unwrap()),
        ))
        .unwrap();
    node.bind_media("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut config = ClientConfig::new(
        MEMBER,
        "sip:controlling@mcx.example",
        "sip:gms@mcx.example",
        vec![DISPATCHER.to_owned()],
    );
    config.call_sources = vec![MCS.to_owned()];
    config.media = node.media_endpoint().unwrap();
    let mut client = Client::new(config, kms.clone(), member_keys).unwrap();
    let gmk = Gmk::generate(&mut rng);
    let gmk_id = KeyId::generate(Purpose::Gmk, &mut rng).unwrap();
    let gmk_message = GmkMessage {
        gms_uri: "sip:gms@mcx.example",
        member_uri: MEMBER,
        kms: &kms,
        gmk: &gmk,
        gmk_id,
        key_params: Some(gmk_key_parameters(GROUP, 0, 0)),
        policy: Some(Sp::default_group_profile()),
        identity_hiding: false,
        t_unix: now.unix,
        key_params_date_time: None,
    }
    .sign(&gms, &mut rng)
    .unwrap();
    client.accept_gmk(now, GROUP, &gmk_message).unwrap();

    // The dispatcher's wrap of a fresh TGMK for group A.
    let (tgmk, tgmk_id) = mcx_mikey::tgmk::generate(&mut rng);
    let copies = TgmkWrap {
        initiator_uri: DISPATCHER,
        kms: &kms,
        temporary_group_id: "sip:tg-1@mcx.example",
        tgmk: &tgmk,
        tgmk_id,
        activation: now.unix,
        expiry: now.unix + 3600,
        t_unix: now.unix,
        policy: Sp::default_group_profile(),
    }
    .wrap(
        &[ConstituentGroup {
            group_id: GROUP,
            gmk: &gmk,
            gmk_id,
        }],
        &dispatcher,
        &mut rng,
    )
    .unwrap();
    use base64::Engine as _;
    let copy = base64::engine::general_purpose::STANDARD.encode(&copies[0].message);
    let inject = lab_dir.join("wrap.csv");
    std::fs::write(&inject, format!("SEQUENTIAL\n{copy}\n")).unwrap();

    let mut directory = Directory::new();
    directory.insert(
        MCS,
        Peer {
            sip: format!("127.0.0.1:{mcs_port}").parse().unwrap(),
            transport: Transport::Udp,
            floor: None,
        },
    );
    let mut handle = node
        .run(client, Arc::new(directory), Timers::RFC3261, None)
        .unwrap();
    let mut events = handle.take_events();

    let out = sipp_command(&lab_dir, "mc_server_call", Some(sip_port), mcs_port, &[])
        .arg("-inf")
        .arg(&inject)
        .output()
        .expect("running sipp");
    passed(
        &lab_dir,
        "mc_server_call",
        mcs_port,
        out.status,
        &out.stderr,
    );

    // The client took the call and holds the TGMK the dispatcher wrapped.
    let mut seen = Vec::new();
    for _ in 0..40 {
        while let Ok(e) = events.try_recv() {
            seen.push(e);
        }
        if seen
            .iter()
            .any(|e| matches!(e, ClientEvent::CallEnded { .. }))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let incoming = seen.iter().find_map(|e| match e {
        ClientEvent::IncomingCall {
            temporary_group_id,
            group_id,
            initiator,
            tgmk_id: id,
            ..
        } => Some((
            temporary_group_id.clone(),
            group_id.clone(),
            initiator.clone(),
            *id,
        )),
        _ => None,
    });
    assert_eq!(
        incoming,
        Some((
            "sip:tg-1@mcx.example".to_owned(),
            GROUP.to_owned(),
            DISPATCHER.to_owned(),
            tgmk_id
        )),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|e| matches!(e, ClientEvent::CallEnded { .. })),
        "the BYE ended it: {seen:?}"
    );
    handle.stop();
    let _ = std::fs::remove_dir_all(&lab_dir);
}
