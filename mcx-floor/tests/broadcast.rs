//! A temporary group – broadcast group call with an initiator and three
//! receivers over an in-memory network with a virtual clock (the quinn
//! `Pair` shape): grant, taken, a receiver's request denied with cause
//! #5, retransmissions when acks are lost, release → idle to all.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use mcx_floor::{
    ArbitratorConfig, ArbitratorEvent, ArbitratorState, BroadcastArbitrator, Error, Field,
    FloorIndicator, INITIATOR, Message, MessageType, Participant, ParticipantConfig,
    ParticipantEvent, ParticipantId, ParticipantState, RejectCause, RevokeCause,
};

const DISPATCHER: &str = "sip:dispatcher@example.org";
const SERVER_SSRC: u32 = 0xf100_0001;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    ToServer,
    ToClient,
}

/// Decides whether a packet is lost: (direction, participant, message,
/// how many packets of this direction/participant/type were seen before).
type Filter = Box<dyn FnMut(Dir, usize, &Message, usize) -> bool>;

struct Net {
    now: Instant,
    arb: BroadcastArbitrator,
    clients: Vec<Participant>,
    lose: Filter,
    /// Every packet offered to the network, lost or not.
    log: Vec<(Dir, usize, Message, Vec<u8>, bool)>,
    arb_events: Vec<ArbitratorEvent>,
    events: Vec<Vec<ParticipantEvent>>,
}

impl Net {
    fn new(receivers: usize) -> Self {
        let now = Instant::now();
        let mut config = ArbitratorConfig::new(SERVER_SSRC);
        config
            .retransmit_interval(Duration::from_millis(500))
            .max_transmissions(3);
        let mut arb = BroadcastArbitrator::new(config, DISPATCHER).unwrap();
        let mut clients =
            vec![Participant::new(ParticipantConfig::new(0x100, DISPATCHER)).unwrap()];
        for i in 1..=receivers {
            let user = format!("sip:user{i}@example.org");
            let id = arb.add_receiver(now, user.clone()).unwrap();
            assert_eq!(id, ParticipantId(i));
            clients.push(Participant::new(ParticipantConfig::new(0x100 + i as u32, user)).unwrap());
        }
        clients[0].start(now, true).unwrap();
        for c in &mut clients[1..] {
            c.start(now, false).unwrap();
        }
        Self {
            now,
            arb,
            clients,
            lose: Box::new(|_, _, _, _| false),
            log: Vec::new(),
            arb_events: Vec::new(),
            events: vec![Vec::new(); receivers + 1],
        }
    }

    fn seen(&self, dir: Dir, who: usize, t: MessageType) -> usize {
        self.log
            .iter()
            .filter(|(d, w, m, _, _)| *d == dir && *w == who && m.message_type == t)
            .count()
    }

    fn offer(&mut self, dir: Dir, who: usize, bytes: Vec<u8>) -> Option<Vec<u8>> {
        let m = Message::decode(&bytes).unwrap();
        let n = self.seen(dir, who, m.message_type);
        let lost = (self.lose)(dir, who, &m, n);
        self.log.push((dir, who, m, bytes.clone(), lost));
        (!lost).then_some(bytes)
    }

    /// Delivers packets until nobody has anything to send.
    fn deliver(&mut self) {
        loop {
            let mut progress = false;
            while let Some(t) = self.arb.poll_transmit() {
                progress = true;
                let who = t.destination.0;
                if let Some(b) = self.offer(Dir::ToClient, who, t.contents) {
                    let _ = self.clients[who].handle(self.now, &b);
                }
            }
            for who in 0..self.clients.len() {
                while let Some(b) = self.clients[who].poll_transmit() {
                    progress = true;
                    if let Some(b) = self.offer(Dir::ToServer, who, b) {
                        let _ = self.arb.handle(self.now, ParticipantId(who), &b);
                    }
                }
            }
            if !progress {
                break;
            }
        }
        while let Some(e) = self.arb.poll_event() {
            self.arb_events.push(e);
        }
        for (i, c) in self.clients.iter_mut().enumerate() {
            while let Some(e) = c.poll_event() {
                self.events[i].push(e);
            }
        }
    }

