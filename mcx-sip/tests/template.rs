//! Requests written once for many recipients (`RequestTemplate`): a filled
//! template is, octet for octet, the request built and encoded the usual
//! way with those values; what could change a message's structure is
//! refused; the transaction layer sends an encoded request as it is and
//! still has it for its rare paths (the ACK for a non-2xx, a timeout).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use mcx_sip::{
    BuildError, Event, Limits, Message, Method, Remote, Request, RequestTemplate, Response, Slot,
    StatusCode, Timers, TransactionLayer, Transport,
};

const BRANCH: &str = "z9hG4bK-marker-branch";
const TAG: &str = "marker-tag";
const CALL_ID: &str = "marker-call-id@host.example";
const TO: &str = "<sip:marker-to@example.org>";

/// The INVITE with these values, built and encoded as a role does.
fn invite(branch: &str, tag: &str, to: &str, call_id: &str) -> Request {
    let mut r = Request::builder(Method::Invite, "sip:group-a@example.org")
        .via("UDP", "mcs.example.org", branch)
        .max_forwards(70)
        .from(Some("Group A"), "sip:group-a@example.org", tag)
        .to(None, "sip:placeholder@example.org", None)
        .call_id(call_id)
        .cseq(1)
        .contact("<sip:mcs@mcs.example.org>")
        .header("P-Asserted-Identity", "<sip:dispatcher@example.org>")
        .body(
            "application/sdp",
            &b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"[..],
        )
        .build()
        .unwrap();
    r.headers_mut().set("To", to).unwrap();
    r
}

fn template() -> RequestTemplate {
    RequestTemplate::new(
        &invite(BRANCH, TAG, TO, CALL_ID),
        &[
            (Slot::To, TO),
            (Slot::Branch, BRANCH),
            (Slot::FromTag, TAG),
            (Slot::CallId, CALL_ID),
        ],
        Limits::UDP,
    )
    .unwrap()
}

#[test]
fn a_filled_template_is_the_request_built_with_those_values() {
    let t = template();
    for (i, to) in [
        "<sip:m1@example.org>",
        "\"Member Two\" <sip:m-two@example.org;transport=udp>",
        "sip:3@example.org",
    ]
    .into_iter()
    .enumerate()
    {
        let branch = format!("z9hG4bK{i:x}a9c3");
        let tag = format!("t{i}");
        let call_id = format!("{i}f00d{i}@mcs.example.org");
        let filled = t.fill(&[to, &branch, &tag, &call_id]).unwrap();
        let built = invite(&branch, &tag, to, &call_id);
        assert_eq!(filled.bytes(), &built.to_bytes()[..], "recipient {i}");
        assert_eq!(filled.branch(), branch);
        assert_eq!(filled.call_id(), call_id);
        assert_eq!(*filled.method(), Method::Invite);
        assert_eq!(filled.uri(), "sip:group-a@example.org");
        // And our parser reads the values back where they belong.
        let Ok(Message::Request(parsed)) = mcx_sip::parse_datagram(filled.bytes(), &Limits::UDP)
        else {
            panic!("filled template does not parse");
        };
        assert_eq!(parsed.header("To"), Some(to));
        assert_eq!(parsed.call_id().unwrap(), call_id);
        assert_eq!(parsed.from().unwrap().tag.as_deref(), Some(tag.as_str()));
    }
}

#[test]
fn the_transport_via_is_what_a_built_request_gets() {
    let t = template();
    let mut filled = t
        .fill(&["<sip:m1@example.org>", "z9hG4bK77", "t1", "c1@h"])
        .unwrap();
    filled.set_top_via("udp", "192.0.2.7:5062").unwrap();
    let mut built = invite("z9hG4bK77", "t1", "<sip:m1@example.org>", "c1@h");
    built.set_top_via_sent_by("udp", "192.0.2.7:5062").unwrap();
    assert_eq!(filled.bytes(), &built.to_bytes()[..]);
    // The same Via again (a role that wrote the link's): unchanged.
    filled.set_top_via("UDP", "192.0.2.7:5062").unwrap();
    assert_eq!(filled.bytes(), &built.to_bytes()[..]);
    // A Via with one octet more or less is not the same.
    filled.set_top_via("UDP", "192.0.2.7:506").unwrap();
    built.set_top_via_sent_by("UDP", "192.0.2.7:506").unwrap();
    assert_eq!(filled.bytes(), &built.to_bytes()[..]);
    // Twice (a different transport): still one Via, the last one written.
    filled.set_top_via("TCP", "198.51.100.4:5070").unwrap();
    built
        .set_top_via_sent_by("TCP", "198.51.100.4:5070")
        .unwrap();
    assert_eq!(filled.bytes(), &built.to_bytes()[..]);
    assert_eq!(
        filled.set_top_via("UDP", "a b"),
        Err(BuildError::Malformed("Via sent-by"))
    );
    // With the sent-by checked once: the same octets as set_top_via.
    for (transport, sent_by) in [
        (Transport::Udp, "192.0.2.7:5062"),
        (Transport::Tcp, "[2001:db8::1]:5060"),
        (Transport::Tls, "mcs.example.org"),
    ] {
        let via = mcx_sip::TransportVia::new(sent_by).unwrap();
        assert_eq!(via.sent_by(), sent_by);
        let mut once = filled.clone();
        once.set_transport_via(transport, &via);
        filled.set_top_via(transport.as_str(), sent_by).unwrap();
        assert_eq!(once, filled);
    }
    assert_eq!(
        mcx_sip::TransportVia::new("a b"),
        Err(BuildError::Malformed("Via sent-by"))
    );
    assert!(mcx_sip::TransportVia::new("").is_err());
}

