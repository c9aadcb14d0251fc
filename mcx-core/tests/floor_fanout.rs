//! The MC server as the non-controlling floor function of its call leg
//! (TS 24.380 6.5, issue 13 point 3), on the mesh with scripted members
//! (stubs: they answer the INVITE with a floor SSRC, read floor packets in
//! clear — no CSK here — and never acknowledge unless the test does it for
//! them). The controlling server sends Floor Taken and Floor Idle once per
//! leg; each MC server sends them on to its members, retransmits to the
//! silent, keeps their Floor Acks, tells late joiners; a member's Floor
//! Request still goes up and its Floor Deny comes down per member.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

use common::*;
use mcx_core::{AnswerPolicy, Channel, ControllingEvent, McServerEvent, Transmit};
use mcx_floor::{
    ArbitratorEvent, Field, FloorIndicator, Message, MessageType, RejectCause, Source,
};

/// Every stub answers its first INVITE with this floor SSRC.
const STUB_SSRC: u32 = 0x5000_0001;

/// [`stub_world`] with the dispatcher's call to both groups started and
/// set up (300 ms of virtual time).
fn call_up(
    n: usize,
    one_server: bool,
    late: Option<&str>,
    policy: AnswerPolicy,
) -> (World, Groups) {
    let (mut w, g) = stub_world(n, one_server, late, policy);
    let m = &mut w.mesh;
    let t = m.time();
    m.client(DISPATCHER)
        .start_call(t, TEMP_GROUP, &[GROUP_A, GROUP_B], &mut TestRng(7))
        .unwrap();
    m.drive_for(Duration::from_millis(300));
    (w, g)
}

/// The floor messages (in clear here) sent from `from` to `to`.
fn floor_msgs(m: &Mesh, from: &str, to: &str) -> Vec<Message> {
    m.log
        .iter()
        .filter(|t| t.channel == Channel::Floor && t.from == from && t.to == to)
        .map(|t| Message::decode(&t.octets()).unwrap())
        .collect()
}

fn count(msgs: &[Message], t: MessageType) -> usize {
    msgs.iter().filter(|m| m.message_type == t).count()
}

/// A floor packet from stub `member` to its MC server.
fn from_member(m: &mut Mesh, member: &str, server: &str, msg: Message) {
    m.inject(Transmit::of_octets(
        member.into(),
        server.into(),
        Channel::Floor,
        msg.to_bytes().unwrap(),
    ));
}

fn ack_of(t: MessageType) -> Message {
    Message::new(MessageType::FloorAck, STUB_SSRC)
        .with(Field::Source(Source::FLOOR_PARTICIPANT))
        .with(Field::MessageType(t.code() | 0x10))
}

/// Every floor packet between the servers.
fn inter_server(m: &Mesh) -> Vec<&Transmit> {
    let servers = [CTRL, MC_A, MC_B, MC_ONE];
    m.log
        .iter()
        .filter(|t| {
            t.channel == Channel::Floor
                && servers.contains(&t.from.as_str())
                && servers.contains(&t.to.as_str())
        })
        .collect()
}

#[test]
fn floor_taken_crosses_to_each_mc_server_once_and_reaches_every_member() {
    let (mut w, g) = call_up(30, false, None, AnswerPolicy::Confirmed);
    let m = &mut w.mesh;
    assert_eq!(m.ctrl(CTRL).call_count(), 1);
    // Two legs of 30 members: two Floor Taken between the servers, not 60,
    // and one Floor Ack back from each MC server.
    let down_a = floor_msgs(m, CTRL, MC_A);
    let down_b = floor_msgs(m, CTRL, MC_B);
    assert_eq!(count(&down_a, MessageType::FloorTaken), 1, "{down_a:?}");
    assert_eq!(count(&down_b, MessageType::FloorTaken), 1, "{down_b:?}");
    assert_eq!(inter_server(m).len(), 4, "{:?}", inter_server(m));
    let call_ssrc = down_a[0].ssrc;
    assert_eq!(down_b[0].ssrc, call_ssrc, "leg-wide: the call's floor SSRC");
    for (mc, down) in [(MC_A, &down_a), (MC_B, &down_b)] {
        let up = floor_msgs(m, mc, CTRL);
        assert_eq!(up.len(), 1, "{up:?}");
        assert_eq!(up[0].message_type, MessageType::FloorAck);
        assert_eq!(up[0].ssrc, call_ssrc);
        assert_eq!(up[0].source(), Some(Source::NON_CONTROLLING));
        assert_eq!(up[0].acked_message_type(), Some(down[0].subtype()));
    }
    // Every member got Floor Taken from its MC server: the dispatcher holds
    // the floor, broadcast and temporary group call, no permission to ask,
    // an ack asked for, under the call's floor SSRC.
    for (mc, members) in [(MC_A, &g.a), (MC_B, &g.b)] {
        for u in members {
            let got = floor_msgs(m, mc, u);
            assert_eq!(got.len(), 1, "{u}: {got:?}");
            let t = &got[0];
            assert_eq!(t.message_type, MessageType::FloorTaken, "{u}");
            assert_eq!(t.ssrc, call_ssrc, "{u}");
            assert_eq!(t.granted_party(), Some(DISPATCHER), "{u}");
            assert_eq!(t.permission_to_request(), Some(false), "{u}");
            assert_eq!(t.sequence_number(), Some(0), "{u}");
            assert!(t.ack_required, "{u}");
            assert!(
                t.floor_indicator().unwrap().contains(
                    FloorIndicator::BROADCAST_GROUP_CALL | FloorIndicator::TEMPORARY_GROUP_CALL
                ),
                "{u}"
            );
        }
    }
    // Each MC server's timeline shows the hop, once, with its members.
    for (mc, group, members) in [(MC_A, GROUP_A, &g.a), (MC_B, GROUP_B, &g.b)] {
        let hops: Vec<_> = m
            .timeline
            .iter()
            .filter(|s| s.role == mc && s.detail.starts_with("Floor Taken"))
            .collect();
        assert_eq!(hops.len(), 1, "{mc}: {hops:?}");
        assert_eq!(hops[0].step, 9);
        let want = format!(
            "Floor Taken for {group} sent on to {} members",
            members.len()
        );
        assert!(
            hops[0].detail.starts_with(&want),
            "{mc}: {}",
            hops[0].detail
        );
    }
    assert!(m.errors.is_empty(), "{:?}", m.errors);
}

