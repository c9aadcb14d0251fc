//! The header representation: a received message keeps its head as one
//! buffer and each header as spans into it, a built or changed one appends
//! to a buffer of its own. These tests fail if that loses or mixes up
//! text: order and names as written (compact forms), folded lines, values
//! at either end of the head, changes after parsing, clones, responses
//! sharing a request's head, and parse → encode → parse on the fuzz corpus.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use mcx_sip::{
    Header, Limits, Message, Method, Request, Response, StatusCode, parse_datagram,
    parse_datagram_bytes,
};

fn crlf(text: &str) -> Vec<u8> {
    text.replace('\n', "\r\n").into_bytes()
}

/// Compact and full names mixed, a folded value in the middle, a value
/// ending right at the empty line.
fn mixed() -> Vec<u8> {
    crlf(
        "INVITE sip:g@example.com SIP/2.0
v: SIP/2.0/UDP a.example.com;branch=z9hG4bK1
Via: SIP/2.0/TCP b.example.com;branch=z9hG4bK2
f: <sip:a@example.com>;tag=1
X-Folded: one
  two
\tthree
t: <sip:g@example.com>
i: c1@example.com
CSeq: 1 INVITE
Max-Forwards: 70
m: <sip:a@192.0.2.1>
l: 3
X-Last: at the end

abc",
    )
}

fn request(wire: &[u8]) -> Request {
    match parse_datagram(wire, &Limits::UDP).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => panic!("a request"),
    }
}

fn lines(m: &Request) -> Vec<(String, String)> {
    m.headers()
        .iter()
        .map(|h| (h.name.to_owned(), h.value.to_owned()))
        .collect()
}

#[test]
fn order_names_as_written_and_folds_are_kept() {
    let r = request(&mixed());
    let expected = [
        ("v", "SIP/2.0/UDP a.example.com;branch=z9hG4bK1"),
        ("Via", "SIP/2.0/TCP b.example.com;branch=z9hG4bK2"),
        ("f", "<sip:a@example.com>;tag=1"),
        ("X-Folded", "one two three"),
        ("t", "<sip:g@example.com>"),
        ("i", "c1@example.com"),
        ("CSeq", "1 INVITE"),
        ("Max-Forwards", "70"),
        ("m", "<sip:a@192.0.2.1>"),
        ("X-Last", "at the end"),
    ];
    let got = lines(&r);
    let want: Vec<(String, String)> = expected
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    assert_eq!(
        got, want,
        "Content-Length is framing, every other line kept"
    );
    // Lookups by either form, any case.
    assert_eq!(r.headers().get_all("VIA").count(), 2);
    assert_eq!(r.headers().get_all("v").count(), 2);
    assert_eq!(r.header("call-id"), Some("c1@example.com"));
    assert_eq!(r.header("I"), Some("c1@example.com"));
    assert_eq!(r.header("x-last"), Some("at the end"));
    assert_eq!(r.header("x-folded"), Some("one two three"));
    assert_eq!(r.header("Contact"), Some("<sip:a@192.0.2.1>"));
    assert_eq!(
        r.header("X"),
        None,
        "a one-letter name that is no compact form"
    );
    assert_eq!(r.call_id().unwrap(), "c1@example.com");
    assert_eq!(r.top_via().unwrap().sent_by, "a.example.com");
    assert_eq!(r.from().unwrap().tag.as_deref(), Some("1"));
    assert_eq!(r.to().unwrap().uri, "sip:g@example.com");
    assert_eq!(r.contact().unwrap().unwrap().uri, "sip:a@192.0.2.1");
    assert_eq!(&r.body()[..], b"abc");
    // Written back with the names as received, the fold joined.
    let wire = r.to_bytes();
    let text = String::from_utf8(wire.clone()).unwrap();
    assert!(text.starts_with("INVITE sip:g@example.com SIP/2.0\r\nv: SIP/2.0/UDP"));
    assert!(text.contains("\r\nX-Folded: one two three\r\nt: <sip:g@example.com>\r\n"));
    assert!(text.ends_with("X-Last: at the end\r\nContent-Length: 3\r\n\r\nabc"));
    assert_eq!(request(&wire), r);
}

#[test]
fn a_value_spanning_the_whole_head_line_and_unknown_single_letters() {
    // The longest value allowed (8 KiB line) at the start of the head.
    let long = "x".repeat(8 * 1024 - "P: ".len());
    let wire = crlf(&format!(
        "OPTIONS sip:u@example.com SIP/2.0
P: {long}
y: lower
Y: upper
Via: SIP/2.0/UDP h.example.com;branch=z9hG4bKa
To: <sip:u@example.com>
From: <sip:c@example.com>;tag=2
Call-ID: k
CSeq: 2 OPTIONS
Max-Forwards: 70

"
    ));
    let r = request(&wire);
    assert_eq!(r.header("p"), Some(long.as_str()));
    let ys: Vec<&str> = r.headers().get_all("y").collect();
    assert_eq!(ys, ["lower", "upper"], "names compare case-insensitively");
    assert_eq!(r.headers().len(), 9);
}