#[test]
fn values_that_could_change_the_message_are_refused() {
    let t = template();
    let ok = ["<sip:m@example.org>", "z9hG4bK1", "t", "c@h"];
    assert!(t.fill(&ok).is_ok());
    let cases: [(usize, &str, &str); 10] = [
        (0, "<sip:m@example.org>\r\nX-Injected: 1", "To"),
        (0, "", "To"),
        (1, "abc", "Via branch"),
        (1, "z9hG4bK1;received=1", "Via branch"),
        (1, "z9hG4bK%Q1", "Via branch"),
        (2, "t%00", "From tag"),
        (2, "t\r\n", "From tag"),
        (2, "t t", "From tag"),
        (3, "c@h\r\nVia: x", "Call-ID"),
        (3, "c h", "Call-ID"),
    ];
    for (i, bad, what) in cases {
        let mut v = ok;
        v[i] = bad;
        assert_eq!(t.fill(&v), Err(BuildError::Malformed(what)), "{bad:?}");
    }
    assert_eq!(
        t.fill(&ok[..3]),
        Err(BuildError::Missing("a template value"))
    );
    let long = format!("<sip:{}@example.org>", "m".repeat(Limits::UDP.max_line));
    assert_eq!(
        t.fill(&[&long, "z9hG4bK1", "t", "c@h"]),
        Err(BuildError::Malformed("To"))
    );
}

#[test]
fn a_template_needs_each_marker_once_and_the_branch_ending_the_via() {
    let req = invite(BRANCH, TAG, TO, CALL_ID);
    let new = |slots: &[(Slot, &str)]| RequestTemplate::new(&req, slots, Limits::UDP).err();
    assert_eq!(
        new(&[(Slot::To, TO)]),
        Some(BuildError::Missing("Via branch slot"))
    );
    assert_eq!(
        new(&[(Slot::Branch, BRANCH), (Slot::FromTag, "absent")]),
        Some(BuildError::Malformed("From tag"))
    );
    // "example.org" occurs many times.
    assert_eq!(
        new(&[(Slot::Branch, BRANCH), (Slot::To, "example.org")]),
        Some(BuildError::Malformed("To"))
    );
    // Found once, but not at the end of the top Via.
    assert_eq!(
        new(&[(Slot::Branch, "mcs.example.org;branch")]),
        Some(BuildError::Malformed("Via branch"))
    );
    assert_eq!(
        new(&[(Slot::Branch, BRANCH), (Slot::Branch, BRANCH)]),
        Some(BuildError::Malformed("slots: each at most once"))
    );
}

fn remote() -> Remote {
    Remote {
        addr: "192.0.2.9:5060".parse().unwrap(),
        transport: Transport::Udp,
    }
}

fn filled(branch: &str) -> mcx_sip::EncodedRequest {
    template()
        .fill(&["<sip:m@example.org>", branch, "t", "c@h"])
        .unwrap()
}

