//! proptest: arbitrary or mutated bytes never panic the parsers or the stream decoder.
#![allow(clippy::unwrap_used)]

use mcx_sip::{
    Limits, Message, Multipart, Remote, StreamDecoder, Timers, TransactionLayer, Transport,
};
use proptest::prelude::*;

const SEED: &[u8] = b"INVITE sip:g@example.org SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nMax-Forwards: 70\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:g@example.org>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Type: multipart/mixed;boundary=b\r\nContent-Length: 40\r\n\r\n--b\r\nContent-Type: a/b\r\n\r\nxy\r\n--b--\r\n";

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Message::parse(&data);
        let mut d = StreamDecoder::new(Limits::TCP);
        d.push(&data);
        while let Ok(Some(_)) = d.next_message() {}
        let _ = Multipart::parse("multipart/mixed;boundary=b", &data);
    }

    #[test]
    fn mutated_messages_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
        let mut m = SEED.to_vec();
        for (pos, b) in edits {
            let i = pos % m.len();
            m[i] = b;
        }
        m.truncate(cut % (m.len() + 1));
        if let Ok(msg) = Message::parse(&m) {
            // whatever parses re-encodes and parses again, and feeds the transaction layer
            let again = Message::parse(&msg.to_bytes());
            prop_assert!(again.is_ok());
            let _ = Multipart::parse(msg.headers().get("Content-Type").unwrap_or(""), msg.body());
            let mut l = TransactionLayer::new(Timers::RFC3261);
            let now = std::time::Instant::now();
            l.handle_incoming(now, Remote { addr: "192.0.2.1:5060".parse().unwrap(), transport: Transport::Udp }, msg);
            l.handle_timeout(now + std::time::Duration::from_secs(100));
        }
        let mut d = StreamDecoder::new(Limits::TCP);
        for chunk in m.chunks(7) {
            d.push(chunk);
            let _ = d.next_message();
        }
    }
}
