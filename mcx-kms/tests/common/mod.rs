//! Shared fixtures of the mcx-kms integration tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use mcx_kms::http::{HttpRequest, HttpResponse};
use mcx_kms::{Kms, KmsConfig, KmsUser};

pub const KMS_URI: &str = "kms.example.org";
pub const ALICE: &str = "sip:alice@example.org";
pub const BOB: &str = "sip:bob@example.org";
pub const ALICE_TOKEN: &str = "alice-secret-token-4f1c";
pub const BOB_TOKEN: &str = "bob-secret-token-9a2e";
/// 30 days, as TS 33.180's examples.
pub const PERIOD: u64 = 2_592_000;
/// 2023-11-14T22:13:20Z.
pub const NOW: u64 = 1_700_000_000;

/// splitmix64: deterministic, so runs replay.
pub struct TestRng(pub u64);

impl rand_core::TryRng for TestRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.try_next_u64()? as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Ok(z ^ (z >> 31))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(8) {
            let v = self.try_next_u64()?.to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Ok(())
    }
}

impl rand_core::TryCryptoRng for TestRng {}

pub fn config() -> KmsConfig {
    KmsConfig {
        kms_uri: KMS_URI.into(),
        key_period_len: PERIOD,
        key_period_offset: 0,
        users: vec![
            KmsUser {
                uri: ALICE.into(),
                token: ALICE_TOKEN.into(),
                security: None,
            },
            KmsUser {
                uri: BOB.into(),
                token: BOB_TOKEN.into(),
                security: None,
            },
        ],
    }
}

/// The operator store key of the file-backed tests.
pub fn store_key() -> mcx_kms::StoreKey {
    mcx_kms::StoreKey::from_bytes([0x5c; 32])
}

pub fn kms() -> Kms {
    Kms::open(
        None,
        None,
        config(),
        &mut rand_core::UnwrapErr(getrandom::SysRng),
    )
    .unwrap()
}

pub fn ok(response: &HttpResponse) -> &[u8] {
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(response.content_type, "application/xml");
    &response.body
}

/// A request with `header` replaced (or removed when `value` is None).
pub fn with_header(mut request: HttpRequest, name: &str, value: Option<&str>) -> HttpRequest {
    request
        .headers
        .retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    if let Some(value) = value {
        request.headers.push((name.to_owned(), value.to_owned()));
    }
    request
}

/// A temporary file path, removed (with SQLite's side files) on drop.
pub struct TempDb(pub std::path::PathBuf);

impl TempDb {
    pub fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Self(std::env::temp_dir().join(format!(
            "mcx-kms-{tag}-{}-{nanos}.sqlite",
            std::process::id()
        )))
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-journal", "-wal", "-shm"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}
