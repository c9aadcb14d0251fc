//! Transaction state machines (RFC 3261 17, RFC 6026) under a virtual clock.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use mcx_sip::{
    Dialog, Event, Message, Method, Remote, Request, Response, State, StatusCode, Timers,
    TransactionLayer, Transport, TxKey,
};

fn remote(t: Transport) -> Remote {
    Remote {
        addr: "192.0.2.9:5060".parse().unwrap(),
        transport: t,
    }
}

fn request(method: Method, branch: &str) -> Request {
    Request::builder(method, "sip:group@example.org")
        .via("UDP", "192.0.2.1:5060", branch)
        .max_forwards(70)
        .from(None, "sip:d@example.org", "ftag")
        .to(None, "sip:group@example.org", None)
        .call_id("call-1@192.0.2.1")
        .cseq(1)
        .contact("<sip:d@192.0.2.1:5060>")
        .build()
        .unwrap()
}

fn response(req: &Request, code: u16) -> Response {
    let mut r = Response::for_request(
        req,
        StatusCode(code),
        if code > 100 { Some("ttag") } else { None },
    )
    .unwrap();
    if code / 100 == 2 {
        r.headers_mut()
            .push("Contact", "<sip:group@192.0.2.9:5060>")
            .unwrap();
    }
    r
}

/// Drives the layer to the next timeout until `end`, recording (seconds since t0, transmit count).
fn drive(layer: &mut TransactionLayer, t0: Instant, end: Duration) -> (Vec<f64>, Vec<Event>) {
    let mut sends = Vec::new();
    let mut events = Vec::new();
    while let Some(at) = layer.poll_timeout() {
        if at > t0 + end {
            break;
        }
        layer.handle_timeout(at);
        while layer.poll_transmit().is_some() {
            sends.push((at - t0).as_secs_f64());
        }
        while let Some(e) = layer.poll_event() {
            events.push(e);
        }
    }
    (sends, events)
}

fn drain(layer: &mut TransactionLayer) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| layer.poll_transmit())
        .map(|t| t.bytes.to_vec())
        .collect()
}

#[test]
fn udp_invite_client_retransmits_until_timer_b() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(Timers::RFC3261);
    let req = request(Method::Invite, "z9hG4bKa");
    let key = l
        .send_request(t0, remote(Transport::Udp), req.clone())
        .unwrap();
    assert_eq!(drain(&mut l).len(), 1);
    assert_eq!(l.state(&key), Some(State::Calling));
    let (sends, events) = drive(&mut l, t0, Duration::from_secs(60));
    // Timer A: T1, 2*T1, 4*T1… (RFC 3261 17.1.1.2), Timer B = 64*T1 = 32 s.
    assert_eq!(sends, vec![0.5, 1.5, 3.5, 7.5, 15.5, 31.5]);
    // The request comes back for the TU's 408 (RFC 3261 8.1.3.1).
    assert_eq!(
        events,
        vec![Event::Timeout {
            key,
            request: Some(req),
            user: ()
        }]
    );
    assert!(l.is_empty());
}

#[test]
fn udp_non_invite_client_timer_e_f() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(Timers::RFC3261);
    let req = request(Method::Options, "z9hG4bKe");
    let key = l
        .send_request(t0, remote(Transport::Udp), req.clone())
        .unwrap();
    let _ = drain(&mut l);
    let (sends, events) = drive(&mut l, t0, Duration::from_secs(60));
    // Timer E doubles up to T2 = 4 s (17.1.2.2); Timer F = 32 s.
    assert_eq!(
        sends,
        vec![0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    );
    assert_eq!(
        events,
        vec![Event::Timeout {
            key,
            request: Some(req),
            user: ()
        }]
    );
}

#[test]
fn non_invite_proceeding_retransmits_every_t2_and_final_ends_with_timer_k() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(Timers::RFC3261);
    let req = request(Method::Options, "z9hG4bKp");
    let key = l
        .send_request(t0, remote(Transport::Udp), req.clone())
        .unwrap();
    let _ = drain(&mut l);
    l.handle_incoming(
        t0 + Duration::from_millis(100),
        remote(Transport::Udp),
        response(&req, 180).into(),
    );
    assert_eq!(l.state(&key), Some(State::Proceeding));
    let (sends, _) = drive(&mut l, t0, Duration::from_secs(5));
    assert_eq!(sends, vec![0.5, 4.5]);
    let t = t0 + Duration::from_secs(6);
    l.handle_incoming(t, remote(Transport::Udp), response(&req, 200).into());
    assert_eq!(l.state(&key), Some(State::Completed));
    let evs: Vec<_> = std::iter::from_fn(|| l.poll_event()).collect();
    assert_eq!(evs.len(), 1, "the 200 passed up (drive() took the 180)");
    // retransmitted final absorbed
    l.handle_incoming(t, remote(Transport::Udp), response(&req, 200).into());
    assert!(l.poll_event().is_none());
    assert_eq!(
        l.poll_timeout(),
        Some(t + Duration::from_secs(5)),
        "Timer K = T4"
    );
    l.handle_timeout(t + Duration::from_secs(5));
    assert!(l.is_empty());
}

