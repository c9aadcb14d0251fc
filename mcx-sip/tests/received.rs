//! The receiving side records the transport source in the top Via (RFC
//! 3261 18.2.1, RFC 3581): a sender's own `received`/`rport` claim is
//! replaced, the rest of the Via is kept.
#![allow(clippy::unwrap_used, missing_docs)]

use mcx_sip::Message;

const INVITE: &str = "INVITE sip:tg@mcx.test SIP/2.0\r\n\
Via: SIP/2.0/UDP dispatcher.mcx.test:5060;received=10.9.9.9;branch=z9hG4bK776;rport=1, SIP/2.0/UDP proxy:5060;branch=z9hG4bKp\r\n\
Via: SIP/2.0/UDP second:5060;branch=z9hG4bK2\r\n\
Max-Forwards: 70\r\n\
To: <sip:tg@mcx.test>\r\n\
From: <sip:dispatcher@mcx.test>;tag=1\r\n\
Call-ID: c1\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\r\n";

/// The via-parms after the top one and the second Via line are as sent.
fn assert_later_vias_kept(r: &mcx_sip::Request) {
    let text = String::from_utf8(r.to_bytes()).unwrap();
    assert!(
        text.contains(", SIP/2.0/UDP proxy:5060;branch=z9hG4bKp"),
        "{text}"
    );
    assert!(
        text.contains("Via: SIP/2.0/UDP second:5060;branch=z9hG4bK2"),
        "{text}"
    );
}