#[test]
fn an_encoded_request_is_sent_as_it_is_and_acked_on_a_non_2xx() {
    let t0 = Instant::now();
    let mut by_value = TransactionLayer::new(Timers::default());
    let mut encoded = TransactionLayer::new(Timers::default());
    let req = invite("z9hG4bK5", "t", "<sip:m@example.org>", "c@h");
    let k1 = by_value.send_request(t0, remote(), req.clone()).unwrap();
    let k2 = encoded
        .send_encoded(t0, remote(), filled("z9hG4bK5"))
        .unwrap();
    assert_eq!(k1, k2);
    let sent = |l: &mut TransactionLayer| {
        let mut v = Vec::new();
        while let Some(t) = l.poll_transmit() {
            v.push(t.bytes.to_vec());
        }
        v
    };
    assert_eq!(sent(&mut by_value), sent(&mut encoded));
    assert_eq!(
        encoded.send_encoded(t0, remote(), filled("z9hG4bK5")),
        Err(mcx_sip::TxError::InvalidState)
    );
    // A 486: both send the same ACK (RFC 3261 17.1.1.3), the encoded one
    // from the octets it sent.
    let busy = Response::for_request(&req, StatusCode(486), Some("tt")).unwrap();
    for l in [&mut by_value, &mut encoded] {
        l.handle_incoming(t0, remote(), Message::Response(busy.clone()));
    }
    let (a, b) = (sent(&mut by_value), sent(&mut encoded));
    assert_eq!(a.len(), 1);
    assert!(a[0].starts_with(b"ACK "));
    assert_eq!(a, b);
}

#[test]
fn a_timed_out_encoded_request_is_reported_with_the_request() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(Timers::default());
    let f = filled("z9hG4bK6");
    let expected = mcx_sip::parse_datagram(f.bytes(), &Limits::UDP).unwrap();
    l.send_encoded(t0, remote(), f).unwrap();
    let mut report = None;
    while let Some(at) = l.poll_timeout() {
        if at > t0 + Duration::from_secs(40) {
            break;
        }
        l.handle_timeout(at);
        while l.poll_transmit().is_some() {}
        while let Some(e) = l.poll_event() {
            if let Event::Timeout { request, .. } = e {
                report = Some(request);
            }
        }
    }
    let Message::Request(expected) = expected else {
        panic!("not a request")
    };
    assert_eq!(report, Some(Some(expected)));
}

#[test]
fn an_encoded_ack_is_the_ack_the_dialog_builds() {
    let inv = invite("z9hG4bKack1", "t1", "<sip:m@example.org>", "c9@h");
    for routes in [
        &[][..],
        &["<sip:p1.example.org;lr>", "<sip:p2.example.org;lr>"][..],
    ] {
        let mut ok = Response::for_request(&inv, StatusCode::OK, Some("mtag")).unwrap();
        ok.headers_mut()
            .push("Contact", "<sip:m@192.0.2.44:5099;transport=udp>")
            .unwrap();
        for r in routes.iter().rev() {
            ok.headers_mut().push("Record-Route", r).unwrap();
        }
        let dialog = mcx_sip::Dialog::uac(&inv, &ok).unwrap();
        for via in [("UDP", "mcs.example.org"), ("tcp", "192.0.2.1:5060")] {
            let built = dialog.ack(via, [7; 8]).unwrap();
            let mut encoded = dialog.ack_encoded(via, [7; 8]).unwrap();
            assert_eq!(encoded.bytes(), &built.to_bytes()[..], "{via:?} {routes:?}");
            assert_eq!(*encoded.method(), Method::Ack);
            assert_eq!(encoded.call_id(), "c9@h");
            assert_eq!(encoded.cseq(), 1);
            assert_eq!(encoded.uri(), "sip:m@192.0.2.44:5099;transport=udp");
            // A transport's Via on each: the same again.
            let mut built = built;
            built.set_top_via_sent_by("UDP", "10.0.0.1:5062").unwrap();
            encoded.set_top_via("UDP", "10.0.0.1:5062").unwrap();
            assert_eq!(encoded.bytes(), &built.to_bytes()[..]);
        }
    }
}