#[test]
fn changes_after_parsing_mix_shared_and_own_text() {
    let mut r = request(&mixed());
    let original = r.clone();
    r.headers_mut().push("X-New", "  added  ").unwrap();
    r.headers_mut().set("CSeq", "2 INVITE").unwrap();
    r.headers_mut().remove("x-folded");
    r.stamp_received("192.0.2.9", 5070).unwrap();
    assert_eq!(
        r.header("Via"),
        Some("SIP/2.0/UDP a.example.com;branch=z9hG4bK1;received=192.0.2.9;rport=5070")
    );
    assert_eq!(r.top_via().unwrap().received.as_deref(), Some("192.0.2.9"));
    assert_eq!(r.source().as_deref(), Some("192.0.2.9:5070"));
    r.set_top_via("tcp", "proxy.example.com:5061", "z9hG4bKnew")
        .unwrap();
    let names: Vec<&str> = r.headers().iter().map(|h| h.name).collect();
    assert_eq!(
        names,
        [
            "v",
            "Via",
            "f",
            "t",
            "i",
            "CSeq",
            "Max-Forwards",
            "m",
            "X-Last",
            "X-New"
        ],
        "set keeps the position of the first line it replaces"
    );
    assert_eq!(r.cseq().unwrap(), (2, Method::Invite));
    assert_eq!(r.header("x-new"), Some("added"));
    assert_eq!(
        r.header("v"),
        Some("SIP/2.0/TCP proxy.example.com:5061;branch=z9hG4bKnew")
    );
    assert_eq!(r.top_via().unwrap().branch.as_deref(), Some("z9hG4bKnew"));
    // The clone taken before is untouched: it shares only the received head.
    assert_eq!(original, request(&mixed()));
    assert_eq!(original.header("CSeq"), Some("1 INVITE"));
    assert_ne!(original, r);
    // And the changed message parses back to itself.
    assert_eq!(request(&r.to_bytes()), r);
}

#[test]
fn a_response_copies_the_request_lines_with_full_names() {
    let r = request(&mixed());
    let ok = Response::for_request(&r, StatusCode::OK, Some("t9")).unwrap();
    let got: Vec<Header<'_>> = ok.headers().iter().collect();
    let want = [
        ("Via", "SIP/2.0/UDP a.example.com;branch=z9hG4bK1"),
        ("Via", "SIP/2.0/TCP b.example.com;branch=z9hG4bK2"),
        ("From", "<sip:a@example.com>;tag=1"),
        ("To", "<sip:g@example.com>;tag=t9"),
        ("Call-ID", "c1@example.com"),
        ("CSeq", "1 INVITE"),
    ];
    assert_eq!(got.len(), want.len());
    for (h, (n, v)) in got.iter().zip(want) {
        assert_eq!((h.name, h.value), (n, v));
    }
    assert_eq!(ok.top_via().unwrap(), r.top_via().unwrap());
    assert_eq!(ok.from().unwrap(), r.from().unwrap());
    assert_eq!(ok.to().unwrap().tag.as_deref(), Some("t9"));
    assert_eq!(
        String::from_utf8(ok.to_bytes()).unwrap(),
        "SIP/2.0 200 OK\r\n\
         Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1\r\n\
         Via: SIP/2.0/TCP b.example.com;branch=z9hG4bK2\r\n\
         From: <sip:a@example.com>;tag=1\r\n\
         To: <sip:g@example.com>;tag=t9\r\n\
         Call-ID: c1@example.com\r\n\
         CSeq: 1 INVITE\r\n\
         Content-Length: 0\r\n\r\n"
    );
    // A To that has a tag keeps it; a built request's lines are copied too.
    let again = Response::for_request(&r, StatusCode::RINGING, None).unwrap();
    assert_eq!(again.to().unwrap().tag, None);
    let tagged = request(
        &Response::for_request(&r, StatusCode::OK, Some("t9"))
            .map(|ok| {
                let mut req = r.clone();
                req.headers_mut()
                    .set("To", ok.header("To").unwrap())
                    .unwrap();
                req.to_bytes()
            })
            .unwrap(),
    );
    let twice = Response::for_request(&tagged, StatusCode::OK, Some("other")).unwrap();
    assert_eq!(twice.to().unwrap().tag.as_deref(), Some("t9"));
}