#[test]
fn a_silent_member_gets_three_transmissions_and_an_acking_one_no_more_and_its_ack_stays_below() {
    let (mut w, g) = call_up(30, false, None, AnswerPolicy::Confirmed);
    let m = &mut w.mesh;
    // fa00 acknowledges its Floor Taken; the others never do.
    let acker = g.a[0].clone();
    from_member(m, &acker, MC_A, ack_of(MessageType::FloorTaken));
    m.drive_for(Duration::from_millis(400));
    let taken = |m: &Mesh, u: &str| count(&floor_msgs(m, MC_A, u), MessageType::FloorTaken);
    assert_eq!(taken(m, &g.a[1]), 2, "retransmitted after 500 ms");
    m.drive_for(Duration::from_secs(5));
    assert_eq!(taken(m, &acker), 1, "no retransmission after its ack");
    for u in &g.a[1..] {
        assert_eq!(taken(m, u), 3, "{u}: three transmissions, then no more");
    }
    for u in &g.b {
        assert_eq!(
            count(&floor_msgs(m, MC_B, u), MessageType::FloorTaken),
            3,
            "{u}"
        );
    }
    // The member's Floor Ack ended at its MC server: nothing but the leg's
    // own ack went up, and the controlling server saw nothing stray.
    assert_eq!(floor_msgs(m, MC_A, CTRL).len(), 1);
    assert_eq!(
        count(&floor_msgs(m, CTRL, MC_A), MessageType::FloorTaken),
        1
    );
    assert_eq!(m.ctrl(CTRL).stray_floor_packets(), 0);
    assert_eq!(m.mc(MC_A).floor_drops().total(), 0);
    // The MC server tells its application of each silent member, once.
    let timed_out: Vec<String> = m
        .mc_events(MC_A)
        .into_iter()
        .filter_map(|e| match e {
            McServerEvent::FloorAckTimeout {
                member,
                message_type: MessageType::FloorTaken,
                ..
            } => Some(member),
            _ => None,
        })
        .collect();
    assert_eq!(timed_out, g.a[1..].to_vec());
    assert!(m.errors.is_empty(), "{:?}", m.errors);
}

#[test]
fn a_late_joiner_gets_floor_taken_from_its_mc_server() {
    let late = "sip:fa-late@mcx.test";
    let (mut w, g) = call_up(3, false, Some(late), AnswerPolicy::Unconfirmed);
    let m = &mut w.mesh;
    assert_eq!(m.ctrl(CTRL).call_count(), 1);
    assert!(floor_msgs(m, MC_A, late).is_empty());
    for u in &g.a {
        assert_eq!(
            count(&floor_msgs(m, MC_A, u), MessageType::FloorTaken),
            1,
            "{u}"
        );
    }
    // It answers now, with the call up: its MC server tells it.
    m.stub(late).answer(0, MC_A);
    m.drive_for(Duration::from_millis(100));
    let got = floor_msgs(m, MC_A, late);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].message_type, MessageType::FloorTaken);
    assert_eq!(got[0].granted_party(), Some(DISPATCHER));
    // The controlling server learnt of it (INFO) but sent nothing for it.
    assert_eq!(
        count(&floor_msgs(m, CTRL, MC_A), MessageType::FloorTaken),
        1
    );
    assert_eq!(
        m.ctrl(CTRL).arbitrator(TEMP_GROUP).unwrap().participants(),
        1 + 2 + 3 + 3 + 1,
        "initiator, two legs, every member"
    );
    assert!(m.errors.is_empty(), "{:?}", m.errors);
}