#[test]
fn the_stamp_replaces_the_senders_claim_and_keeps_the_rest() {
    let Message::Request(mut r) = Message::parse(INVITE.as_bytes()).unwrap() else {
        panic!()
    };
    // Before: the sender's claim is what it wrote.
    assert_eq!(r.source().as_deref(), Some("10.9.9.9:1"));
    r.stamp_received("192.0.2.7", 40123).unwrap();
    assert_eq!(r.source().as_deref(), Some("192.0.2.7:40123"));
    let v = r.top_via().unwrap();
    assert_eq!(v.branch.as_deref(), Some("z9hG4bK776"));
    assert_eq!(v.sent_by, "dispatcher.mcx.test:5060");
    assert_later_vias_kept(&r);
    // It survives a round trip through the parser.
    let Message::Request(again) = Message::parse(&r.to_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(again.source().as_deref(), Some("192.0.2.7:40123"));
    r.stamp_received("2001:db8::1", 5061).unwrap();
    assert_eq!(r.source().as_deref(), Some("[2001:db8::1]:5061"));
    assert!(r.stamp_received("a;b", 1).is_err());
}

/// A sending link names itself in the top Via (RFC 3261 18.1.1). The value
/// kept with the message must be what a parser reads from its octets, for
/// IPv4 and IPv6 sent-by, with and without further via-parms.
#[test]
fn the_top_via_set_by_a_sender_is_what_its_octets_parse_to() {
    let Message::Request(mut r) = Message::parse(INVITE.as_bytes()).unwrap() else {
        panic!()
    };
    let from_before = r.from().unwrap();
    for (transport, sent_by) in [("udp", "192.0.2.1:5070"), ("TCP", "[2001:db8::2]:5061")] {
        r.set_top_via(transport, sent_by, "z9hG4bKnew").unwrap();
        let kept = r.top_via().unwrap();
        let Message::Request(again) = Message::parse(&r.to_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(kept, again.top_via().unwrap());
        assert_eq!(kept.transport, transport.to_ascii_uppercase());
        assert_eq!(kept.sent_by, sent_by);
        assert_eq!(kept.branch.as_deref(), Some("z9hG4bKnew"));
        assert_eq!(
            again.source(),
            None,
            "the sender's received/rport claim is gone"
        );
        assert_later_vias_kept(&r);
        assert_eq!(r.from().unwrap(), from_before);
    }
    for bad in [
        ("UDP", "a b", "z9hG4bK1"),
        ("UDP", "h", "z9;x"),
        ("", "h", "z9hG4bK1"),
    ] {
        assert!(r.set_top_via(bad.0, bad.1, bad.2).is_err(), "{bad:?}");
    }
}

/// A link rewriting the Via its user wrote keeps the user's branch: the
/// same value and parsed Via as `set_top_via` with that branch, and the
/// further via-parms kept.
#[test]
fn a_sender_keeps_the_users_branch() {
    let Message::Request(mut r) = Message::parse(INVITE.as_bytes()).unwrap() else {
        panic!()
    };
    let branch = r.top_via_branch().unwrap().to_owned();
    let mut by_hand = r.clone();
    r.set_top_via_sent_by("udp", "192.0.2.1:5070").unwrap();
    by_hand
        .set_top_via("UDP", "192.0.2.1:5070", &branch)
        .unwrap();
    assert_eq!(r.header("Via"), by_hand.header("Via"));
    assert_eq!(r.top_via().unwrap(), by_hand.top_via().unwrap());
    assert_eq!(
        r.top_via().unwrap().branch.as_deref(),
        Some(branch.as_str())
    );
    let Message::Request(again) = Message::parse(&r.to_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(again.top_via().unwrap(), r.top_via().unwrap());
    assert_later_vias_kept(&r);
    // Twice in a row (the own text grows; the kept span moves on).
    r.set_top_via_sent_by("TCP", "192.0.2.9:5061").unwrap();
    assert_eq!(r.top_via().unwrap().sent_by, "192.0.2.9:5061");
    assert_eq!(
        r.top_via().unwrap().branch.as_deref(),
        Some(branch.as_str())
    );
    assert_later_vias_kept(&r);
    assert!(r.set_top_via_sent_by("UDP", "a b").is_err());
    let mut no_branch = by_hand;
    no_branch.headers_mut().set("Via", "SIP/2.0/UDP h").unwrap();
    assert!(no_branch.set_top_via_sent_by("UDP", "h2").is_err());
}

/// The stamp changes the Via only: From and To read after it are those of
/// the octets.
#[test]
fn a_stamp_keeps_from_and_to_as_parsed() {
    let Message::Request(mut r) = Message::parse(INVITE.as_bytes()).unwrap() else {
        panic!()
    };
    let (from, to) = (r.from().unwrap(), r.to().unwrap());
    r.stamp_received("192.0.2.7", 40123).unwrap();
    let Message::Request(again) = Message::parse(&r.to_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!((r.from().unwrap(), r.to().unwrap()), (from, to));
    assert_eq!(r.top_via().unwrap(), again.top_via().unwrap());
    assert_eq!(again.from().unwrap(), r.from().unwrap());
}

/// The branch a sending link keeps, read as text, is the one the parser
/// reads (and is read where the parser misses it).
#[test]
fn the_top_via_branch_read_as_text_is_the_parsed_one() {
    for via in [
        "SIP/2.0/UDP h:5060;branch=z9hG4bK776;rport",
        "SIP/2.0/UDP h:5060 ; rport ; BRANCH = z9hG4bKx , SIP/2.0/UDP p;branch=z9hG4bKp",
        "SIP/2.0/TCP [2001:db8::1]:5061;received=1.2.3.4;branch=z9hG4bK.a-b",
        "SIP/2.0/UDP h:5060;rport",
    ] {
        let text = INVITE.replacen(
            "dispatcher.mcx.test:5060;received=10.9.9.9;branch=z9hG4bK776;rport=1, SIP/2.0/UDP proxy:5060;branch=z9hG4bKp",
            via.trim_start_matches("SIP/2.0/UDP "),
            1,
        );
        let text = if via.starts_with("SIP/2.0/TCP") {
            text.replacen("Via: SIP/2.0/UDP SIP/2.0/TCP ", "Via: SIP/2.0/TCP ", 1)
        } else {
            text
        };
        let Message::Request(r) = Message::parse(text.as_bytes()).unwrap() else {
            panic!()
        };
        if via.contains("BRANCH") {
            // RFC 3261 25.1: parameter names are case-insensitive and
            // EQUAL allows whitespace around "=", which ezk's Via parser
            // does not read as the branch.
            assert_eq!(r.top_via_branch(), Some("z9hG4bKx"));
        } else {
            assert_eq!(
                r.top_via_branch(),
                r.top_via().unwrap().branch.as_deref(),
                "{via}"
            );
        }
    }
}
