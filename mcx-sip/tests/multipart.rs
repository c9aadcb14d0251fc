//! multipart/mixed (RFC 2046 5.1, RFC 5621) round trips and malformed bodies.
#![allow(clippy::unwrap_used)]

use mcx_sip::{Message, Method, Multipart, MultipartError, Part, Request};

const SDP: &[u8] = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 5000 RTP/SAVP 96\r\n";
const INFO: &[u8] = b"<?xml version=\"1.0\"?>\r\n<mcpttinfo xmlns=\"urn:3gpp:ns:mcpttInfo:1.0\"><mcptt-Params><broadcast-ind>true</broadcast-ind></mcptt-Params></mcpttinfo>";

fn body() -> Multipart {
    Multipart::new([0xab; 16])
        .part(Part::new("application/sdp", SDP))
        .part(Part::new("application/vnd.3gpp.mcptt-info+xml", INFO))
        // a binary MIKEY part: any octet value, including CR LF and "--"
        .part(
            Part::new(
                "application/mikey",
                (0u8..=255).chain(*b"\r\n--x").collect::<Vec<u8>>(),
            )
            .with_content_id("<k1@example.org>")
            .with_disposition("render;handling=optional"),
        )
}

#[test]
fn invite_with_multipart_round_trip() {
    let mut mp = body();
    let encoded = mp.encode().unwrap();
    let req = Request::builder(Method::Invite, "sip:tempgroup@example.org")
        .via("UDP", "192.0.2.1", "z9hG4bKmp1")
        .max_forwards(70)
        .from(None, "sip:d@example.org", "f1")
        .to(None, "sip:tempgroup@example.org", None)
        .call_id("mp1@192.0.2.1")
        .cseq(1)
        .body(&mp.content_type(), encoded)
        .build()
        .unwrap();
    let Message::Request(back) = Message::parse(&req.to_bytes()).unwrap() else {
        panic!()
    };
    let parsed = Multipart::parse(back.content_type().unwrap(), back.body()).unwrap();
    assert_eq!(parsed, mp);
    assert_eq!(parsed.find("APPLICATION/SDP").unwrap().body.as_ref(), SDP);
    assert_eq!(
        parsed
            .find("application/mikey")
            .unwrap()
            .content_id
            .as_deref(),
        Some("<k1@example.org>")
    );
}

#[test]
fn boundary_never_collides() {
    let mut mp = Multipart::new([0; 16]);
    let b = mp.boundary.clone();
    // the part contains the boundary and the first two re-derivations
    let evil = format!("--{b}\r\n--{b}.1--\r\n--{b}.2");
    mp = mp.part(Part::new("text/plain", evil.clone().into_bytes()));
    assert_eq!(mp.encode_strict(), Err(MultipartError::BoundaryInBody));
    let enc = mp.encode().unwrap();
    assert_eq!(mp.boundary, format!("{b}.3"));
    let back = Multipart::parse(&mp.content_type(), &enc).unwrap();
    assert_eq!(back.parts[0].body.as_ref(), evil.as_bytes());
}

#[test]
fn preamble_epilogue_quoted_boundary_and_default_type() {
    let raw = b"preamble\r\n--b1\r\n\r\nplain\r\n--b1\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--b1--\r\nepilogue";
    let mp = Multipart::parse("multipart/mixed; boundary=\"b1\"", raw).unwrap();
    assert_eq!(mp.parts.len(), 2);
    assert_eq!(mp.parts[0].content_type, "text/plain");
    assert_eq!(mp.parts[0].body.as_ref(), b"plain");
    assert_eq!(mp.parts[1].body.as_ref(), b"v=0");
}

#[test]
fn malformed_bodies_are_rejected() {
    let ct = "multipart/mixed;boundary=b1";
    let p = |ct: &str, b: &[u8]| Multipart::parse(ct, b).unwrap_err();
    assert_eq!(p("application/sdp", b""), MultipartError::NotMultipart);
    assert_eq!(p("multipart/mixed", b""), MultipartError::Boundary);
    assert_eq!(
        p("multipart/mixed;boundary=", b""),
        MultipartError::Boundary
    );
    assert_eq!(
        p(&format!("multipart/mixed;boundary={}", "x".repeat(71)), b""),
        MultipartError::Boundary
    );
    assert_eq!(
        p(ct, b"no delimiter at all"),
        MultipartError::NoOpeningDelimiter
    );
    assert_eq!(
        p(ct, b"--b1\r\nContent-Type: a/b\r\n\r\nbody never closed"),
        MultipartError::NoCloseDelimiter
    );
    assert_eq!(p(ct, b"--b1--\r\n"), MultipartError::NoParts);
    assert_eq!(
        p(ct, b"--b1junk\r\n\r\nx\r\n--b1--"),
        MultipartError::Delimiter
    );
    assert_eq!(
        p(ct, b"--b1\r\nNoColon\r\n\r\nx\r\n--b1--"),
        MultipartError::PartHeaders { index: 0 }
    );
    assert_eq!(p(ct, b"--b1\r\nContent-Type: a/b\r\n\r\nx\r\n--b1\r\nContent-Type: a/b\r\nContent-Type: c/d\r\n\r\ny\r\n--b1--"), MultipartError::PartHeaders { index: 1 });
    assert_eq!(
        p(ct, b"--b1\r\nContent-Type: a/b\r\nno blank line\r\n--b1--"),
        MultipartError::PartHeaders { index: 0 }
    );
    // building
    assert_eq!(
        Multipart::new([1; 16]).encode(),
        Err(MultipartError::NoParts)
    );
    let mut bad = Multipart::new([1; 16]).part(Part::new("text/plain\r\nX: y", &b""[..]));
    assert_eq!(bad.encode(), Err(MultipartError::IllegalChar));
}