#[test]
fn tcp_client_never_retransmits() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(Timers::RFC3261);
    let req = request(Method::Invite, "z9hG4bKt");
    let key = l
        .send_request(t0, remote(Transport::Tcp), req.clone())
        .unwrap();
    assert_eq!(drain(&mut l).len(), 1);
    assert_eq!(l.poll_timeout(), Some(t0 + Duration::from_secs(32)));
    let (sends, events) = drive(&mut l, t0, Duration::from_secs(60));
    assert!(sends.is_empty());
    assert_eq!(
        events,
        vec![Event::Timeout {
            key,
            request: Some(req),
            user: ()
        }]
    );
}

#[test]
fn invite_client_acks_non_2xx_and_absorbs_retransmissions() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(Timers::RFC3261);
    let inv = request(Method::Invite, "z9hG4bKn");
    let key = l
        .send_request(t0, remote(Transport::Udp), inv.clone())
        .unwrap();
    let _ = drain(&mut l);
    let busy = response(&inv, 486);
    l.handle_incoming(t0, remote(Transport::Udp), busy.clone().into());
    assert_eq!(l.state(&key), Some(State::Completed));
    let acks = drain(&mut l);
    assert_eq!(acks.len(), 1);
    let Message::Request(ack) = Message::parse(&acks[0]).unwrap() else {
        panic!()
    };
    assert_eq!(*ack.method(), Method::Ack);
    assert_eq!(ack.cseq().unwrap(), (1, Method::Ack));
    assert_eq!(
        ack.top_via().unwrap().branch.as_deref(),
        Some("z9hG4bKn"),
        "same branch (17.1.1.3)"
    );
    assert_eq!(ack.to().unwrap().tag.as_deref(), Some("ttag"));
    assert!(matches!(l.poll_event(), Some(Event::Response { .. })));
    // the retransmitted 486 gets the ACK again, and is not passed up
    l.handle_incoming(
        t0 + Duration::from_secs(1),
        remote(Transport::Udp),
        busy.into(),
    );
    assert_eq!(drain(&mut l), acks);
    assert!(l.poll_event().is_none());
    // Timer D = 32 s
    assert_eq!(l.poll_timeout(), Some(t0 + Duration::from_secs(32)));
    l.handle_timeout(t0 + Duration::from_secs(32));
    assert!(l.is_empty());
}

#[test]
fn invite_client_accepted_passes_every_2xx_and_dialog_builds_ack_and_bye() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(Timers::RFC3261);
    let inv = request(Method::Invite, "z9hG4bK2");
    let key = l
        .send_request(t0, remote(Transport::Udp), inv.clone())
        .unwrap();
    let ok = response(&inv, 200);
    // a response with another CSeq method does not match (17.1.3)
    let mut other = ok.clone();
    other.headers_mut().set("CSeq", "1 OPTIONS").unwrap();
    l.handle_incoming(t0, remote(Transport::Udp), other.into());
    assert!(l.poll_event().is_none());
    for _ in 0..2 {
        l.handle_incoming(t0, remote(Transport::Udp), ok.clone().into());
        assert_eq!(
            l.poll_event(),
            Some(Event::Response {
                key: key.clone(),
                handle: l.find(&key).unwrap(),
                response: ok.clone()
            })
        );
    }
    assert_eq!(l.state(&key), Some(State::Accepted));
    let _ = drain(&mut l);
    assert_eq!(
        l.poll_timeout(),
        Some(t0 + Duration::from_secs(32)),
        "Timer M = 64*T1"
    );

    let mut d = Dialog::uac(&inv, &ok).unwrap();
    assert_eq!(d.id.remote_tag, "ttag");
    let ack = d.ack(("UDP", "192.0.2.1:5060"), [1; 8]).unwrap();
    assert_eq!(ack.uri(), "sip:group@192.0.2.9:5060");
    assert_eq!(ack.cseq().unwrap(), (1, Method::Ack));
    l.send_stateless(remote(Transport::Udp), &ack.into());
    assert_eq!(drain(&mut l).len(), 1);
    let bye = d
        .request_in_dialog(Method::Bye, ("UDP", "192.0.2.1:5060"), [2; 8])
        .unwrap();
    assert_eq!(bye.cseq().unwrap(), (2, Method::Bye));
    assert_eq!(bye.to().unwrap().tag.as_deref(), Some("ttag"));
    Message::parse(&bye.to_bytes()).unwrap();
}

