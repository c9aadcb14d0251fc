//! MC identities: the MIKEY-SAKKE UID and key periods (3GPP TS 33.180
//! Annex F.2.1, identifier scheme 2 of RFC 6509/TS 33.180).
//!
//! A user's SAKKE and ECCSI keys are not issued for the bare MC service ID
//! URI but for a UID that also binds the KMS and the current key period, so
//! that keys expire with the period. The UID is the 32-octet identifier that
//! goes into ECCSI ([`crate::eccsi`]) and SAKKE as `ID`.
//!
//! # Time
//! TS 33.180 counts key periods from 0h UTC on 1 January 1900, the NTP
//! epoch: `KeyPeriodNo = floor((now - UserKeyOffset) / UserKeyPeriod)`, with
//! `now` in NTP seconds. This crate never reads a clock: the functions here
//! take and return Unix seconds and convert with [`NTP_UNIX_OFFSET`].
//! (The Streamwide vectors confirm the NTP epoch: KeyPeriodNo 236 with
//! UserKeyPeriod 16777215 and UserKeyOffset 0 is the second half of 2025;
//! counted from 1970 it would be 2095.)

use sha2::{Digest, Sha256};

use crate::Error;

/// Seconds from the NTP epoch (1900-01-01T00:00:00Z) to the Unix epoch
/// (1970-01-01T00:00:00Z): 70 years with 17 leap days.
pub const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Length of a MIKEY-SAKKE UID: a SHA-256 output.
pub const UID_LEN: usize = 32;

/// The prefix `P0` of the UID hash input.
const P0: &[u8] = b"MIKEY-SAKKE-UID";

/// The inputs of a MIKEY-SAKKE UID (TS 33.180 F.2.1): who, which KMS, which
/// key period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UidParams<'a> {
    /// P1: the MC service user ID URI, e.g. `sip:alice@example.org`.
    pub uri: &'a str,
    /// P2: the KMS URI, e.g. `kms.example.org`.
    pub kms_uri: &'a str,
    /// P3: the key period length in seconds (the KMS's UserKeyPeriod).
    pub key_period_len: u64,
    /// P4: the key period offset in seconds (the KMS's UserKeyOffset).
    pub key_period_offset: u64,
    /// P5: the key period number (see [`key_period_no`]).
    pub key_period_no: u64,
}

impl UidParams<'_> {
    /// Computes the UID; see [`mikey_sakke_uid`].
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if a URI is longer than 65535 octets.
    pub fn uid(&self) -> Result<[u8; UID_LEN], Error> {
        mikey_sakke_uid(
            self.uri,
            self.kms_uri,
            self.key_period_len,
            self.key_period_offset,
            self.key_period_no,
        )
    }
}

/// Computes the MIKEY-SAKKE UID of TS 33.180 F.2.1:
///
/// ```text
/// UID = SHA-256( 0x00                              FC
///             || "MIKEY-SAKKE-UID" || 0x00 0x0F   P0 || L0
///             || uri               || L1          P1: MC service user ID URI
///             || kms_uri           || L2          P2: KMS URI
///             || key_period_len    || L3          P3: key period length (s)
///             || key_period_offset || L4          P4: key period offset (s)
///             || key_period_no     || L5 )        P5: current key period number
/// ```
///
/// This is the TS 33.220 Annex B.2 input string `S = FC || P0 || L0 || ...`
/// hashed with plain SHA-256 (no HMAC key). Each `Lx` is the length of `Px`
/// in octets, as 2 octets big-endian, and follows its `Px`. URIs are their
/// UTF-8 octets as given (no normalisation). Integers are big-endian with no
/// leading zero octets; 0 is the single octet 0x00. The layout reproduces the
/// Streamwide interop vectors.
///
/// # Errors
/// [`Error::InvalidParameter`] if a URI is longer than 65535 octets and so
/// has no 2-octet length.
pub fn mikey_sakke_uid(
    uri: &str,
    kms_uri: &str,
    key_period_len: u64,
    key_period_offset: u64,
    key_period_no: u64,
) -> Result<[u8; UID_LEN], Error> {
    let mut hash = Sha256::new();
    hash.update([0x00]);
    put(&mut hash, P0)?;
    put(&mut hash, uri.as_bytes())?;
    put(&mut hash, kms_uri.as_bytes())?;
    put(&mut hash, minimal_be(key_period_len).as_slice())?;
    put(&mut hash, minimal_be(key_period_offset).as_slice())?;
    put(&mut hash, minimal_be(key_period_no).as_slice())?;
    Ok(hash.finalize().into())
}

