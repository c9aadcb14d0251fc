//! Network input never panics a role: garbage, truncations and bit flips
//! of real messages are answered or refused with an error.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod common;

use common::*;
use mcx_core::Channel;

#[test]
fn garbage_and_mutations_do_not_panic() {
    let mut w = world(Servers::Two, &[DISPATCHER]);
    let t = w.mesh.time();
    let mut rng = TestRng(11);
    w.mesh
        .client(DISPATCHER)
        .start_call(t, TEMP_GROUP, &[GROUP_A, GROUP_B], &mut rng)
        .unwrap();
    w.mesh.drive();
    let samples: Vec<_> = w.mesh.log.iter().take(12).cloned().collect();
    let targets = [
        CTRL,
        "sip:mc-a@mcx.test",
        OUTSIDER,
        &members_a()[0],
        DISPATCHER,
    ];
    let mut state = 0x1234_5678_u64;
    for s in &samples {
        for cut in [
            0,
            1,
            10,
            s.octets().len() / 2,
            s.octets().len().saturating_sub(1),
        ] {
            for to in targets {
                for ch in [Channel::Sip, Channel::Floor] {
                    let mut bytes = s.octets()[..cut].to_vec();
                    // Flip a pseudo-random bit in the kept prefix.
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1);
                    if !bytes.is_empty() {
                        let i = usize::try_from(state >> 33).unwrap() % bytes.len();
                        bytes[i] ^= 1 << (state % 8);
                    }
                    w.mesh.inject(mcx_core::Transmit {
                        from: s.from.clone(),
                        to: to.to_owned(),
                        channel: ch,
                        contents: bytes,
                        sip: None,
                        encoded: None,
                    });
                }
            }
        }
    }
    w.mesh.drive();
    // Still nobody outside the groups holds the key.
    assert!(
        w.mesh
            .client(OUTSIDER)
            .tgmk_confirmation(TEMP_GROUP)
            .is_none()
    );
}

/// OPTIONS and unknown methods get a final answer naming the supported
/// methods (RFC 3261 11.2, 8.2.1) from every role, so no transaction is
/// left to time out.
#[test]
fn every_role_answers_options_and_refuses_other_methods() {
    use mcx_sip::{Message, Method, Request};
    let mut w = world(Servers::Two, &[DISPATCHER]);
    let targets = [CTRL, "sip:mc-a@mcx.test", &members_a()[0]];
    for (i, to) in targets.iter().enumerate() {
        for method in [Method::Options, Method::Message] {
            let req = Request::builder(method.clone(), to)
                .via(
                    "UDP",
                    "probe.mcx.test",
                    &format!("z9hG4bK-probe-{i}-{method}"),
                )
                .max_forwards(70)
                .from(None, "sip:probe@mcx.test", "probetag")
                .to(None, to, None)
                .call_id(&format!("probe-{i}-{method}@mcx.test"))
                .cseq(1)
                .build()
                .unwrap();
            w.mesh.inject(mcx_core::Transmit {
                from: "sip:probe@mcx.test".into(),
                to: (*to).to_owned(),
                channel: Channel::Sip,
                contents: Message::from(req).to_bytes(),
                sip: None,
                encoded: None,
            });
        }
    }
    w.mesh.drive();
    let answers: Vec<_> = w
        .mesh
        .log
        .iter()
        .filter(|t| t.to == "sip:probe@mcx.test")
        .map(|t| match Message::parse(&t.octets()).unwrap() {
            Message::Response(r) => (
                r.status().0,
                r.cseq().unwrap().1,
                r.headers().get("Allow").map(str::to_owned),
            ),
            Message::Request(_) => panic!("a request to the probe"),
        })
        .collect();
    assert_eq!(answers.len(), 6, "{answers:?}");
    for (status, method, allow) in answers {
        let expected = if method == Method::Options { 200 } else { 405 };
        assert_eq!(status, expected, "{method}");
        assert_eq!(
            allow.as_deref(),
            Some("INVITE, ACK, BYE, CANCEL, OPTIONS, INFO")
        );
    }
}
