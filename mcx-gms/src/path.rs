//! The request paths (XCAP-style, TS 24.481 / OMA XDM group usage
//! `org.openmobilealliance.groups`) and their percent-encoding
//! (RFC 3986 2.1).

/// The application usage prefix.
pub(crate) const AUID_PREFIX: &str = "/org.openmobilealliance.groups/";

/// Longest request path accepted.
pub(crate) const MAX_PATH_LEN: usize = 4 * 1024;

/// Percent-encodes everything but RFC 3986 unreserved characters, so the
/// result is one path segment.
pub(crate) fn encode_segment(s: &str) -> String {
    let mut o = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            o.push(char::from(b));
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// Decodes one path segment strictly: `%` must be followed by two hex
/// digits, the result must be UTF-8 without control characters.
pub(crate) fn decode_segment(s: &str) -> Result<String, &'static str> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3).ok_or("truncated percent-escape")?;
                let hi = char::from(hex[0])
                    .to_digit(16)
                    .ok_or("invalid percent-escape")?;
                let lo = char::from(hex[1])
                    .to_digit(16)
                    .ok_or("invalid percent-escape")?;
                out.push(u8::try_from(hi * 16 + lo).map_err(|_| "invalid percent-escape")?);
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    let s = String::from_utf8(out).map_err(|_| "not UTF-8 after percent-decoding")?;
    if s.chars().any(char::is_control) {
        return Err("control characters after percent-decoding");
    }
    Ok(s)
}

/// The resources the GMS serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `users/<user>/index`: the groups of a user (still encoded).
    Index(String),
    /// `global/<group>`: a group document (still encoded).
    Group(String),
}

/// Matches a path (no query) against the served resources.
pub(crate) fn route(path: &str) -> Option<Route> {
    let rest = path.strip_prefix(AUID_PREFIX)?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        ["users", user, "index"] if !user.is_empty() => Some(Route::Index((*user).to_owned())),
        ["global", group] if !group.is_empty() => Some(Route::Group((*group).to_owned())),
        _ => None,
    }
}

/// The path of a user's group index.
pub(crate) fn index_path(user_uri: &str) -> String {
    format!("{AUID_PREFIX}users/{}/index", encode_segment(user_uri))
}

/// The path of the group regroup resource (temporary group formation).
pub(crate) fn regroup_path() -> String {
    format!("{AUID_PREFIX}regroup")
}

/// The path of a group document.
pub(crate) fn group_path(group_id: &str) -> String {
    format!("{AUID_PREFIX}global/{}", encode_segment(group_id))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_route() {
        let u = "sip:alice+x@mcx.test;p=1/ é%";
        let p = index_path(u);
        assert!(!p.contains('@') && !p.contains(' ') && !p.contains(';'));
        let Some(Route::Index(seg)) = route(&p) else {
            panic!("no route")
        };
        assert_eq!(decode_segment(&seg).unwrap(), u);
        let Some(Route::Group(seg)) = route(&group_path("sip:g@x")) else {
            panic!("no route")
        };
        assert_eq!(decode_segment(&seg).unwrap(), "sip:g@x");
        for bad in ["%", "%4", "%zz", "%ff", "%00"] {
            assert!(decode_segment(bad).is_err(), "{bad}");
        }
        for p in [
            "/",
            "/org.openmobilealliance.groups/users//index",
            "/org.openmobilealliance.groups/users/a/index/x",
            "/org.openmobilealliance.groups/global/",
            "/org.openmobilealliance.groups/global/a/b",
            "/other/global/a",
        ] {
            assert_eq!(route(p), None, "{p}");
        }
    }
}
