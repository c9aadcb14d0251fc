//! ECCSI decoders (signature, KPAK, PVT, SSK): never panic; what decodes
//! re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcx_ibc::eccsi::{Kpak, Pvt, Signature, Ssk};

fuzz_target!(|data: &[u8]| {
    if let Ok(sig) = Signature::from_bytes(data) {
        assert_eq!(&sig.to_bytes()[..], data);
    }
    if let Ok(k) = Kpak::from_bytes(data) {
        assert_eq!(&k.to_bytes()[..], data);
    }
    if let Ok(p) = Pvt::from_bytes(data) {
        assert_eq!(&p.to_bytes()[..], data);
    }
    let _ = Ssk::from_bytes(data);
});