#[test]
fn an_ack_template_writes_the_ack_the_dialog_builds() {
    let inv = invite("z9hG4bKack1", "t1", "<sip:m@example.org>", "c9@h");
    let from = inv.header("From").unwrap();
    let prefix = from.strip_suffix("t1").unwrap();
    let via = ("UDP", "mcs.example.org");
    let template = mcx_sip::AckTemplate::new(via, prefix, 1).unwrap();
    // The one it was made for, and ones it was not (a route set, another
    // Via, another CSeq, another From): each gets the dialog's ACK.
    let other_cseq = {
        let mut i = inv.clone();
        i.headers_mut().set("CSeq", "7 INVITE").unwrap();
        i
    };
    let other_from = {
        let mut i = inv.clone();
        i.headers_mut()
            .set("From", "<sip:other@example.org>;tag=t1")
            .unwrap();
        i
    };
    for (fits, inv, routes, via) in [
        (true, &inv, &[][..], via),
        (
            false,
            &inv,
            &["<sip:p1.example.org;lr>", "<sip:p2.example.org;lr>"][..],
            via,
        ),
        (false, &inv, &[][..], ("tcp", "192.0.2.1:5060")),
        (false, &other_cseq, &[][..], via),
        (false, &other_from, &[][..], via),
    ] {
        let mut ok = Response::for_request(inv, StatusCode::OK, Some("mtag")).unwrap();
        ok.headers_mut()
            .push("Contact", "<sip:m@192.0.2.44:5099;transport=udp>")
            .unwrap();
        for r in routes.iter().rev() {
            ok.headers_mut().push("Record-Route", r).unwrap();
        }
        let mut dialog = mcx_sip::Dialog::uac(inv, &ok).unwrap();
        assert_eq!(template.fits(&dialog, via), fits, "{via:?} {routes:?}");
        let filled = template.fill(&dialog, via, [9; 8]).unwrap();
        assert_eq!(filled, dialog.ack_encoded(via, [9; 8]).unwrap());
        let built = dialog.ack(via, [9; 8]).unwrap();
        assert_eq!(filled.bytes(), &built.to_bytes()[..], "{via:?} {routes:?}");
        assert_eq!(filled.branch(), built.top_via().unwrap().branch.unwrap());
        // A Request-URI that could not be sent is refused alike.
        dialog.remote_target = "sip:m@192.0.2.44 x".into();
        assert_eq!(
            template.fill(&dialog, via, [9; 8]),
            dialog.ack_encoded(via, [9; 8])
        );
        assert!(template.fill(&dialog, via, [9; 8]).is_err());
    }
    // What would break every ACK is refused when the template is made.
    assert!(mcx_sip::AckTemplate::new(("UDP", "a b"), prefix, 1).is_err());
    assert!(mcx_sip::AckTemplate::new(via, "<sip:x@y>\r\nX: y;tag=", 1).is_err());
}

/// The head's lines (CRLF-separated, up to the empty line).
fn head_lines(bytes: &[u8]) -> Vec<&[u8]> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    bytes[..end].split(|&b| b == b'\n').collect()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
    /// Whatever the values (the To a name-addr, as the caller checks it),
    /// a filled template is refused or is one well-formed message that
    /// reads back those values where they belong.
    #[test]
    fn any_values_are_refused_or_read_back_in_place(
        to in r#"(<sip:[a-z0-9.]{1,12}@[a-z.]{1,8}(;[a-z]{1,4}=[a-z0-9]{1,4})?>|"[ a-zA-Z]{0,8}" <sip:[a-z]{1,8}@x>)"#,
        branch in r#"(z9hG4bK[a-zA-Z0-9.!%*_+`'~-]{0,16}|[ -~]{0,12}|z9hG4bK.{0,4}[\r\n;, ].{0,4})"#,
        tag in r#"([a-zA-Z0-9.!%*_+`'~-]{1,16}|[ -~]{0,10}|.{0,4}[\r\n].{0,4})"#,
        call_id in r#"([a-zA-Z0-9.!%*_+`'~-]{1,16}(@[a-z.]{1,8})?|[ -~]{0,12}|.{0,4}[\r\n].{0,4})"#,
    ) {
        let t = template();
        if let Ok(f) = t.fill(&[&to, &branch, &tag, &call_id]) {
            let Ok(Message::Request(r)) = mcx_sip::parse_datagram(f.bytes(), &Limits::UDP) else {
                panic!("a filled template does not parse: {:?}", String::from_utf8_lossy(f.bytes()));
            };
            proptest::prop_assert_eq!(r.header("To"), Some(to.as_str()));
            proptest::prop_assert_eq!(r.call_id().unwrap(), call_id.as_str());
            let from_tag = r.from().unwrap().tag;
            let via_branch = r.top_via().unwrap().branch;
            proptest::prop_assert_eq!(from_tag, Some(tag.clone()));
            proptest::prop_assert_eq!(via_branch, Some(branch.clone()));
            proptest::prop_assert_eq!(r.headers().len(), invite(BRANCH, TAG, TO, CALL_ID).headers().len());
        }
    }

    /// Any To at all (its syntax is the caller's to check): refused, or
    /// the head keeps its lines and the To line is that value.
    #[test]
    fn no_to_adds_or_changes_a_line(to in r#"([ -~]{0,16}|.{0,6}[\r\n\x00\t\x7f].{0,6})"#) {
        let t = template();
        if let Ok(f) = t.fill(&[&to, "z9hG4bK1", "t", "c@h"]) {
            let lines = head_lines(f.bytes());
            let template_lines = head_lines(t.fill(&[TO, "z9hG4bK1", "t", "c@h"]).unwrap().bytes()).len();
            proptest::prop_assert_eq!(lines.len(), template_lines);
            let to_line = format!("To: {to}\r");
            proptest::prop_assert!(lines.contains(&to_line.as_bytes()));
        }
    }
}
