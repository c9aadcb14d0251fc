//! SIP parsing of arbitrary bytes: the datagram parser, the TCP stream decoder
//! (fed in chunks), the multipart/mixed parser and the transaction layer never
//! panic; whatever parses re-encodes to bytes that parse to the same message.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use mcx_sip::{Limits, Message, Multipart, Remote, StreamDecoder, Timers, TransactionLayer, Transport};

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = Message::parse(data) {
        let again = Message::parse(&msg.to_bytes()).expect("an encoded message parses");
        assert_eq!(again, msg);
        let _ = Multipart::parse(msg.headers().get("Content-Type").unwrap_or("multipart/mixed;boundary=b"), msg.body());
        let mut layer = TransactionLayer::new(Timers::RFC3261);
        let now = Instant::now();
        let remote = Remote { addr: "192.0.2.1:5060".parse().expect("address"), transport: Transport::Udp };
        layer.handle_incoming(now, remote, msg);
        layer.handle_timeout(now + Duration::from_secs(1));
        while layer.poll_transmit().is_some() {}
    }
    let mut d = StreamDecoder::new(Limits::TCP);
    for chunk in data.chunks(13) {
        d.push(chunk);
        while let Ok(Some(m)) = d.next_message() {
            let _ = m.to_bytes();
        }
    }
    let _ = Multipart::parse("multipart/mixed;boundary=b", data);
});