#[test]
fn parse_datagram_bytes_shares_the_buffer() {
    let mut wire = b"\r\n\r\n".to_vec();
    wire.extend_from_slice(&mixed());
    wire.extend_from_slice(b"trailing octets beyond Content-Length");
    let buf = Bytes::from(wire.clone());
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    let Message::Request(r) = parse_datagram_bytes(buf, &Limits::UDP).unwrap() else {
        panic!("a request")
    };
    assert_eq!(&r.body()[..], b"abc");
    assert!(
        range.contains(&(r.body().as_ptr() as usize)),
        "the body is not copied"
    );
    assert!(range.contains(&(r.header("X-Last").unwrap().as_ptr() as usize)));
    assert!(range.contains(&(r.uri().as_ptr() as usize)));
    assert_eq!(
        Message::Request(r),
        parse_datagram(&wire, &Limits::UDP).unwrap()
    );
    // The same errors as from a slice.
    for bad in [
        &b""[..],
        b"\r\n",
        b"INVITE sip:a SIP/2.0\r\n",
        b"SIP/2.0 99 x\r\n\r\n",
    ] {
        assert_eq!(
            parse_datagram_bytes(Bytes::copy_from_slice(bad), &Limits::UDP).unwrap_err(),
            parse_datagram(bad, &Limits::UDP).unwrap_err()
        );
    }
}

#[test]
fn corpus_parse_encode_parse_is_stable() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/sip_parse");
    let mut parsed = 0;
    let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    inputs.push(mixed());
    for input in inputs {
        let Ok(m) = Message::parse(&input) else {
            continue;
        };
        parsed += 1;
        let wire = m.to_bytes();
        let again = Message::parse(&wire).unwrap();
        assert_eq!(again, m);
        assert_eq!(again.to_bytes(), wire, "encoding is a fixed point");
        assert_eq!(
            parse_datagram_bytes(Bytes::from(input.clone()), &Limits::UDP).unwrap(),
            m
        );
    }
    assert!(parsed >= 3, "the corpus holds messages that parse");
}

#[test]
fn a_built_request_encodes_at_its_exact_size() {
    let r = Request::builder(Method::Options, "sip:u@example.com")
        .via("udp", "192.0.2.1:5060", "z9hG4bKx")
        .max_forwards(70)
        .from(Some("A \"B\""), "sip:a@example.com", "1")
        .to(None, "sip:u@example.com", None)
        .call_id("id@192.0.2.1")
        .cseq(7)
        .header("X-A", "1")
        .body("text/plain", &b"hello"[..])
        .build()
        .unwrap();
    let wire = r.to_bytes();
    assert_eq!(
        wire.capacity(),
        wire.len(),
        "one allocation at the exact size"
    );
    assert_eq!(
        String::from_utf8(wire).unwrap(),
        "OPTIONS sip:u@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx\r\n\
         Max-Forwards: 70\r\n\
         From: \"A \\\"B\\\"\" <sip:a@example.com>;tag=1\r\n\
         To: <sip:u@example.com>\r\n\
         Call-ID: id@192.0.2.1\r\n\
         CSeq: 7 OPTIONS\r\n\
         X-A: 1\r\n\
         Content-Type: text/plain\r\n\
         Content-Length: 5\r\n\r\nhello"
    );
    let ok = Response::for_request(&r, StatusCode(299), None).unwrap();
    let wire = ok.to_bytes();
    assert_eq!(wire.capacity(), wire.len());
    assert!(wire.starts_with(b"SIP/2.0 299 Unknown\r\n"));
}

#[test]
fn a_built_from_and_to_read_as_their_parse() {
    // What a builder records for From/To without parsing must be what
    // parsing the written line gives (and the uncommon forms are parsed).
    let uris = [
        "sip:a@example.com",
        "sips:b@[2001:db8::1]:5061;transport=tls",
        "tel:+123",
    ];
    let tags = [None, Some("1a2b-3.c"), Some("x%41"), Some("t_1")];
    let displays = [None, Some("Dispatcher \"A\"")];
    for uri in uris {
        for tag in tags {
            for display in displays {
                let built = Request::builder(Method::Options, "sip:u@example.com")
                    .via("UDP", "h.example.com", "z9hG4bKa")
                    .max_forwards(70)
                    .from(display, uri, tag.unwrap_or("f"))
                    .to(display, uri, tag)
                    .call_id("k")
                    .cseq(1)
                    .build()
                    .unwrap();
                let parsed = request(&built.to_bytes());
                assert_eq!(
                    built.from().unwrap(),
                    parsed.from().unwrap(),
                    "{uri} {tag:?}"
                );
                assert_eq!(built.to().unwrap(), parsed.to().unwrap(), "{uri} {tag:?}");
                // A later To line does not replace the first one's value.
                let mut more = built.clone();
                more.headers_mut()
                    .push("To", "<sip:other@example.com>")
                    .unwrap();
                assert_eq!(more.to().unwrap(), parsed.to().unwrap());
                more.headers_mut()
                    .set("To", "<sip:other@example.com>")
                    .unwrap();
                assert_eq!(more.to().unwrap().uri, "sip:other@example.com");
            }
        }
    }
}
