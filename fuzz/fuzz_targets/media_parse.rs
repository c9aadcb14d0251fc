//! The media plane's parsers on arbitrary bytes never panic: SDP (every
//! party reads its peers' offers and answers), WAV (`--audio FILE`), RTP
//! (what a member receives), and the relay's routing of any datagram.
#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sdp) = mcx_core::parse_sdp(data) {
        // Whatever was read is consistent: a port 0 line has no address.
        if let Some(a) = sdp.audio {
            assert_ne!(a.port(), 0);
        }
    }
    if let Ok(audio) = mcx_media::wav::read(data) {
        let _ = audio.to_mono_8k();
    }
    let _ = mcx_media::rtp::Packet::parse(data);
    let mut relay = mcx_relay::Relay::default();
    let from: SocketAddr = "10.0.0.1:5000".parse().unwrap();
    relay
        .set(mcx_relay::Route {
            source: from,
            ssrc: None,
            targets: vec!["10.0.0.2:4000".parse().unwrap()],
        })
        .unwrap();
    let out = relay.forward(from, data).is_ok();
    assert_eq!(out, relay.stats().forwarded == 1);
});
