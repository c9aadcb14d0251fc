//! KMS XML (TS 33.180 Annex D) of arbitrary bytes: the request and response
//! parsers never panic; whatever parses re-encodes to a document that
//! parses to the same value; the security extension's verifier
//! (`from_signed_xml`) never panics either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcx_kms::secext::SecurityKeys;
use mcx_kms::xml::{KmsRequest, KmsResponse};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = KmsRequest::from_xml(data) {
        let again = KmsRequest::from_xml(&r.to_xml()).expect("an encoded request parses");
        assert_eq!(again, r);
    }
    if let Ok(r) = KmsResponse::from_xml(data) {
        // Key sets hold secrets and have no `==`: compare encodings.
        let encoded = r.to_xml();
        let again = KmsResponse::from_xml(&encoded).expect("an encoded response parses");
        assert_eq!(again.to_xml(), encoded);
    }
    let _ = KmsResponse::from_signed_xml(data, &SecurityKeys::new([1; 32], [2; 32]));
});
