//! MIKEY-SAKKE UID and key period tests (TS 33.180 Annex F.2.1).
//!
//! Vector source: `tests/data/streamwide-mikey-sakke.json`, from Streamwide
//! `StreamwideTestVectors.md` (v5) of the sw_mikey_sakke library
//! (`uid_format_2` and the users provisioned by their KMS). Vendor interop
//! data, not 3GPP-official.
#![allow(clippy::unwrap_used)]

use mcx_ibc::Error;
use mcx_ibc::uid::{NTP_UNIX_OFFSET, UidParams, key_period_no, key_period_start, mikey_sakke_uid};
use proptest::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

const STREAMWIDE: &str = include_str!("data/streamwide-mikey-sakke.json");

fn streamwide() -> Value {
    serde_json::from_str(STREAMWIDE).unwrap()
}

fn num(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap()
}

#[test]
fn streamwide_uid_format_2_vectors() {
    let v = streamwide();
    let cases = v["uid_format_2"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let params = UidParams {
            uri: case["uri"].as_str().unwrap(),
            kms_uri: case["kms_uri"].as_str().unwrap(),
            key_period_len: num(&case["key_period"]),
            key_period_offset: num(&case["key_period_offset"]),
            key_period_no: num(&case["key_period_no"]),
        };
        let expected = hex::decode(case["uid"].as_str().unwrap()).unwrap();
        assert_eq!(params.uid().unwrap().to_vec(), expected, "{params:?}");
        assert_eq!(
            mikey_sakke_uid(
                params.uri,
                params.kms_uri,
                params.key_period_len,
                params.key_period_offset,
                params.key_period_no
            )
            .unwrap()
            .to_vec(),
            expected
        );
    }
}

#[test]
fn streamwide_users_uid() {
    let v = streamwide();
    let kms = &v["kms"];
    for name in ["GMS", "Alice", "Bob"] {
        let user = &v["users"][name];
        let uid = mikey_sakke_uid(
            user["UserUri"].as_str().unwrap(),
            kms["KmsUri"].as_str().unwrap(),
            num(&kms["UserKeyPeriod"]),
            num(&kms["UserKeyOffset"]),
            num(&user["KeyPeriodNo"]),
        )
        .unwrap();
        assert_eq!(
            uid.to_vec(),
            hex::decode(user["UserID"].as_str().unwrap()).unwrap(),
            "{name}"
        );
    }
}

/// The layout written out by hand, so a change in the encoder that still
/// happens to match one vector shows up.
#[test]
fn layout_by_hand() {
    let mut s = vec![0x00];
    s.extend_from_slice(b"MIKEY-SAKKE-UID\x00\x0f");
    s.extend_from_slice(b"sip:user@example.org\x00\x14");
    s.extend_from_slice(b"kms.example.org\x00\x0f");
    s.extend_from_slice(&[0x27, 0x8d, 0x00, 0x00, 0x03]); // 2592000
    s.extend_from_slice(&[0x00, 0x00, 0x01]); // 0
    s.extend_from_slice(&[0x01, 0x00, 0x01]); // 1
    let expected: [u8; 32] = Sha256::digest(&s).into();
    assert_eq!(
        mikey_sakke_uid("sip:user@example.org", "kms.example.org", 2_592_000, 0, 1).unwrap(),
        expected
    );
    assert_eq!(
        hex::encode(expected),
        "74e2af803ab5d72841bbced0ce319ffe64f6fe23c88a2d258aabcf6ac5658ef4"
    );
}

#[test]
fn uid_depends_on_every_parameter() {
    let base = UidParams {
        uri: "sip:alice@example.org",
        kms_uri: "kms.example.org",
        key_period_len: 2_592_000,
        key_period_offset: 0,
        key_period_no: 1,
    };
    let uid = base.uid().unwrap();
    for changed in [
        UidParams {
            uri: "sip:bob@example.org",
            ..base
        },
        UidParams {
            kms_uri: "kms2.example.org",
            ..base
        },
        UidParams {
            key_period_len: 2_592_001,
            ..base
        },
        UidParams {
            key_period_offset: 1,
            ..base
        },
        UidParams {
            key_period_no: 2,
            ..base
        },
        // Moving an octet across a parameter boundary changes the lengths.
        UidParams {
            uri: "sip:alice@example.or",
            kms_uri: "gkms.example.org",
            ..base
        },
    ] {
        assert_ne!(changed.uid().unwrap(), uid, "{changed:?}");
    }
}

