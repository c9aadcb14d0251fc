//! MIKEY decoding of arbitrary bytes: never panics; whatever decodes
//! re-encodes to exactly the input (and its layout agrees); the describe
//! view (text and JSON) never panics either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcx_mikey::Message;
use mcx_mikey::describe::{Keys, describe};

fuzz_target!(|data: &[u8]| {
    if let Ok((msg, layout)) = Message::decode_with_layout(data) {
        let (bytes, layout2) = msg.encode_with_layout().expect("a decoded message encodes");
        assert_eq!(bytes, data);
        assert_eq!(layout, layout2);
    }
    let d = describe(data, &Keys::default());
    let _ = d.to_text();
    let _ = d.to_json();
});
