//! ECCSI verification of arbitrary (message, signature) pairs under RFC 6507's
//! example KPAK and identity: never panics, and accepts nothing but the
//! published signature over the published message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcx_ibc::eccsi::{self, Kpak, Signature};

const KPAK: &str = "0450d4670bde75244f28d2838a0d25558a7a72686d4522d4c8273fb6442aebfa93dbdd37551afd263b5dfd617f3960c65a8c298850ff99f20366dce7d4367217f4";
const ID: &[u8] = b"2011-02\0tel:+447700900123\0";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < eccsi::SIGNATURE_LEN {
        return;
    }
    let (sig, msg) = data.split_at(eccsi::SIGNATURE_LEN);
    let kpak = Kpak::from_bytes(&unhex(KPAK)).expect("RFC 6507 KPAK");
    if let Ok(sig) = Signature::from_bytes(sig) {
        if eccsi::verify(&kpak, ID, msg, &sig).is_ok() {
            assert_eq!(msg, b"message\0");
        }
    }
});
