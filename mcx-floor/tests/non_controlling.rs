//! Two tiers of floor control (TS 24.380 6.5): the arbitrator sends Floor
//! Taken and Floor Idle once per call leg to a non-controlling function,
//! which sends them on to its members (real floor participants), asks
//! their acks, retransmits to the silent and keeps their acks; a member's
//! Floor Request still goes to the arbitrator and is denied there.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use mcx_floor::{
    ArbitratorConfig, BroadcastArbitrator, FloorIndicator, INITIATOR, Message, MessageType,
    NonControlling, NonControllingEvent, Participant, ParticipantConfig, ParticipantEvent,
    ParticipantId, ParticipantState, RejectCause, Source,
};

const DISPATCHER: &str = "sip:dispatcher@example.org";
const CALL_SSRC: u32 = 0xf100_0001;

struct Tiers {
    now: Instant,
    arb: BroadcastArbitrator,
    /// The leg's participant id at the arbitrator.
    leg: ParticipantId,
    nc: NonControlling,
    /// The members, by their id at the non-controlling function (their
    /// index here); each also has a represented id at the arbitrator.
    members: Vec<(Participant, ParticipantId)>,
    /// Members whose packets are lost on their way up.
    mute: Vec<usize>,
    /// Packets the arbitrator sent: (to, message).
    from_arb: Vec<(ParticipantId, Message)>,
    /// Packets the function sent to members: (member, message).
    to_members: Vec<(usize, Message)>,
    /// Member packets the function passed on to the arbitrator.
    passed_up: Vec<Message>,
    events: Vec<NonControllingEvent>,
}

impl Tiers {
    fn new(members: usize) -> Self {
        let now = Instant::now();
        let mut arb =
            BroadcastArbitrator::new(ArbitratorConfig::new(CALL_SSRC), DISPATCHER).unwrap();
        let leg = arb.add_receiver(now, "sip:group-a@example.org").unwrap();
        let mut t = Self {
            now,
            arb,
            leg,
            nc: NonControlling::new(ArbitratorConfig::new(CALL_SSRC)),
            members: Vec::new(),
            mute: Vec::new(),
            from_arb: Vec::new(),
            to_members: Vec::new(),
            passed_up: Vec::new(),
            events: Vec::new(),
        };
        for _ in 0..members {
            t.join();
        }
        t
    }

    /// A member joins (before or during the call).
    fn join(&mut self) -> usize {
        let i = self.members.len();
        let user = format!("sip:a{i}@example.org");
        let rid = self.arb.add_represented_receiver(user.clone()).unwrap();
        let mut p = Participant::new(ParticipantConfig::new(0x100 + i as u32, user)).unwrap();
        p.start(self.now, false).unwrap();
        self.members.push((p, rid));
        self.nc.add_member(self.now, ParticipantId(i));
        self.pump();
        i
    }

    /// Moves every packet until nothing is left to send.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(t) = self.arb.poll_transmit() {
                moved = true;
                let m = Message::decode(&t.contents).unwrap();
                self.from_arb.push((t.destination, m.clone()));
                if t.destination == self.leg {
                    if let Some(ack) = self.nc.handle_upstream(self.now, &m).unwrap() {
                        self.arb.handle(self.now, self.leg, &ack).unwrap();
                    }
                } else if let Some(i) = self.members.iter().position(|(_, r)| *r == t.destination) {
                    // Per-member answers pass through the MC server.
                    self.members[i].0.handle(self.now, &t.contents).unwrap();
                }
            }
            while let Some(t) = self.nc.poll_transmit() {
                moved = true;
                let i = t.destination.0;
                self.to_members
                    .push((i, Message::decode(&t.contents).unwrap()));
                self.members[i].0.handle(self.now, &t.contents).unwrap();
            }
            for i in 0..self.members.len() {
                while let Some(bytes) = self.members[i].0.poll_transmit() {
                    moved = true;
                    if self.mute.contains(&i) {
                        continue;
                    }
                    let m = Message::decode(&bytes).unwrap();
                    if !self.nc.handle_member(ParticipantId(i), &m) {
                        self.passed_up.push(m);
                        let rid = self.members[i].1;
                        self.arb.handle(self.now, rid, &bytes).unwrap();
                    }
                }
            }
            while let Some(e) = self.nc.poll_event() {
                self.events.push(e);
            }
            if !moved {
                break;
            }
        }
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = [self.arb.poll_timeout(), self.nc.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
                .filter(|&t| t <= end);
            let Some(at) = next else { break };
            self.now = at.max(self.now);
            self.arb.handle_timeout(self.now);
            self.nc.handle_timeout(self.now);
            self.pump();
        }
        self.now = end;
    }

    fn sent_to(&self, i: usize, t: MessageType) -> usize {
        self.to_members
            .iter()
            .filter(|(to, m)| *to == i && m.message_type == t)
            .count()
    }

    fn start(&mut self) {
        self.arb.start(self.now).unwrap();
        self.pump();
    }
}