/// Appends `Px || Lx`.
fn put(hash: &mut Sha256, px: &[u8]) -> Result<(), Error> {
    let lx = u16::try_from(px.len())
        .map_err(|_| Error::InvalidParameter("UID parameter longer than 65535 octets"))?;
    hash.update(px);
    hash.update(lx.to_be_bytes());
    Ok(())
}

/// Big-endian octets of `n` without leading zero octets; 0 is one 0x00.
struct MinimalBe {
    bytes: [u8; 8],
    start: usize,
}

impl MinimalBe {
    fn as_slice(&self) -> &[u8] {
        self.bytes.get(self.start..).unwrap_or(&[])
    }
}

fn minimal_be(n: u64) -> MinimalBe {
    let bytes = n.to_be_bytes();
    // At most 7 leading zero octets, so 0 keeps its last octet.
    let start = bytes.iter().take(7).take_while(|&&b| b == 0).count();
    MinimalBe { bytes, start }
}

/// The key period number at time `now_unix_secs` (seconds since the Unix
/// epoch): `floor((now - key_period_offset) / key_period_len)` with `now`
/// counted from the NTP epoch, 1900-01-01T00:00:00Z (TS 33.180).
///
/// `key_period_len` and `key_period_offset` are the KMS's UserKeyPeriod and
/// UserKeyOffset, in seconds.
///
/// # Errors
/// [`Error::InvalidParameter`] if `key_period_len` is 0, or if `now` is
/// before the offset (before key period 0) or out of the u64 NTP range.
pub fn key_period_no(
    now_unix_secs: u64,
    key_period_len: u64,
    key_period_offset: u64,
) -> Result<u64, Error> {
    if key_period_len == 0 {
        return Err(Error::InvalidParameter("key period length is zero"));
    }
    let now_ntp = now_unix_secs
        .checked_add(NTP_UNIX_OFFSET)
        .ok_or(Error::InvalidParameter("time is out of range"))?;
    let elapsed = now_ntp
        .checked_sub(key_period_offset)
        .ok_or(Error::InvalidParameter("time is before key period 0"))?;
    Ok(elapsed / key_period_len)
}

/// The start of key period `key_period_no`, in seconds since the Unix epoch:
/// `key_period_offset + key_period_no * key_period_len` NTP seconds. The
/// period ends where period `key_period_no + 1` starts.
///
/// # Errors
/// [`Error::InvalidParameter`] if `key_period_len` is 0, if the start
/// overflows u64, or if it is before the Unix epoch.
pub fn key_period_start(
    key_period_no: u64,
    key_period_len: u64,
    key_period_offset: u64,
) -> Result<u64, Error> {
    if key_period_len == 0 {
        return Err(Error::InvalidParameter("key period length is zero"));
    }
    key_period_no
        .checked_mul(key_period_len)
        .and_then(|t| t.checked_add(key_period_offset))
        .ok_or(Error::InvalidParameter("key period start is out of range"))?
        .checked_sub(NTP_UNIX_OFFSET)
        .ok_or(Error::InvalidParameter(
            "key period starts before the Unix epoch",
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_big_endian() {
        assert_eq!(minimal_be(0).as_slice(), [0x00]);
        assert_eq!(minimal_be(1).as_slice(), [0x01]);
        assert_eq!(minimal_be(255).as_slice(), [0xff]);
        assert_eq!(minimal_be(256).as_slice(), [0x01, 0x00]);
        assert_eq!(minimal_be(2_592_000).as_slice(), [0x27, 0x8d, 0x00]);
        assert_eq!(minimal_be(u64::MAX).as_slice(), [0xff; 8]);
    }

    #[test]
    fn ntp_offset_is_70_years() {
        assert_eq!(NTP_UNIX_OFFSET, (70 * 365 + 17) * 86_400);
    }
}
