//! Floor control decoding of arbitrary bytes: never panics; every
//! decoded MCPT packet without RTCP padding re-encodes to exactly its
//! input octets; the participant and the broadcast arbitrator accept or
//! refuse the bytes without panicking.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use mcx_floor::{
    ArbitratorConfig, BroadcastArbitrator, Message, Participant, ParticipantConfig, ParticipantId,
    RtcpPacket, decode_compound,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(packets) = decode_compound(data) {
        let mut pos = 0;
        for p in packets {
            let len = (usize::from(u16::from_be_bytes([data[pos + 2], data[pos + 3]])) + 1) * 4;
            let raw = &data[pos..pos + len];
            if let RtcpPacket::Floor(m) = p {
                let bytes = m.to_bytes().expect("a decoded message encodes");
                if raw[0] & 0x20 == 0 {
                    assert_eq!(bytes, raw);
                }
                assert_eq!(Message::decode(&bytes).expect("re-decodes"), m);
            }
            pos += len;
        }
        assert_eq!(pos, data.len());
    }
    let now = Instant::now();
    let mut p = Participant::new(ParticipantConfig::new(1, "sip:a@example.org")).unwrap();
    let _ = p.start(now, data.first().is_some_and(|b| b & 1 == 1));
    let _ = p.handle(now, data);
    while p.poll_transmit().is_some() {}
    let mut a = BroadcastArbitrator::new(ArbitratorConfig::new(2), "sip:d@example.org").unwrap();
    let _ = a.add_receiver(now, "sip:b@example.org");
    let _ = a.start(now);
    let _ = a.handle(now, ParticipantId(data.len() % 2), data);
    while a.poll_transmit().is_some() {}
});
