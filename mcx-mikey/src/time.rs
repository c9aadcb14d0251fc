//! NTP time as MIKEY carries it (RFC 3830 6.6: NTP-UTC, 32 bits of seconds
//! since 1900-01-01 and 32 bits of fraction). This crate never reads a
//! clock: callers pass Unix seconds.

pub use mcx_ibc::uid::NTP_UNIX_OFFSET;

/// Seconds in one NTP era (2^32).
const ERA: i64 = 1 << 32;

/// The 64-bit NTP-UTC value of `unix_secs` (fraction 0). The seconds field
/// wraps at the end of era 0 (2036), as NTP does.
pub fn unix_to_ntp64(unix_secs: u64) -> u64 {
    let ntp = unix_secs.wrapping_add(NTP_UNIX_OFFSET) & 0xffff_ffff;
    ntp << 32
}

/// Unix seconds of a 64-bit NTP value, choosing the NTP era that puts it
/// nearest to `now_unix` (so the era-0 wrap in 2036 is handled).
pub fn ntp64_to_unix(ntp: u64, now_unix: u64) -> i64 {
    let secs = (ntp >> 32) as i64;
    let now_ntp = i64::try_from(now_unix).unwrap_or(i64::MAX / 2) + NTP_UNIX_OFFSET as i64;
    // Candidate in the same era as now, then step one era towards now.
    let base = now_ntp - now_ntp.rem_euclid(ERA);
    let mut t = base + secs;
    if t - now_ntp > ERA / 2 {
        t -= ERA;
    } else if now_ntp - t > ERA / 2 {
        t += ERA;
    }
    t - NTP_UNIX_OFFSET as i64
}

/// NTP seconds since 1900 of a Unix time, as key periods count them.
pub fn unix_to_ntp_secs(unix_secs: i64) -> Option<u64> {
    u64::try_from(unix_secs.checked_add(NTP_UNIX_OFFSET as i64)?).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn vendor_time_stamp() {
        // Streamwide's T: ec898da8 00000000 = 2025-10-02T23:47:52Z.
        let t = 0xec89_8da8_0000_0000u64;
        assert_eq!(ntp64_to_unix(t, 1_759_000_000), 1_759_448_872);
        assert_eq!(unix_to_ntp64(1_759_448_872), t);
    }

    #[test]
    fn era_wrap() {
        // 2036-02-07T06:28:16Z is NTP 2^32: the seconds field wraps to 0.
        let wrap_unix = (1u64 << 32) - NTP_UNIX_OFFSET;
        let t = unix_to_ntp64(wrap_unix + 10);
        assert_eq!(t >> 32, 10);
        assert_eq!(ntp64_to_unix(t, wrap_unix), (wrap_unix + 10) as i64);
        let before = unix_to_ntp64(wrap_unix - 10);
        assert_eq!(
            ntp64_to_unix(before, wrap_unix + 5),
            (wrap_unix - 10) as i64
        );
    }
}