#[test]
fn invite_server_trying_retransmissions_timer_g_and_ack() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(Timers::RFC3261);
    let inv = request(Method::Invite, "z9hG4bKs");
    l.handle_incoming(t0, remote(Transport::Udp), inv.clone().into());
    let Some(Event::Request { key, .. }) = l.poll_event() else {
        panic!()
    };
    assert_eq!(l.state(&key), Some(State::Proceeding));
    // 100 Trying after 200 ms (17.2.1)
    assert_eq!(l.poll_timeout(), Some(t0 + Duration::from_millis(200)));
    l.handle_timeout(t0 + Duration::from_millis(200));
    let trying = drain(&mut l);
    let Message::Response(r) = Message::parse(&trying[0]).unwrap() else {
        panic!()
    };
    assert_eq!(r.status(), StatusCode::TRYING);
    // a retransmitted INVITE gets the last provisional again, and is not passed up
    l.handle_incoming(
        t0 + Duration::from_millis(500),
        remote(Transport::Udp),
        inv.clone().into(),
    );
    assert_eq!(drain(&mut l), trying);
    assert!(l.poll_event().is_none());
    // 403: Timer G retransmits (T1, doubling to T2)
    let t1 = t0 + Duration::from_secs(1);
    l.send_response(t1, &key, response(&inv, 403)).unwrap();
    let final_ = drain(&mut l);
    let (sends, _) = drive(&mut l, t1, Duration::from_millis(11_600));
    assert_eq!(sends, vec![0.5, 1.5, 3.5, 7.5, 11.5]);
    // a retransmitted INVITE gets the 403 again
    l.handle_incoming(
        t1 + Duration::from_secs(12),
        remote(Transport::Udp),
        inv.clone().into(),
    );
    assert_eq!(drain(&mut l), final_);
    // the ACK (same branch) moves to Confirmed; retransmissions stop; Timer I = T4
    let ack = mcx_sip::ack_for_non2xx(&inv, &response(&inv, 403)).unwrap();
    let ta = t1 + Duration::from_secs(13);
    l.handle_incoming(ta, remote(Transport::Udp), ack.clone().into());
    assert_eq!(l.state(&key), Some(State::Confirmed));
    l.handle_incoming(ta, remote(Transport::Udp), ack.into());
    assert!(l.poll_event().is_none(), "ACKs absorbed");
    assert_eq!(l.poll_timeout(), Some(ta + Duration::from_secs(5)));
    l.handle_timeout(ta + Duration::from_secs(5));
    assert!(l.is_empty());
    assert!(drain(&mut l).is_empty());
}

#[test]
fn invite_server_timer_h_without_ack() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(Timers::RFC3261);
    let inv = request(Method::Invite, "z9hG4bKh");
    l.handle_incoming(t0, remote(Transport::Udp), inv.clone().into());
    let Some(Event::Request { key, .. }) = l.poll_event() else {
        panic!()
    };
    l.send_response(t0, &key, response(&inv, 486)).unwrap();
    assert!(
        l.send_response(t0, &key, response(&inv, 200)).is_err(),
        "one final response"
    );
    let _ = drain(&mut l);
    assert!(l.poll_timeout().is_some());
    let (_, events) = drive(&mut l, t0, Duration::from_secs(40));
    // A server transaction has no request for the TU.
    assert_eq!(
        events,
        vec![Event::Timeout {
            key,
            request: None,
            user: ()
        }]
    );
}