#[test]
fn floor_idle_at_release_reaches_every_member_through_its_mc_server() {
    let (mut w, g) = call_up(30, false, None, AnswerPolicy::Confirmed);
    let m = &mut w.mesh;
    let t = m.time();
    m.client(DISPATCHER).release_floor(t, TEMP_GROUP).unwrap();
    m.drive_for(Duration::from_millis(100));
    assert_eq!(m.ctrl(CTRL).call_count(), 0);
    for (mc, members) in [(MC_A, &g.a), (MC_B, &g.b)] {
        assert_eq!(count(&floor_msgs(m, CTRL, mc), MessageType::FloorIdle), 1);
        for u in members {
            let idle: Vec<_> = floor_msgs(m, mc, u)
                .into_iter()
                .filter(|x| x.message_type == MessageType::FloorIdle)
                .collect();
            assert_eq!(idle.len(), 1, "{u}");
            assert_eq!(idle[0].sequence_number(), Some(1), "{u}");
            assert_eq!(idle[0].permission_to_request(), Some(false), "{u}");
        }
        assert!(
            m.timeline
                .iter()
                .any(|s| s.role == mc && s.detail.starts_with("Floor Idle for")),
            "{mc}: the Floor Idle hop in the timeline"
        );
    }
    assert_eq!(
        inter_server(m).len(),
        8,
        "Taken, Idle and their acks per leg"
    );
    m.drive_for(Duration::from_secs(11));
    assert_eq!(m.mc(MC_A).call_count(), 0);
    assert_eq!(m.mc(MC_A).inter_server_floor_state(), 0);
    assert!(m.errors.is_empty(), "{:?}", m.errors);
}

#[test]
fn a_members_floor_request_still_gets_its_floor_deny_per_member() {
    let (mut w, g) = call_up(5, false, None, AnswerPolicy::Confirmed);
    let m = &mut w.mesh;
    let asker = g.a[3].clone();
    from_member(
        m,
        &asker,
        MC_A,
        Message::new(MessageType::FloorRequest, STUB_SSRC).with(Field::FloorPriority(1)),
    );
    m.drive_for(Duration::from_millis(100));
    let call_ssrc = floor_msgs(m, CTRL, MC_A)[0].ssrc;
    // Up with the member's relay SSRC, down the same way.
    let up = floor_msgs(m, MC_A, CTRL);
    let request = up
        .iter()
        .find(|x| x.message_type == MessageType::FloorRequest)
        .unwrap();
    assert_ne!(request.ssrc, call_ssrc);
    let deny = floor_msgs(m, CTRL, MC_A)
        .into_iter()
        .find(|x| x.message_type == MessageType::FloorDeny)
        .unwrap();
    assert_eq!(deny.ssrc, request.ssrc, "addressed to the member");
    // Only the asker gets it, under the call's floor SSRC.
    let got: Vec<_> = floor_msgs(m, MC_A, &asker)
        .into_iter()
        .filter(|x| x.message_type == MessageType::FloorDeny)
        .collect();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].ssrc, call_ssrc);
    assert_eq!(got[0].reject_cause().unwrap().0, RejectCause::RECEIVE_ONLY);
    for u in g.a.iter().filter(|u| **u != asker) {
        assert_eq!(
            count(&floor_msgs(m, MC_A, u), MessageType::FloorDeny),
            0,
            "{u}"
        );
    }
    assert!(m.errors.is_empty(), "{:?}", m.errors);
}

#[test]
fn two_legs_at_one_mc_server_without_an_spk_are_each_told_and_acknowledged() {
    // Without an SPK nothing but the SSRC names a floor packet, and both
    // legs of the call at one MC server share the call's floor SSRC.
    let (mut w, g) = call_up(4, true, None, AnswerPolicy::Confirmed);
    let m = &mut w.mesh;
    assert_eq!(
        count(&floor_msgs(m, CTRL, MC_ONE), MessageType::FloorTaken),
        2
    );
    for u in g.a.iter().chain(&g.b) {
        assert_eq!(
            count(&floor_msgs(m, MC_ONE, u), MessageType::FloorTaken),
            1,
            "{u}"
        );
    }
    m.drive_for(Duration::from_secs(3));
    // Each leg's Floor Taken was acknowledged: no retransmission, no
    // timeout at the arbitrator.
    assert_eq!(
        count(&floor_msgs(m, CTRL, MC_ONE), MessageType::FloorTaken),
        2
    );
    let timeouts = m
        .ctrl_events(CTRL)
        .into_iter()
        .filter(|e| {
            matches!(
                e,
                ControllingEvent::Floor {
                    event: ArbitratorEvent::AckTimeout { .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(timeouts, 0);
    // Members were told once per transmission, not once per leg-wide copy.
    for u in g.a.iter().chain(&g.b) {
        assert_eq!(
            count(&floor_msgs(m, MC_ONE, u), MessageType::FloorTaken),
            3,
            "{u}"
        );
    }
    assert!(m.errors.is_empty(), "{:?}", m.errors);
}