    fn next_timeout(&self) -> Option<Instant> {
        self.clients
            .iter()
            .filter_map(Participant::poll_timeout)
            .chain(self.arb.poll_timeout())
            .min()
    }

    /// Advances the clock to the next timeout, fires it, and delivers.
    fn advance(&mut self) -> bool {
        let Some(t) = self.next_timeout() else {
            return false;
        };
        self.now = self.now.max(t);
        self.arb.handle_timeout(self.now);
        for c in &mut self.clients {
            c.handle_timeout(self.now);
        }
        self.deliver();
        true
    }

    fn run(&mut self) {
        self.deliver();
        let mut n = 0;
        while self.advance() {
            n += 1;
            assert!(n < 100, "timers never settle");
        }
    }

    fn start(&mut self) {
        self.arb.start(self.now).unwrap();
        self.deliver();
    }

    fn sent_to_client(&self, who: usize, t: MessageType) -> Vec<&Message> {
        self.log
            .iter()
            .filter(|(d, w, m, _, _)| *d == Dir::ToClient && *w == who && m.message_type == t)
            .map(|(_, _, m, _, _)| m)
            .collect()
    }
}

const BROADCAST_TEMP: FloorIndicator = FloorIndicator(0x4100);

#[test]
fn broadcast_call_grant_taken_deny_release() {
    let mut net = Net::new(3);
    net.start();

    // The initiator is granted, with the broadcast + temporary group bits.
    assert_eq!(net.clients[0].state(), ParticipantState::HasPermission);
    assert_eq!(
        net.events[0],
        [ParticipantEvent::FloorGranted {
            duration: Some(300)
        }]
    );
    let granted = net.sent_to_client(0, MessageType::FloorGranted);
    assert_eq!(granted.len(), 1);
    assert!(granted[0].ack_required);
    assert_eq!(granted[0].subtype(), 0x11);
    assert_eq!(granted[0].floor_indicator(), Some(BROADCAST_TEMP));
    assert_eq!(net.arb_events, [ArbitratorEvent::FloorGranted(INITIATOR)]);

    // Every receiver gets Floor Taken: the initiator's identity, no
    // permission to request, sequence number 0.
    for r in 1..=3 {
        let taken = net.sent_to_client(r, MessageType::FloorTaken);
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].granted_party(), Some(DISPATCHER));
        assert_eq!(taken[0].permission_to_request(), Some(false));
        assert_eq!(taken[0].sequence_number(), Some(0));
        assert_eq!(taken[0].floor_indicator(), Some(BROADCAST_TEMP));
        assert_eq!(net.clients[r].state(), ParticipantState::HasNoPermission);
        assert!(!net.clients[r].permission_to_request());
        assert_eq!(
            net.events[r],
            [ParticipantEvent::FloorTaken {
                granted_party: Some(DISPATCHER.into()),
                permission_to_request: false
            }]
        );
        assert_eq!(net.seen(Dir::ToServer, r, MessageType::FloorAck), 1);
    }
    assert!(!net.arb.awaiting_acks(), "every message acknowledged");
    assert_eq!(net.arb.poll_timeout(), None);

    // A well-behaved receiver may not even ask.
    assert_eq!(
        net.clients[1].request_floor(net.now),
        Err(Error::NotPermitted)
    );
    // A receiver that asks anyway is denied: cause #5 "receive only".
    let request = Message::new(MessageType::FloorRequest, 0x102)
        .with(Field::FloorPriority(0))
        .to_bytes()
        .unwrap();
    net.arb.handle(net.now, ParticipantId(2), &request).unwrap();
    net.deliver();
    let deny = net.sent_to_client(2, MessageType::FloorDeny);
    assert_eq!(deny.len(), 1);
    assert_eq!(
        deny[0].reject_cause(),
        Some((RejectCause::RECEIVE_ONLY, "receive only"))
    );
    assert_eq!(
        net.events[2].last(),
        Some(&ParticipantEvent::FloorDenied {
            cause: RejectCause::RECEIVE_ONLY,
            phrase: "receive only".into()
        })
    );
    assert_eq!(
        net.arb_events.last(),
        Some(&ArbitratorEvent::RequestDenied {
            from: ParticipantId(2),
            cause: RejectCause::RECEIVE_ONLY
        })
    );
    // The initiator asking again just gets Floor Granted again.
    net.arb.handle(net.now, INITIATOR, &request).unwrap();
    net.deliver();
    assert_eq!(net.sent_to_client(0, MessageType::FloorGranted).len(), 2);
    assert_eq!(net.clients[0].state(), ParticipantState::HasPermission);

    // The initiator releases: Floor Idle (permission 0) to all, call ended.
    net.clients[0].release_floor(net.now).unwrap();
    net.deliver();
    assert_eq!(net.arb.state(), ArbitratorState::Ended);
    assert_eq!(net.arb_events.last(), Some(&ArbitratorEvent::CallEnded));
    for r in 0..=3 {
        let idle = net.sent_to_client(r, MessageType::FloorIdle);
        assert_eq!(idle.len(), 1, "participant {r}");
        assert_eq!(idle[0].permission_to_request(), Some(false));
        assert!(idle[0].ack_required);
        // Sequence numbers increase per message to each participant.
        assert_eq!(idle[0].sequence_number(), Some(if r == 0 { 0 } else { 1 }));
        assert_eq!(net.clients[r].state(), ParticipantState::HasNoPermission);
        assert_eq!(
            net.events[r].last(),
            Some(&ParticipantEvent::FloorIdle {
                permission_to_request: false
            })
        );
    }
    assert_eq!(net.clients[0].poll_timeout(), None, "T100 stopped");
    assert!(!net.arb.awaiting_acks());
    net.run();
    assert_eq!(net.log.iter().filter(|l| l.4).count(), 0);
}