#[test]
fn uid_rejects_uri_longer_than_65535_octets() {
    let long = "a".repeat(65_536);
    assert_eq!(
        mikey_sakke_uid(&long, "kms", 1, 0, 0),
        Err(Error::InvalidParameter(
            "UID parameter longer than 65535 octets"
        ))
    );
    assert_eq!(
        mikey_sakke_uid("sip:a@b", &long, 1, 0, 0),
        Err(Error::InvalidParameter(
            "UID parameter longer than 65535 octets"
        ))
    );
    mikey_sakke_uid(&long[1..], "kms", 1, 0, 0).unwrap();
}

// ---------------------------------------------------------------------------
// Key periods
// ---------------------------------------------------------------------------

/// 2025-11-25T00:00:00Z.
const NOV_2025: u64 = 1_764_028_800;

/// The Streamwide KMS (UserKeyPeriod 16777215, offset 0) issued its users'
/// keys for period 236. Counting from 1900 (NTP) puts period 236 in the
/// second half of 2025, when the vectors were published; counting from 1970
/// would put it in 2095.
#[test]
fn streamwide_period_236_is_2025() {
    let v = streamwide();
    let len = num(&v["kms"]["UserKeyPeriod"]);
    let offset = num(&v["kms"]["UserKeyOffset"]);
    assert_eq!(num(&v["users"]["Alice"]["KeyPeriodNo"]), 236);

    let start = key_period_start(236, len, offset).unwrap();
    assert_eq!(start, 236 * 16_777_215 - NTP_UNIX_OFFSET);
    assert_eq!(start, 1_750_433_940); // 2025-06-20T15:39:00Z
    let end = key_period_start(237, len, offset).unwrap();
    assert_eq!(end, 1_767_211_155); // 2025-12-31T19:59:15Z

    assert_eq!(key_period_no(NOV_2025, len, offset), Ok(236));
    assert_eq!(key_period_no(start, len, offset), Ok(236));
    assert_eq!(key_period_no(start - 1, len, offset), Ok(235));
    assert_eq!(key_period_no(end - 1, len, offset), Ok(236));
    assert_eq!(key_period_no(end, len, offset), Ok(237));
}

#[test]
fn key_period_with_offset() {
    // 30-day periods starting at the Unix epoch.
    let len = 30 * 86_400;
    let offset = NTP_UNIX_OFFSET;
    assert_eq!(key_period_no(0, len, offset), Ok(0));
    assert_eq!(key_period_no(len - 1, len, offset), Ok(0));
    assert_eq!(key_period_no(len, len, offset), Ok(1));
    assert_eq!(key_period_start(0, len, offset), Ok(0));
    assert_eq!(key_period_start(1, len, offset), Ok(len));
}

#[test]
fn key_period_zero_length_rejected() {
    assert_eq!(
        key_period_no(NOV_2025, 0, 0),
        Err(Error::InvalidParameter("key period length is zero"))
    );
    assert_eq!(
        key_period_start(1, 0, 0),
        Err(Error::InvalidParameter("key period length is zero"))
    );
}

#[test]
fn key_period_out_of_range() {
    assert_eq!(
        key_period_no(0, 1, NTP_UNIX_OFFSET + 1),
        Err(Error::InvalidParameter("time is before key period 0"))
    );
    assert_eq!(
        key_period_no(u64::MAX, 1, 0),
        Err(Error::InvalidParameter("time is out of range"))
    );
    assert_eq!(
        key_period_start(0, 16_777_215, 0),
        Err(Error::InvalidParameter(
            "key period starts before the Unix epoch"
        ))
    );
    assert_eq!(
        key_period_start(u64::MAX, 2, 0),
        Err(Error::InvalidParameter("key period start is out of range"))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// `now` lies in the period it is numbered with.
    #[test]
    fn prop_now_within_its_period(
        now in 0u64..4_000_000_000,
        len in 1u64..100_000_000,
        offset in 0u64..2_208_988_800,
    ) {
        let no = key_period_no(now, len, offset).unwrap();
        if let Ok(start) = key_period_start(no, len, offset) {
            prop_assert!(start <= now);
            prop_assert!(now - start < len);
        }
    }

    #[test]
    fn prop_uid_never_panics(
        uri in ".{0,64}",
        kms in ".{0,64}",
        len in any::<u64>(),
        offset in any::<u64>(),
        no in any::<u64>(),
    ) {
        let _ = mikey_sakke_uid(&uri, &kms, len, offset, no).unwrap();
        let _ = key_period_no(no, len, offset);
        let _ = key_period_start(no, len, offset);
    }
}
