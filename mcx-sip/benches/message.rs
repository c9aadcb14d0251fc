//! Cost of one SIP message in mcx-sip, one thread, with allocations counted:
//! - `sip/parse_invite`: `parse_datagram` of a member INVITE as an MC server
//!   sends it (about 2.5 kB: multipart/mixed with SDP, mcptt-info XML and a
//!   binary MIKEY part), then the typed values every receiver reads (top
//!   Via, From, To, Contact, Call-ID, CSeq).
//! - `sip/parse_200`: the same for the member's 200 OK with SDP.
//! - `sip/build_invite`: `Request::builder` for that INVITE and `to_bytes`.
//! - `sip/for_request`: `Response::for_request` (200 with a To tag) and
//!   its encoding.
//! - `sip/invite_rewritten`: what an MC server did per member before
//!   templates: the INVITE as a value (cloned from a prepared one, its
//!   per-member values set), the link's Via written over it, encoded.
//! - `sip/invite_template`: `RequestTemplate::fill` for the same INVITE and
//!   the link's `set_top_via` (already that Via: nothing to write).
//! - `sip/ack_built` / `sip/ack_encoded`: the ACK of a member's 2xx from
//!   its dialog, as a value with the link's Via written and encoded, and
//!   `Dialog::ack_encoded` with `set_top_via`.
//!
//! Before the timings, each case runs once under a counting allocator and
//! prints its allocations per message.
//!
//!     cargo bench -p mcx-sip --bench message

use std::alloc::System;
use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mcx_sip::{
    Dialog, Limits, Message, Method, Request, RequestTemplate, Response, Slot, StatusCode,
    parse_datagram,
};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

/// Counts allocations so the bench can print them per message.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const BOUNDARY: &str = "mcx-b7e1c2d3a4f5";

fn sdp() -> String {
    "v=0\r\no=- 3912345678 3912345678 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
     t=0 0\r\nm=audio 40002 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n\
     a=key-mgmt:mikey\r\na=sendrecv\r\nm=application 40004 udp MCPTT\r\n\
     a=fmtp:MCPTT mc_queueing;mc_priority=4;mc_granted\r\n"
        .to_owned()
}

fn mcptt_info() -> String {
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
     <mcpttinfo xmlns=\"urn:3gpp:ns:mcpttInfo:1.0\" xmlns:mcpttinfo2=\"urn:3gpp:ns:mcpttinfo:2.0\">\r\n\
     <mcptt-Params>\r\n\
     <mcptt-request-uri type=\"Normal\"><mcpttURI>sip:tg-0007@mcx.example</mcpttURI></mcptt-request-uri>\r\n\
     <mcptt-calling-user-id type=\"Normal\"><mcpttURI>sip:dispatcher-01@mcx.example</mcpttURI></mcptt-calling-user-id>\r\n\
     <mcptt-called-party-id type=\"Normal\"><mcpttURI>sip:member-0123@mcx.example</mcpttURI></mcptt-called-party-id>\r\n\
     <mcptt-calling-group-id type=\"Normal\"><mcpttURI>sip:group-07@mcx.example</mcpttURI></mcptt-calling-group-id>\r\n\
     <session-type>prearranged</session-type>\r\n\
     <broadcast-ind>true</broadcast-ind>\r\n\
     <emergency-ind>false</emergency-ind>\r\n\
     <alert-ind>false</alert-ind>\r\n\
     <imminentperil-ind>false</imminentperil-ind>\r\n\
     <mcpttinfo2:temporary-group-id>sip:tg-0007@mcx.example</mcpttinfo2:temporary-group-id>\r\n\
     <mcpttinfo2:signature>MEUCIQDx3k2vN0Y7mJcWq1lYt9sV4o0bR5uE8fXlQ2mA7wKp4gIgQ3f9b8aZ7yX6wV5uT4sR3qP2oN1mL0kJ9iH8gF7eD6c=</mcpttinfo2:signature>\r\n\
     </mcptt-Params>\r\n\
     </mcpttinfo>\r\n"
        .to_owned()
}

