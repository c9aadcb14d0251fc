//! SAKKE point decoder (KMS public key, RSK, R): decode must never panic,
//! and whatever decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcx_ibc::sakke;

fuzz_target!(|data: &[u8]| {
    if let Ok(encoded) = sakke::internal::decode_point(data) {
        assert_eq!(&encoded[..], data);
    }
    let _ = sakke::Rsk::from_bytes(data);
    let _ = sakke::MasterSecret::from_bytes(data);
});