#[test]
fn taken_goes_once_per_leg_and_the_function_tells_every_member() {
    let mut t = Tiers::new(30);
    t.start();
    // The arbitrator sent Floor Granted to the initiator and Floor Taken
    // once, to the leg: nothing to the thirty represented members.
    let taken: Vec<_> = t
        .from_arb
        .iter()
        .filter(|(_, m)| m.message_type == MessageType::FloorTaken)
        .collect();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].0, t.leg);
    assert!(
        t.from_arb
            .iter()
            .all(|(to, _)| *to == t.leg || *to == INITIATOR)
    );
    // Every member was told by the function: the initiator holds the
    // floor, broadcast + temporary group call, under the call's SSRC.
    for i in 0..30 {
        assert_eq!(t.sent_to(i, MessageType::FloorTaken), 1, "member {i}");
        assert_eq!(t.members[i].0.state(), ParticipantState::HasNoPermission);
    }
    let (_, m) = &t.to_members[0];
    assert_eq!(m.ssrc, CALL_SSRC);
    assert_eq!(m.granted_party(), Some(DISPATCHER));
    assert_eq!(m.permission_to_request(), Some(false));
    assert!(m.ack_required);
    assert_eq!(m.sequence_number(), Some(0));
    assert!(
        m.floor_indicator()
            .unwrap()
            .contains(FloorIndicator::BROADCAST_GROUP_CALL | FloorIndicator::TEMPORARY_GROUP_CALL)
    );
    // The members' acks stayed with the function; the leg's ack reached
    // the arbitrator.
    assert!(t.passed_up.is_empty(), "{:?}", t.passed_up);
    assert!(!t.arb.awaiting_ack(t.leg));
    for i in 0..30 {
        assert!(!t.nc.awaiting_ack(ParticipantId(i)));
    }
    // Nothing is retransmitted afterwards.
    let before = t.to_members.len();
    t.advance(Duration::from_secs(3));
    assert_eq!(t.to_members.len(), before);
    assert!(t.events.is_empty());
}

#[test]
fn a_silent_member_gets_three_transmissions_and_none_after_its_ack() {
    let mut t = Tiers::new(3);
    t.mute = vec![1, 2];
    t.start();
    t.advance(Duration::from_millis(600));
    assert_eq!(t.sent_to(1, MessageType::FloorTaken), 2);
    assert_eq!(t.sent_to(0, MessageType::FloorTaken), 1);
    // Member 2 acks now (its retransmission is answered again).
    t.mute = vec![1];
    t.advance(Duration::from_millis(500));
    assert_eq!(t.sent_to(2, MessageType::FloorTaken), 3);
    assert!(!t.nc.awaiting_ack(ParticipantId(2)));
    t.advance(Duration::from_secs(5));
    assert_eq!(t.sent_to(1, MessageType::FloorTaken), 3);
    assert_eq!(t.sent_to(2, MessageType::FloorTaken), 3);
    assert_eq!(
        t.events,
        vec![NonControllingEvent::AckTimeout {
            member: ParticipantId(1),
            message_type: MessageType::FloorTaken,
        }]
    );
    assert!(t.passed_up.is_empty());
}

#[test]
fn a_late_member_gets_taken_and_release_sends_idle_through_the_function() {
    let mut t = Tiers::new(2);
    t.start();
    let late = t.join();
    assert_eq!(t.sent_to(late, MessageType::FloorTaken), 1);
    assert_eq!(t.members[late].0.state(), ParticipantState::HasNoPermission);
    // The arbitrator sent nothing for it.
    assert_eq!(
        t.from_arb
            .iter()
            .filter(|(_, m)| m.message_type == MessageType::FloorTaken)
            .count(),
        1
    );
    // The initiator releases: Floor Idle once to the leg, then to each
    // member with the function's next sequence number.
    let release = Message::new(MessageType::FloorRelease, 0x100)
        .to_bytes()
        .unwrap();
    t.arb.handle(t.now, INITIATOR, &release).unwrap();
    t.pump();
    let idle_to_leg = t
        .from_arb
        .iter()
        .filter(|(to, m)| *to == t.leg && m.message_type == MessageType::FloorIdle)
        .count();
    assert_eq!(idle_to_leg, 1);
    for i in 0..3 {
        assert_eq!(t.sent_to(i, MessageType::FloorIdle), 1, "member {i}");
        let idle = t
            .to_members
            .iter()
            .find(|(to, m)| *to == i && m.message_type == MessageType::FloorIdle)
            .unwrap();
        assert_eq!(idle.1.sequence_number(), Some(1));
        let p = &mut t.members[i].0;
        assert!(
            std::iter::from_fn(|| p.poll_event())
                .any(|e| matches!(e, ParticipantEvent::FloorIdle { .. }))
        );
    }
    assert!(!t.arb.awaiting_ack(t.leg));
    // A member joining now is told nothing (the floor is idle).
    t.nc.add_member(t.now, ParticipantId(9));
    assert!(t.nc.poll_transmit().is_none());
}