#[test]
fn lost_acks_and_lost_taken_are_retransmitted() {
    let mut net = Net::new(3);
    // Lose the first Floor Taken to receiver 3 and the first Floor Ack
    // from receiver 1.
    net.lose = Box::new(|dir, who, m, n| {
        n == 0
            && ((dir == Dir::ToClient && who == 3 && m.message_type == MessageType::FloorTaken)
                || (dir == Dir::ToServer && who == 1 && m.message_type == MessageType::FloorAck))
    });
    net.start();
    assert!(net.arb.awaiting_acks());
    assert_eq!(
        net.arb.poll_timeout(),
        Some(net.now + Duration::from_millis(500))
    );

    // Receiver 3 never heard Floor Taken, so it believes it may ask; the
    // server denies it with cause #5.
    assert!(net.clients[3].permission_to_request());
    net.clients[3].request_floor(net.now).unwrap();
    assert_eq!(net.clients[3].state(), ParticipantState::PendingRequest);
    net.deliver();
    assert_eq!(net.clients[3].state(), ParticipantState::HasNoPermission);
    assert_eq!(
        net.events[3],
        [ParticipantEvent::FloorDenied {
            cause: RejectCause::RECEIVE_ONLY,
            phrase: "receive only".into()
        }]
    );
    assert_eq!(net.clients[3].poll_timeout(), None, "T101 stopped");

    // At +500 ms the server retransmits the two unacknowledged Floor Taken.
    let t0 = net.now;
    assert!(net.advance());
    assert_eq!(net.now, t0 + Duration::from_millis(500));
    for r in [1, 3] {
        let sent: Vec<_> = net
            .log
            .iter()
            .filter(|l| {
                l.0 == Dir::ToClient && l.1 == r && l.2.message_type == MessageType::FloorTaken
            })
            .collect();
        assert_eq!(sent.len(), 2, "receiver {r}");
        assert_eq!(sent[0].3, sent[1].3, "a retransmission is the same packet");
    }
    assert_eq!(net.seen(Dir::ToClient, 2, MessageType::FloorTaken), 1);
    assert!(!net.arb.awaiting_acks());
    // Receiver 1 saw the same Floor Taken twice: one event.
    assert_eq!(net.events[1].len(), 1);
    assert!(!net.clients[3].permission_to_request());
    assert!(matches!(
        net.events[3].last(),
        Some(ParticipantEvent::FloorTaken {
            permission_to_request: false,
            ..
        })
    ));
    net.run();
}

