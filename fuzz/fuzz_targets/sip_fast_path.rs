//! mcx-sip's fast path for the typed top Via, From/To and Contact and for
//! URI checks against ezk's reading alone: arbitrary text as each of them. Whenever
//! the fast path reads a value, ezk reads the same value (`Ok`); what a
//! message's accessor gives equals ezk's reading alone, errors included.
#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use mcx_sip::differential::{self, Readings};

fn agree<T: PartialEq + Debug>(value: &str, r: Readings<T>) {
    if let Some(fast) = &r.fast {
        assert_eq!(
            r.ezk.as_ref(),
            Ok(fast),
            "fast path and ezk differ on {value:?}"
        );
    }
    assert_eq!(
        r.public, r.ezk,
        "the accessor differs from ezk on {value:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    agree(value, differential::via(value));
    agree(value, differential::from_to(value));
    agree(value, differential::contact(value));
    agree(value, differential::uri(value));
});
