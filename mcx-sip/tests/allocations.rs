//! Allocations per message, counted by a wrapping global allocator: a
//! received message copies no header, a built one appends to one buffer,
//! encoding allocates once, and a clone or a response does not copy the
//! received head. One test function, so that no other test's allocations
//! are counted (the counter is process-wide).
#![allow(clippy::unwrap_used)]

use std::alloc::System;

use bytes::Bytes;
use mcx_sip::{Limits, Message, Method, Request, Response, StatusCode, parse_datagram_bytes};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Allocations (and reallocations) made by `f` on the input `make` gives
/// (made outside the count): the fewest of three runs. The counter is
/// process-wide, so a run may also count another thread's allocation (the
/// test harness's, seen once under load); what `f` itself allocates is in
/// every run.
fn allocations<I, T>(make: impl Fn() -> I, f: impl Fn(I) -> T) -> (usize, T) {
    let mut best: Option<(usize, T)> = None;
    for _ in 0..3 {
        let input = make();
        let region = Region::new(GLOBAL);
        let out = f(input);
        let change = region.change();
        let n = change.allocations + change.reallocations;
        if best.as_ref().is_none_or(|(b, _)| n < *b) {
            best = Some((n, out));
        }
    }
    best.unwrap()
}

/// An OPTIONS request with `extra` more header lines of an unknown name.
fn wire(extra: usize) -> Bytes {
    let mut text = String::from(
        "OPTIONS sip:u@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP h.example.com;branch=z9hG4bKa\r\n\
         To: <sip:u@example.com>\r\n\
         From: <sip:c@example.com>;tag=2\r\n\
         Call-ID: k@h\r\n\
         CSeq: 2 OPTIONS\r\n\
         Max-Forwards: 70\r\n",
    );
    for i in 0..extra {
        text.push_str(&format!("X-Extra-{i}: value {i};param=abc\r\n"));
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    Bytes::from(text)
}

fn built(extra: usize) -> Request {
    let mut b = Request::builder(Method::Options, "sip:u@example.com")
        .via("UDP", "h.example.com", "z9hG4bKa")
        .max_forwards(70)
        .from(None, "sip:c@example.com", "2")
        .to(None, "sip:u@example.com", None)
        .call_id("k@h")
        .cseq(2);
    for i in 0..extra {
        b = b.header(&format!("X-Extra-{i}"), "value;param=abc");
    }
    b.build().unwrap()
}

#[test]
fn allocations_do_not_grow_with_the_header_count() {
    // Parsing (typed values read too): the same count for 4 and 24 more lines
    // (the line list is sized from the head, so no growth either).
    let parse = |extra: usize| {
        allocations(
            || wire(extra),
            |w| {
                let m = parse_datagram_bytes(w, &Limits::UDP).unwrap();
                let Message::Request(r) = &m else {
                    panic!("a request")
                };
                assert_eq!(r.call_id().unwrap(), "k@h");
                assert!(r.header("x-extra-3").is_some());
                m
            },
        )
    };
    let (few, small) = parse(4);
    let (many, large) = parse(24);
    assert_eq!(few, many, "no allocation per received header line");
    // The canonical Via, From and To are read by the fast path without ezk's
    // error allocations (61 with ezk alone), and the parser's check of the
    // mandatory headers borrows them (14 when it cloned each to drop it).
    assert!(few <= 8, "typed values read without ezk, not copied: {few}");

    // Encoding: one allocation at the exact size.
    for m in [&small, &large] {
        let (n, bytes) = allocations(|| (), |()| m.to_bytes());
        assert_eq!(n, 1);
        assert_eq!(bytes.len(), bytes.capacity());
    }

    // A clone shares the head (and what was parsed): a fixed count.
    let (clone_small, _) = allocations(|| (), |()| small.clone());
    let (clone_large, _) = allocations(|| (), |()| large.clone());
    assert_eq!(clone_small, clone_large, "a clone copies no header text");
    assert!(
        clone_large <= 2,
        "the line list and nothing per line: {clone_large}"
    );

    // A response to a received request: the same count whatever the number
    // of lines (it shares the head; what it allocates is its line list and
    // the copies of the request's parsed Via, From and To).
    let for_request = |m: &Message, tag: Option<&str>| {
        let Message::Request(req) = m else {
            panic!("a request")
        };
        allocations(
            || (),
            |()| Response::for_request(req, StatusCode::OK, tag).unwrap(),
        )
        .0
    };
    for tag in [None, Some("t")] {
        assert_eq!(for_request(&small, tag), for_request(&large, tag));
    }
    assert!(for_request(&large, None) <= 8);

    // Building: pushing 20 more lines grows the one text buffer, not one
    // allocation per line (the names are formatted by this test: 1 each).
    let (few, _) = allocations(|| (), |()| built(4));
    let (many, _) = allocations(|| (), |()| built(24));
    assert!(
        many - few <= 20 + 3,
        "one buffer for the text, not a string per line: {few} vs {many}"
    );
}