#[test]
fn silent_receiver_times_out_after_three_transmissions() {
    let mut net = Net::new(3);
    net.lose = Box::new(|dir, who, _, _| dir == Dir::ToServer && who == 2);
    net.start();
    net.run();
    assert_eq!(net.seen(Dir::ToClient, 2, MessageType::FloorTaken), 3);
    assert_eq!(
        net.arb_events.last(),
        Some(&ArbitratorEvent::AckTimeout {
            participant: ParticipantId(2),
            message_type: MessageType::FloorTaken
        })
    );
    assert!(!net.arb.awaiting_acks());
}

#[test]
fn lost_release_is_retransmitted_on_t100() {
    let mut net = Net::new(2);
    net.lose = Box::new(|dir, _, m, n| {
        dir == Dir::ToServer && m.message_type == MessageType::FloorRelease && n == 0
    });
    net.start();
    net.clients[0].release_floor(net.now).unwrap();
    net.deliver();
    assert_eq!(net.clients[0].state(), ParticipantState::PendingRelease);
    assert_eq!(net.arb.state(), ArbitratorState::Taken);
    let t0 = net.now;
    assert!(net.advance());
    assert_eq!(net.now, t0 + Duration::from_millis(40));
    assert_eq!(net.arb.state(), ArbitratorState::Ended);
    assert_eq!(net.clients[0].state(), ParticipantState::HasNoPermission);
    assert_eq!(net.seen(Dir::ToServer, 0, MessageType::FloorRelease), 2);
    net.run();
    assert_eq!(
        net.arb_events
            .iter()
            .filter(|e| **e == ArbitratorEvent::CallEnded)
            .count(),
        1
    );
}

#[test]
fn late_receiver_gets_floor_taken() {
    let mut net = Net::new(1);
    net.start();
    let id = net
        .arb
        .add_receiver(net.now, "sip:late@example.org")
        .unwrap();
    let t = net.arb.poll_transmit().unwrap();
    assert_eq!(t.destination, id);
    let m = Message::decode(&t.contents).unwrap();
    assert_eq!(m.message_type, MessageType::FloorTaken);
    assert_eq!(m.granted_party(), Some(DISPATCHER));
}

#[test]
fn arbitrator_refusals() {
    let mut net = Net::new(1);
    let now = net.now;
    let release = Message::new(MessageType::FloorRelease, 0x100)
        .to_bytes()
        .unwrap();
    // Before start: release from the initiator is ignored; Granted from a
    // client is a protocol violation.
    net.arb.handle(now, INITIATOR, &release).unwrap();
    let granted = Message::new(MessageType::FloorGranted, 0x100)
        .to_bytes()
        .unwrap();
    assert_eq!(
        net.arb.handle(now, INITIATOR, &granted),
        Err(Error::UnexpectedMessage {
            got: MessageType::FloorGranted,
            state: "G: start-stop"
        })
    );
    assert_eq!(
        net.arb.handle(now, ParticipantId(9), &release),
        Err(Error::UnknownParticipant(9))
    );
    assert!(matches!(
        net.arb.handle(now, INITIATOR, &[0x80]),
        Err(Error::Decode(_))
    ));
    net.arb.start(now).unwrap();
    assert!(matches!(
        net.arb.start(now),
        Err(Error::InvalidCommand {
            command: "start",
            ..
        })
    ));
}

#[test]
fn release_with_ack_bit_is_acknowledged() {
    let mut net = Net::new(1);
    net.start();
    let release = Message::new(MessageType::FloorRelease, 0x100)
        .with_ack_required(true)
        .to_bytes()
        .unwrap();
    net.arb.handle(net.now, INITIATOR, &release).unwrap();
    let ack = Message::decode(&net.arb.poll_transmit().unwrap().contents).unwrap();
    assert_eq!(ack.message_type, MessageType::FloorAck);
    assert_eq!(ack.acked_message_type(), Some(0x14));
    assert_eq!(ack.source(), Some(mcx_floor::Source::CONTROLLING));
}