/// A MIKEY-SAKKE I_MESSAGE's size and shape (binary, not UTF-8).
fn mikey() -> Vec<u8> {
    (0..640u32)
        .map(|i| (i.wrapping_mul(197) % 251) as u8)
        .collect()
}

fn body() -> Vec<u8> {
    let mut b = Vec::new();
    for (ct, part) in [
        ("application/sdp", sdp().into_bytes()),
        (
            "application/vnd.3gpp.mcptt-info+xml",
            mcptt_info().into_bytes(),
        ),
        ("application/mikey", mikey()),
    ] {
        b.extend_from_slice(format!("--{BOUNDARY}\r\nContent-Type: {ct}\r\n\r\n").as_bytes());
        b.extend_from_slice(&part);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    b
}

fn build_invite(body: &Bytes) -> Request {
    Request::builder(Method::Invite, "sip:member-0123@127.0.0.1:41234")
        .via("UDP", "127.0.0.1:5062", "z9hG4bK8c1f2e3d4a5b6978")
        .max_forwards(70)
        .from(None, "sip:tg-0007@mcx.example", "5f2c9e1a7b3d4c60")
        .to(None, "sip:member-0123@mcx.example", None)
        .call_id("a1b2c3d4e5f60718293a4b5c6d7e8f90@127.0.0.1")
        .cseq(1)
        .contact(
            "<sip:mcs-1@127.0.0.1:5062>;+g.3gpp.mcptt;\
             +g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mcptt\"",
        )
        .header("Accept-Contact", "*;+g.3gpp.mcptt;require;explicit")
        .header(
            "Accept-Contact",
            "*;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mcptt\";require;explicit",
        )
        .header(
            "P-Asserted-Service",
            "urn:urn-7:3gpp-service.ims.icsi.mcptt",
        )
        .header("P-Asserted-Identity", "<sip:dispatcher-01@mcx.example>")
        .header("Resource-Priority", "mcpttp.4")
        .body(
            &format!("multipart/mixed;boundary={BOUNDARY}"),
            body.clone(),
        )
        .build()
        .expect("valid INVITE")
}

fn ok_for(invite: &Request) -> Response {
    let mut ok =
        Response::for_request(invite, StatusCode::OK, Some("9a8b7c6d5e4f3021")).expect("valid 200");
    ok.headers_mut()
        .push("Contact", "<sip:member-0123@127.0.0.1:41234>;+g.3gpp.mcptt")
        .expect("valid Contact");
    ok.set_body(Some("application/sdp"), Bytes::from(sdp()))
        .expect("valid body");
    ok
}

/// The typed values of a request or response that every receiver reads.
macro_rules! typed_ok {
    ($r:expr) => {
        $r.top_via().is_ok()
            & $r.from().is_ok()
            & $r.to().is_ok()
            & $r.contact().is_ok()
            & $r.call_id().is_ok()
            & $r.cseq().is_ok()
    };
}

/// What a receiver reads of every message.
fn read_typed(m: &Message) {
    let read = match m {
        Message::Request(r) => typed_ok!(r),
        Message::Response(r) => typed_ok!(r),
    };
    assert!(black_box(read));
}

fn count(what: &str, mut f: impl FnMut()) {
    f();
    const N: usize = 100;
    let region = Region::new(GLOBAL);
    for _ in 0..N {
        f();
    }
    let change = region.change();
    let per = (change.allocations + change.reallocations) as f64 / N as f64;
    println!("allocations per message, {what}: {per:.1}");
}

fn bench(c: &mut Criterion) {
    let body = Bytes::from(body());
    let invite = build_invite(&body);
    let invite_wire = invite.to_bytes();
    let ok = ok_for(&invite);
    let ok_wire = ok.to_bytes();
    println!(
        "member INVITE: {} octets, 200 OK: {} octets",
        invite_wire.len(),
        ok_wire.len()
    );
    let parse = |wire: &[u8]| {
        let m = parse_datagram(black_box(wire), &Limits::UDP).expect("parses");
        read_typed(&m);
        m
    };
    count("parse_invite", || drop(parse(&invite_wire)));
    count("parse_200", || drop(parse(&ok_wire)));
    count("build_invite", || drop(build_invite(&body).to_bytes()));
    count("for_request", || drop(ok_for(&invite).to_bytes()));

    // Per-member values, as an MC server draws them.
    const TO: &str = "<sip:member-0123@mcx.example>";
    const BRANCH: &str = "z9hG4bK8c1f2e3d4a5b6978";
    const TAG: &str = "5f2c9e1a7b3d4c60";
    const CALL_ID: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90@127.0.0.1";
    let mut prepared = invite.clone();
    prepared.headers_mut().set("To", TO).expect("valid To");
    let template = RequestTemplate::new(
        &prepared,
        &[
            (Slot::To, TO),
            (Slot::Branch, BRANCH),
            (Slot::FromTag, TAG),
            (Slot::CallId, CALL_ID),
        ],
        Limits::TCP,
    )
    .expect("a template");
    let values = [
        "<sip:member-0124@mcx.example>",
        "z9hG4bK0c1f2e3d4a5b6979",
        "6f2c9e1a7b3d4c61",
        "b1b2c3d4e5f60718293a4b5c6d7e8f91@127.0.0.1",
    ];
    let rewritten = || {
        let mut r = prepared.clone();
        let h = r.headers_mut();
        h.set(
            "Via",
            &format!("SIP/2.0/UDP 127.0.0.1:5062;branch={}", values[1]),
        )
        .expect("Via");
        h.set(
            "From",
            &format!("<sip:tg-0007@mcx.example>;tag={}", values[2]),
        )
        .expect("From");
        h.set("To", values[0]).expect("To");
        h.set("Call-ID", values[3]).expect("Call-ID");
        r.set_top_via_sent_by("UDP", "127.0.0.1:5062").expect("Via");
        r.to_bytes()
    };
    let filled = || {
        let mut e = template
            .fill(&[values[0], values[1], values[2], values[3]])
            .expect("filled");
        e.set_top_via("UDP", "127.0.0.1:5062").expect("Via");
        e
    };
    assert_eq!(
        filled().bytes(),
        &rewritten()[..],
        "the same octets either way"
    );
    let dialog = Dialog::uac(&invite, &ok).expect("dialog");
    let ack_built = || {
        let mut a = dialog.ack(("UDP", "127.0.0.1:5062"), [3; 8]).expect("ACK");
        a.set_top_via_sent_by("UDP", "127.0.0.1:5062").expect("Via");
        a.to_bytes()
    };
    let ack_encoded = || {
        let mut a = dialog
            .ack_encoded(("UDP", "127.0.0.1:5062"), [3; 8])
            .expect("ACK");
        a.set_top_via("UDP", "127.0.0.1:5062").expect("Via");
        a
    };
    assert_eq!(ack_encoded().bytes(), &ack_built()[..]);
    count("invite_rewritten", || drop(rewritten()));
    count("invite_template", || drop(filled()));
    count("ack_built", || drop(ack_built()));
    count("ack_encoded", || drop(ack_encoded()));

    let mut g = c.benchmark_group("sip");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_invite", |b| b.iter(|| parse(&invite_wire)));
    g.bench_function("parse_200", |b| b.iter(|| parse(&ok_wire)));
    g.bench_function("build_invite", |b| {
        b.iter(|| build_invite(black_box(&body)).to_bytes())
    });
    g.bench_function("for_request", |b| {
        b.iter(|| ok_for(black_box(&invite)).to_bytes())
    });
    g.bench_function("invite_rewritten", |b| b.iter(rewritten));
    g.bench_function("invite_template", |b| b.iter(filled));
    g.bench_function("ack_built", |b| b.iter(ack_built));
    g.bench_function("ack_encoded", |b| b.iter(ack_encoded));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