#[test]
fn invite_server_2xx_accepted_absorbs_and_passes_ack_to_tu() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(Timers::RFC3261);
    let inv = request(Method::Invite, "z9hG4bKok");
    l.handle_incoming(t0, remote(Transport::Udp), inv.clone().into());
    let Some(Event::Request { key, .. }) = l.poll_event() else {
        panic!()
    };
    // the TU answered within 200 ms: no 100 Trying
    let ok = response(&inv, 200);
    l.send_response(t0 + Duration::from_millis(50), &key, ok.clone())
        .unwrap();
    assert_eq!(drain(&mut l).len(), 1);
    assert_eq!(l.state(&key), Some(State::Accepted));
    // retransmitted INVITE absorbed (RFC 6026 8.7), TU 2xx retransmission passes
    l.handle_incoming(
        t0 + Duration::from_millis(500),
        remote(Transport::Udp),
        inv.clone().into(),
    );
    assert!(drain(&mut l).is_empty());
    l.send_response(t0 + Duration::from_millis(500), &key, ok.clone())
        .unwrap();
    assert_eq!(drain(&mut l).len(), 1);
    // the ACK for 2xx has its own branch: it goes to the TU
    let d = Dialog::uac(&inv, &ok).unwrap();
    let ack = d.ack(("UDP", "192.0.2.1:5060"), [3; 8]).unwrap();
    l.handle_incoming(
        t0 + Duration::from_secs(1),
        remote(Transport::Udp),
        ack.clone().into(),
    );
    assert!(matches!(l.poll_event(), Some(Event::Ack { request, .. }) if request == ack));
    let (sends, _) = drive(&mut l, t0, Duration::from_secs(40));
    assert!(sends.is_empty(), "no 100 Trying after the TU answered");
    assert!(l.is_empty(), "Timer L ended it");
}

#[test]
fn non_invite_server_absorbs_then_resends_final_and_tcp_ends_at_once() {
    let t0 = Instant::now();
    for transport in [Transport::Udp, Transport::Tcp] {
        let mut l = TransactionLayer::new(Timers::RFC3261);
        let req = request(Method::Options, "z9hG4bKo");
        l.handle_incoming(t0, remote(transport), req.clone().into());
        let Some(Event::Request { key, .. }) = l.poll_event() else {
            panic!()
        };
        assert_eq!(l.state(&key), Some(State::Trying));
        l.handle_incoming(t0, remote(transport), req.clone().into());
        assert!(
            l.poll_event().is_none() && drain(&mut l).is_empty(),
            "absorbed in Trying"
        );
        l.send_response(t0, &key, response(&req, 200)).unwrap();
        let final_ = drain(&mut l);
        if transport == Transport::Tcp {
            assert!(l.is_empty(), "Timer J = 0 on TCP");
            continue;
        }
        l.handle_incoming(
            t0 + Duration::from_secs(1),
            remote(transport),
            req.clone().into(),
        );
        assert_eq!(drain(&mut l), final_);
        assert_eq!(
            l.poll_timeout(),
            Some(t0 + Duration::from_secs(32)),
            "Timer J = 64*T1"
        );
        l.handle_timeout(t0 + Duration::from_secs(32));
        assert!(l.is_empty());
    }
}

#[test]
fn send_request_checks() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(Timers::RFC3261);
    assert_eq!(
        l.send_request(t0, remote(Transport::Udp), request(Method::Ack, "z9hG4bKx")),
        Err(mcx_sip::TxError::AckTransaction)
    );
    l.send_request(t0, remote(Transport::Udp), request(Method::Bye, "z9hG4bKx"))
        .unwrap();
    assert_eq!(
        l.send_request(t0, remote(Transport::Udp), request(Method::Bye, "z9hG4bKx")),
        Err(mcx_sip::TxError::InvalidState)
    );
    let bogus = TxKey {
        role: mcx_sip::Role::Server,
        branch: "x".into(),
        sent_by: "y".into(),
        method: Method::Bye,
    };
    assert_eq!(
        l.send_response(t0, &bogus, Response::new(StatusCode::OK).unwrap()),
        Err(mcx_sip::TxError::NoTransaction)
    );
    let info = request(Method::Info, "z9hG4bKy");
    let key = l
        .send_request(t0, remote(Transport::Udp), info.clone())
        .unwrap();
    l.handle_transport_error(&key);
    assert_eq!(
        l.poll_event(),
        Some(Event::TransportError {
            key,
            request: Some(info),
            user: ()
        })
    );
}

/// A transport error after the final response has nothing left to report:
/// the TU already has its answer, so the event carries no request (no 503).
#[test]
fn transport_error_after_the_final_response_carries_no_request() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(Timers::RFC3261);
    let inv = request(Method::Invite, "z9hG4bKte");
    let key = l
        .send_request(t0, remote(Transport::Udp), inv.clone())
        .unwrap();
    l.handle_incoming(t0, remote(Transport::Udp), response(&inv, 486).into());
    assert!(matches!(l.poll_event(), Some(Event::Response { .. })));
    l.handle_transport_error(&key);
    assert_eq!(
        l.poll_event(),
        Some(Event::TransportError {
            key,
            request: None,
            user: ()
        })
    );
}