fn participant() -> (Participant, Instant) {
    let now = Instant::now();
    let mut p = Participant::new(ParticipantConfig::new(7, "sip:a@example.org")).unwrap();
    p.start(now, false).unwrap();
    (p, now)
}

fn from_server(m: Message) -> Vec<u8> {
    m.to_bytes().unwrap()
}

#[test]
fn participant_request_times_out_after_c101() {
    let (mut p, now) = participant();
    p.request_floor(now).unwrap();
    let first = p.poll_transmit().unwrap();
    let m = Message::decode(&first).unwrap();
    assert_eq!(m.message_type, MessageType::FloorRequest);
    assert_eq!(m.floor_priority(), Some(0));
    let mut t = now;
    let mut sent = 1;
    while let Some(deadline) = p.poll_timeout() {
        assert_eq!(deadline, t + Duration::from_millis(500));
        t = deadline;
        p.handle_timeout(t);
        while let Some(b) = p.poll_transmit() {
            assert_eq!(b, first);
            sent += 1;
        }
    }
    assert_eq!(sent, 3);
    assert_eq!(p.state(), ParticipantState::HasNoPermission);
    assert_eq!(p.poll_event(), Some(ParticipantEvent::RequestTimedOut));
}

#[test]
fn participant_granted_then_revoked() {
    let (mut p, now) = participant();
    p.request_floor(now).unwrap();
    let _ = p.poll_transmit();
    p.handle(
        now,
        &from_server(
            Message::new(MessageType::FloorGranted, SERVER_SSRC)
                .with_ack_required(true)
                .with(Field::Duration(30)),
        ),
    )
    .unwrap();
    assert_eq!(p.state(), ParticipantState::HasPermission);
    let ack = Message::decode(&p.poll_transmit().unwrap()).unwrap();
    assert_eq!(ack.message_type, MessageType::FloorAck);
    assert_eq!(ack.acked_message_type(), Some(0x11));
    assert_eq!(
        p.poll_event(),
        Some(ParticipantEvent::FloorGranted { duration: Some(30) })
    );
    p.handle(
        now,
        &from_server(Message::new(MessageType::FloorRevoke, SERVER_SSRC).with(
            Field::RejectCause {
                cause: RejectCause(2),
                phrase: String::new(),
            },
        )),
    )
    .unwrap();
    assert_eq!(
        p.poll_event(),
        Some(ParticipantEvent::FloorRevoked {
            cause: RevokeCause::MEDIA_BURST_TOO_LONG
        })
    );
    assert_eq!(p.state(), ParticipantState::PendingRelease);
    let release = Message::decode(&p.poll_transmit().unwrap()).unwrap();
    assert_eq!(release.message_type, MessageType::FloorRelease);
    assert_eq!(release.user_id(), Some("sip:a@example.org"));
    // A Floor Ack for the release ends 'U: pending Release'.
    p.handle(
        now,
        &from_server(Message::new(MessageType::FloorAck, SERVER_SSRC).with(Field::MessageType(4))),
    )
    .unwrap();
    assert_eq!(p.state(), ParticipantState::HasNoPermission);
    assert_eq!(p.poll_timeout(), None);
}

#[test]
fn participant_refusals() {
    let (mut p, now) = participant();
    assert!(matches!(
        p.release_floor(now),
        Err(Error::InvalidCommand {
            command: "release floor",
            ..
        })
    ));
    assert!(matches!(
        p.start(now, false),
        Err(Error::InvalidCommand { .. })
    ));
    assert_eq!(
        p.handle(
            now,
            &from_server(Message::new(MessageType::FloorGranted, 1))
        ),
        Err(Error::UnexpectedMessage {
            got: MessageType::FloorGranted,
            state: "U: has no permission"
        })
    );
    assert!(matches!(p.handle(now, &[1, 2, 3]), Err(Error::Decode(_))));
    p.leave();
    assert_eq!(p.state(), ParticipantState::Released);
    assert!(matches!(
        p.handle(now, &from_server(Message::new(MessageType::FloorIdle, 1))),
        Err(Error::UnexpectedMessage { .. })
    ));
    assert_eq!(p.poll_transmit(), None);
}