#[test]
fn a_members_request_is_passed_on_and_denied_by_the_arbitrator() {
    let mut t = Tiers::new(2);
    t.start();
    let request = Message::new(MessageType::FloorRequest, 0x101)
        .to_bytes()
        .unwrap();
    let m = Message::decode(&request).unwrap();
    assert!(!t.nc.handle_member(ParticipantId(1), &m));
    let rid = t.members[1].1;
    t.arb.handle(t.now, rid, &request).unwrap();
    t.pump();
    let deny: Vec<_> = t
        .from_arb
        .iter()
        .filter(|(_, m)| m.message_type == MessageType::FloorDeny)
        .collect();
    assert_eq!(deny.len(), 1);
    assert_eq!(deny[0].0, rid);
    assert_eq!(
        deny[0].1.reject_cause().unwrap().0,
        RejectCause::RECEIVE_ONLY
    );
}

#[test]
fn an_upstream_retransmission_is_acknowledged_again_but_not_sent_on() {
    let mut nc = NonControlling::new(ArbitratorConfig::new(CALL_SSRC));
    let now = Instant::now();
    nc.add_member(now, ParticipantId(0));
    let taken = Message::new(MessageType::FloorTaken, CALL_SSRC)
        .with(mcx_floor::Field::GrantedPartyIdentity(DISPATCHER.into()))
        .with(mcx_floor::Field::SequenceNumber(7))
        .with_ack_required(true);
    let ack = Message::decode(&nc.handle_upstream(now, &taken).unwrap().unwrap()).unwrap();
    assert_eq!(ack.message_type, MessageType::FloorAck);
    assert_eq!(ack.ssrc, CALL_SSRC);
    assert_eq!(ack.source(), Some(Source::NON_CONTROLLING));
    assert_eq!(ack.acked_message_type(), Some(taken.subtype()));
    assert!(nc.poll_transmit().is_some());
    assert!(nc.handle_upstream(now, &taken).unwrap().is_some());
    assert!(
        nc.poll_transmit().is_none(),
        "a retransmission is not sent on"
    );
    // Floor Idle (8), then a late retransmission of the Floor Taken (7):
    // acknowledged, but the members keep what they were told last.
    let idle = Message::new(MessageType::FloorIdle, CALL_SSRC)
        .with(mcx_floor::Field::SequenceNumber(8))
        .with_ack_required(true);
    assert!(nc.handle_upstream(now, &idle).unwrap().is_some());
    let sent = Message::decode(&nc.poll_transmit().unwrap().contents).unwrap();
    assert_eq!(sent.message_type, MessageType::FloorIdle);
    assert!(nc.handle_upstream(now, &taken).unwrap().is_some());
    assert!(
        nc.poll_transmit().is_none(),
        "an overtaken message is not sent on"
    );
    assert!(!nc.floor_taken());
    // Numbers wrap: 0 comes after 65535.
    let wrapped = |seq| {
        Message::new(MessageType::FloorTaken, CALL_SSRC).with(mcx_floor::Field::SequenceNumber(seq))
    };
    let mut w = NonControlling::new(ArbitratorConfig::new(CALL_SSRC));
    w.add_member(now, ParticipantId(0));
    w.handle_upstream(now, &wrapped(65535)).unwrap();
    w.handle_upstream(now, &wrapped(0)).unwrap();
    assert_eq!(std::iter::from_fn(|| w.poll_transmit()).count(), 2);
    // Only Floor Taken and Floor Idle come leg-wide.
    let deny = Message::new(MessageType::FloorDeny, CALL_SSRC);
    assert!(nc.handle_upstream(now, &deny).is_err());
    // Without ack required (configured), members are not asked and no
    // timer runs.
    let mut quiet =
        NonControlling::new(ArbitratorConfig::new(CALL_SSRC).ack_required(false).clone());
    quiet.add_member(now, ParticipantId(0));
    quiet.handle_upstream(now, &taken).unwrap();
    let sent = Message::decode(&quiet.poll_transmit().unwrap().contents).unwrap();
    assert!(!sent.ack_required);
    assert_eq!(quiet.poll_timeout(), None);
}

/// A leg made room for its members (`reserve`) joins them as before: a
/// late joiner is sent Floor Taken once, and joining again changes nothing.
#[test]
fn a_member_joined_twice_is_told_once() {
    let mut nc = NonControlling::new(ArbitratorConfig::new(CALL_SSRC));
    nc.reserve(200);
    let now = Instant::now();
    let taken = Message::new(MessageType::FloorTaken, CALL_SSRC)
        .with(mcx_floor::Field::GrantedPartyIdentity(DISPATCHER.into()))
        .with(mcx_floor::Field::SequenceNumber(1));
    nc.handle_upstream(now, &taken).unwrap();
    assert!(nc.poll_transmit().is_none(), "no member yet");
    nc.add_member(now, ParticipantId(3));
    let sent = Message::decode(&nc.poll_transmit().unwrap().contents).unwrap();
    assert_eq!(sent.message_type, MessageType::FloorTaken);
    assert!(nc.awaiting_ack(ParticipantId(3)));
    nc.add_member(now, ParticipantId(3));
    assert!(nc.poll_transmit().is_none(), "joined already");
    assert!(nc.awaiting_ack(ParticipantId(3)));
    assert_eq!(nc.members(), 1);
}
