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
    let text = String::from_utf8(r.to_bytes()).unwrap();
    assert!(
        text.contains(", SIP/2.0/UDP proxy:5060;branch=z9hG4bKp"),
        "{text}"
    );
    assert!(
        text.contains("Via: SIP/2.0/UDP second:5060;branch=z9hG4bK2"),
        "{text}"
    );
    // It survives a round trip through the parser.
    let Message::Request(again) = Message::parse(&r.to_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(again.source().as_deref(), Some("192.0.2.7:40123"));
    r.stamp_received("2001:db8::1", 5061).unwrap();
    assert_eq!(r.source().as_deref(), Some("[2001:db8::1]:5061"));
    assert!(r.stamp_received("a;b", 1).is_err());
}
