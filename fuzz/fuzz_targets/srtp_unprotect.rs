//! SRTP and SRTCP unprotect of arbitrary bytes: never panics, never
//! authenticates (the session's keys are fixed and the input is not
//! protected with them), leaves a refused buffer unchanged, and counts every
//! refusal. The first byte picks the configuration (MKI length 0/4/8, RCCm3
//! on/off); the rest is a sequence of `len(1) || packet` records, all fed to
//! one session so stream state (ROC, replay window) is exercised too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcx_srtp::{Config, MasterKey, Mki, RocCarriage, Session};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, mut rest)) = data.split_first() else {
        return;
    };
    let mki_len = [0usize, 4, 8][usize::from(selector % 3)];
    let mut config = Config::new().with_mki_len(mki_len).with_max_streams(4);
    if selector & 0x10 != 0 {
        config = config.with_roc_carriage(RocCarriage::RCCM3_EVERY_PACKET);
    }
    let mut session = Session::new(config).expect("valid config");
    let mki = Mki::new(&[0u8; 8][..mki_len]).expect("mki");
    session
        .add_key(mki, MasterKey::new([7; 16], [9; 12]))
        .expect("first key");

    let mut attempts = 0u64;
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        let (packet, next) = tail.split_at(n);
        rest = next;

        let mut buf = packet.to_vec();
        assert!(session.unprotect_rtp(&mut buf).is_err(), "random SRTP authenticated");
        assert_eq!(buf, packet);
        assert!(session.unprotect_rtcp(&mut buf).is_err(), "random SRTCP authenticated");
        assert_eq!(buf, packet);
        attempts += 2;
    }
    assert_eq!(session.stats().failures(), attempts);
});
