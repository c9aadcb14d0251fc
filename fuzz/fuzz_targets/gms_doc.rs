//! GMS documents (TS 24.481 group documents with GKTPs, the group index) of
//! arbitrary bytes: the parsers never panic; whatever parses re-encodes to
//! a document that parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcx_gms::doc::{Document, encode_index, parse_index};

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = Document::parse(data) {
        let again = Document::parse(&d.to_xml()).expect("an encoded document parses");
        assert_eq!(again, d);
    }
    if let Ok(ids) = parse_index(data) {
        assert_eq!(parse_index(&encode_index(&ids)).expect("an encoded index parses"), ids);
    }
});
