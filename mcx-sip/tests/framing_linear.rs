//! TCP framing costs time and memory linear in the octets received, whatever the
//! chunking: a hostile peer that trickles a maximal message or pipelines many small
//! ones cannot make the decoder rescan or copy what it already handled.
#![allow(clippy::unwrap_used)]

use mcx_sip::{Limits, Message, Method, ParseError, Request, StreamDecoder};

/// An OPTIONS request with a body of `body_len` octets.
fn request(body_len: usize, n: u32) -> Vec<u8> {
    Request::builder(Method::Options, "sip:user@example.com")
        .via(
            "TCP",
            "192.0.2.1:5060",
            &mcx_sip::new_branch(n.to_be_bytes().repeat(2).try_into().unwrap()),
        )
        .max_forwards(70)
        .from(None, "sip:caller@example.com", "323")
        .to(None, "sip:user@example.com", None)
        .call_id(&format!("call-{n}@example.com"))
        .cseq(n)
        .body("text/plain", vec![b'x'; body_len])
        .build()
        .unwrap()
        .to_bytes()
}

/// Pushes `bytes` in chunks of `chunk` octets, draining after each push as a driver does;
/// returns the messages and the largest buffered amount seen.
fn feed(d: &mut StreamDecoder, bytes: &[u8], chunk: usize) -> (Vec<Message>, usize) {
    let mut got = Vec::new();
    let mut peak = 0;
    for c in bytes.chunks(chunk) {
        d.push(c);
        peak = peak.max(d.buffered());
        while let Some(m) = d.next_message().unwrap() {
            got.push(m);
        }
    }
    (got, peak)
}

#[test]
fn maximal_message_trickled_is_linear() {
    // Head + body = exactly Limits::TCP.max_message.
    let head_len = request(0, 1).len() + 1; // the Content-Length grows by digits
    let mut msg = request(Limits::TCP.max_message - head_len, 1);
    let extra = msg.len() as isize - Limits::TCP.max_message as isize;
    if extra != 0 {
        let body = (Limits::TCP.max_message as isize - head_len as isize - extra) as usize;
        msg = request(body, 1);
    }
    assert_eq!(msg.len(), Limits::TCP.max_message);
    for chunk in [1, 7] {
        let mut d = StreamDecoder::new(Limits::TCP);
        let (got, _) = feed(&mut d, &msg, chunk);
        assert_eq!(got.len(), 1, "chunk {chunk}");
        assert_eq!(got[0].to_bytes(), msg);
        assert_eq!(d.buffered(), 0);
        let pushed = msg.len() as u64;
        assert!(
            d.work() <= 4 * pushed,
            "chunk {chunk}: {} octets of work for {pushed} pushed",
            d.work()
        );
    }
}

#[test]
fn head_trickled_is_linear() {
    // The head itself is long (many headers): the search for its end must resume, not restart.
    let mut b = Request::builder(Method::Options, "sip:user@example.com")
        .via("TCP", "192.0.2.1:5060", &mcx_sip::new_branch([1; 8]))
        .max_forwards(70)
        .from(None, "sip:caller@example.com", "323")
        .to(None, "sip:user@example.com", None)
        .call_id("c@example.com")
        .cseq(1);
    for i in 0..100 {
        b = b.header(&format!("X-Filler-{i}"), &"y".repeat(1000));
    }
    let msg = b.build().unwrap().to_bytes();
    let mut d = StreamDecoder::new(Limits::TCP);
    let (got, _) = feed(&mut d, &msg, 1);
    assert_eq!(got.len(), 1);
    assert!(
        d.work() <= 4 * msg.len() as u64,
        "{} for {}",
        d.work(),
        msg.len()
    );
}

#[test]
fn pipelined_messages_are_linear() {
    let mut all = Vec::new();
    for n in 1..=1000 {
        all.extend_from_slice(b"\r\n"); // keep-alives in between
        all.extend_from_slice(&request(20, n));
    }
    // In one push (the worst case for "drain the front"), then in odd chunks.
    for chunk in [all.len(), 7, 1] {
        let mut d = StreamDecoder::new(Limits::TCP);
        let (got, _) = feed(&mut d, &all, chunk);
        assert_eq!(got.len(), 1000, "chunk {chunk}");
        let Message::Request(last) = &got[999] else {
            panic!("not a request")
        };
        assert_eq!(last.call_id().unwrap(), "call-1000@example.com");
        assert!(
            d.work() <= 4 * all.len() as u64,
            "chunk {chunk}: {} octets of work for {} pushed",
            d.work(),
            all.len()
        );
    }
}

#[test]
fn buffer_stays_within_one_message_and_one_read() {
    let limits = Limits {
        max_message: 10_000,
        ..Limits::TCP
    };
    const READ: usize = 4096;
    // Garbage without a head end: refused once past the limit, never held beyond it + a read.
    let mut d = StreamDecoder::new(limits);
    let mut peak = 0;
    let mut failed = false;
    for _ in 0..10 {
        d.push(&[b'a'; READ]);
        peak = peak.max(d.buffered());
        if d.next_message().is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed);
    assert!(peak <= limits.max_message + READ, "{peak}");
    assert_eq!(d.buffered(), 0, "the buffer is freed on error");
    assert_eq!(
        d.next_message(),
        Err(ParseError::TooLarge { limit: 10_000 })
    );

    // Honest messages just under the limit, back to back in reads of READ octets.
    let msg = request(9_000, 1);
    let mut all = Vec::new();
    for _ in 0..20 {
        all.extend_from_slice(&msg);
    }
    let mut d = StreamDecoder::new(limits);
    let (got, peak) = feed(&mut d, &all, READ);
    assert_eq!(got.len(), 20);
    assert!(peak <= limits.max_message + READ, "{peak}");
}

#[test]
fn in_message_tells_a_partial_message_from_keep_alives() {
    let msg = request(10, 1);
    let mut d = StreamDecoder::new(Limits::TCP);
    d.push(b"\r\n\r\n");
    assert_eq!(d.next_message(), Ok(None));
    assert!(!d.in_message(), "keep-alives are not a message");
    d.push(&msg[..5]);
    assert_eq!(d.next_message(), Ok(None));
    assert!(d.in_message());
    // Head complete, body not.
    d.push(&msg[5..msg.len() - 1]);
    assert_eq!(d.next_message(), Ok(None));
    assert!(d.in_message());
    d.push(&msg[msg.len() - 1..]);
    assert!(d.next_message().unwrap().is_some());
    assert!(!d.in_message());
}

proptest::proptest! {
    /// However the stream is cut, the same messages come out (the incremental search
    /// finds a CRLF CRLF split across pushes, including after a lone CR).
    #[test]
    fn any_chunking_frames_the_same(cuts in proptest::collection::vec(1usize..40, 1..64), body in 0usize..50) {
        let mut all = Vec::new();
        for n in 1..=5 {
            all.extend_from_slice(b"\r\n");
            all.extend_from_slice(&request(body, n));
        }
        let mut d = StreamDecoder::new(Limits::TCP);
        let mut got = Vec::new();
        let mut rest = &all[..];
        let mut i = 0;
        while !rest.is_empty() {
            let n = cuts[i % cuts.len()].min(rest.len());
            i += 1;
            d.push(&rest[..n]);
            rest = &rest[n..];
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
        }
        proptest::prop_assert_eq!(got.len(), 5);
        for (n, m) in got.iter().enumerate() {
            proptest::prop_assert_eq!(m.to_bytes(), request(body, n as u32 + 1));
        }
    }
}
