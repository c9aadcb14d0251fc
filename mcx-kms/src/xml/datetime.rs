//! `xs:dateTime` in UTC from and to Unix seconds, without a calendar crate.
//!
//! The conversion between days since 1970-01-01 and a proleptic Gregorian
//! date is Howard Hinnant's `days_from_civil`/`civil_from_days`
//! (<https://howardhinnant.github.io/date_algorithms.html>), exact for every
//! date this crate handles.

/// Seconds in a day.
const DAY: u64 = 86_400;

/// Days since 1970-01-01 of the proleptic Gregorian date `y-m-d`.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let mp = i64::from((m + 9) % 12); // March = 0
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of day `z` since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let y = yoe + era * 400 + i64::from(m <= 2);
    // d and m are in small ranges: the casts cannot truncate.
    (y, m as u32, d as u32)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        _ => 28,
    }
}

/// Formats Unix seconds as an `xs:dateTime` in UTC:
/// `YYYY-MM-DDThh:mm:ssZ`.
///
/// ```
/// assert_eq!(mcx_kms::xml::format_date_time(0), "1970-01-01T00:00:00Z");
/// assert_eq!(mcx_kms::xml::format_date_time(951_782_400), "2000-02-29T00:00:00Z");
/// ```
pub fn format_date_time(unix: u64) -> String {
    // u64 seconds / 86400 < 2^47: fits i64.
    let days = i64::try_from(unix / DAY).unwrap_or(i64::MAX / 2);
    let secs = unix % DAY;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Parses an `xs:dateTime` into Unix seconds.
///
/// Accepts `YYYY-MM-DDThh:mm:ss`, optional fractional seconds (dropped),
/// then `Z`, a `+hh:mm`/`-hh:mm` offset, or nothing. A time without a zone
/// is taken as UTC (Annex D's examples carry no zone designator). Returns
/// `None` for anything else, for `24:00:00`, leap seconds and times before
/// 1970.
pub fn parse_date_time(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 19 || b.len() > 40 {
        return None;
    }
    let num = |range: core::ops::Range<usize>| -> Option<u32> {
        let part = b.get(range)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        part.iter().try_fold(0u32, |acc, &c| {
            acc.checked_mul(10)?.checked_add(u32::from(c - b'0'))
        })
    };
    let sep = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(sep(4, b'-') && sep(7, b'-') && sep(10, b'T') && sep(13, b':') && sep(16, b':')) {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let y = i64::from(y);
    if !(1..=12).contains(&mo)
        || d == 0
        || d > days_in_month(y, mo)
        || h > 23
        || mi > 59
        || sec > 59
    {
        return None;
    }
    let mut rest = b.get(19..)?;
    if let Some((b'.', frac)) = rest.split_first() {
        let digits = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        rest = frac.get(digits..)?;
    }
    let offset: i64 = match rest {
        [] | [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digit = |c: &u8| c.is_ascii_digit().then(|| i64::from(c - b'0'));
            let oh = digit(h1)? * 10 + digit(h2)?;
            let om = digit(m1)? * 10 + digit(m2)?;
            if oh > 14 || om > 59 || (oh == 14 && om != 0) {
                return None;
            }
            let off = oh * 3600 + om * 60;
            if *sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    let local = days_from_civil(y, mo, d) * 86_400
        + i64::from(h) * 3600
        + i64::from(mi) * 60
        + i64::from(sec);
    u64::try_from(local - offset).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(format_date_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_date_time(951_782_400), "2000-02-29T00:00:00Z");
        // KeyPeriodNo 236 of the Streamwide vectors starts here (NTP
        // 236 * 16777215 = 3959422740).
        assert_eq!(format_date_time(1_750_433_940), "2025-06-20T15:39:00Z");
        // D.2.4's example timestamp D6B43232 (NTP seconds).
        assert_eq!(
            format_date_time(0xD6B4_3232 - 2_208_988_800),
            "2014-02-23T08:39:14Z"
        );
        assert_eq!(format_date_time(253_402_300_799), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn parses_zones_and_fractions() {
        assert_eq!(parse_date_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_date_time("1970-01-01T00:00:00"), Some(0));
        assert_eq!(parse_date_time("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_date_time("1970-01-01T00:00:00.999Z"), Some(0));
        assert_eq!(parse_date_time("2014-01-26T10:05:52"), Some(1_390_730_752));
        assert_eq!(
            parse_date_time("2016-11-01T00:00:00+09:00"),
            Some(1_477_926_000)
        );
    }

    #[test]
    fn refuses_invalid() {
        for bad in [
            "",
            "1970-01-01",
            "1970-01-01 00:00:00Z",
            "1970-13-01T00:00:00Z",
            "1970-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "1970-01-01T24:00:00Z",
            "1970-01-01T00:00:60Z",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:00:00.Z",
            "1970-01-01T00:00:00+1:00",
            "1970-01-01T00:00:00+15:00",
            "1970-01-01T00:00:00ZZ",
            "+970-01-01T00:00:00Z",
            "197a-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_date_time(bad), None, "{bad}");
        }
        assert_eq!(parse_date_time("2000-02-29T00:00:00Z"), Some(951_782_400));
    }

    proptest::proptest! {
        #[test]
        fn round_trip(t in 0u64..=253_402_300_799) {
            proptest::prop_assert_eq!(parse_date_time(&format_date_time(t)), Some(t));
        }

        #[test]
        fn never_panics(s in "\\PC{0,45}") {
            let _ = parse_date_time(&s);
        }
    }
}
