//! Minimal SDP offer and answer (RFC 4566) for an MCPTT group call: one
//! audio stream over SRTP and the MCPTT floor control channel.
//!
//! The floor-control media line carries the SSRC its sender uses for the
//! call's floor control packets (RFC 5576 `a=ssrc:<id> cname:<uri>`):
//! every call has its own, so a client or a controlling server in many
//! calls knows which call a floor packet belongs to.

/// An SDP offer (or answer) from `user` with its media on `host`, whose
/// floor control packets in this call carry `floor_ssrc`.
pub(crate) fn session(user: &str, host: &str, session_id: u64, floor_ssrc: Option<u32>) -> String {
    let user = user.replace([' ', '\r', '\n'], "");
    let ssrc = floor_ssrc.map_or_else(String::new, |s| format!("a=ssrc:{s} cname:{user}\r\n"));
    format!(
        "v=0\r\n\
         o={user} {session_id} 1 IN IP4 {host}\r\n\
         s=-\r\n\
         c=IN IP4 {host}\r\n\
         t=0 0\r\n\
         m=audio 49170 RTP/SAVP 96\r\n\
         a=rtpmap:96 opus/48000/2\r\n\
         m=application 49172 udp MCPTT\r\n\
         a=fmtp:MCPTT mc_queueing;mc_priority=4\r\n\
         {ssrc}"
    )
}

/// Whether an SDP has the two media lines this call needs.
pub(crate) fn is_valid(sdp: &[u8]) -> bool {
    let Ok(s) = core::str::from_utf8(sdp) else {
        return false;
    };
    s.starts_with("v=0")
        && s.lines()
            .any(|l| l.starts_with("m=audio ") && l.contains("RTP/SAVP"))
        && s.lines()
            .any(|l| l.starts_with("m=application ") && l.ends_with("udp MCPTT"))
}

/// The floor-control SSRC the SDP's sender announced (the first
/// `a=ssrc:` of the MCPTT media line), if any.
pub(crate) fn floor_ssrc(sdp: &[u8]) -> Option<u32> {
    let s = core::str::from_utf8(sdp).ok()?;
    let mut in_floor = false;
    for l in s.lines() {
        if l.starts_with("m=") {
            in_floor = l.starts_with("m=application ") && l.ends_with("udp MCPTT");
        } else if in_floor {
            if let Some(rest) = l.strip_prefix("a=ssrc:") {
                return rest.split(' ').next()?.parse().ok();
            }
        }
    }
    None
}

/// `sdp` with the floor-control SSRC replaced by `ssrc` (named `cname`):
/// what a floor control server forwards, since floor packets in the call
/// come from it, not from the offerer.
pub(crate) fn with_floor_ssrc(sdp: &[u8], ssrc: u32, cname: &str) -> String {
    let s = String::from_utf8_lossy(sdp);
    let cname = cname.replace([' ', '\r', '\n'], "");
    let mut out = String::with_capacity(s.len() + 40);
    let mut in_floor = false;
    let mut written = false;
    for l in s.lines() {
        if l.starts_with("m=") {
            if in_floor && !written {
                out.push_str(&format!("a=ssrc:{ssrc} cname:{cname}\r\n"));
                written = true;
            }
            in_floor = l.starts_with("m=application ") && l.ends_with("udp MCPTT");
        } else if in_floor && l.starts_with("a=ssrc:") {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    if in_floor && !written {
        out.push_str(&format!("a=ssrc:{ssrc} cname:{cname}\r\n"));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn floor_ssrc_is_announced_and_rewritten() {
        let s = session("sip:d@x", "x", 1, Some(42));
        assert!(is_valid(s.as_bytes()));
        assert_eq!(floor_ssrc(s.as_bytes()), Some(42));
        let r = with_floor_ssrc(s.as_bytes(), 7, "sip:ctrl@x");
        assert_eq!(floor_ssrc(r.as_bytes()), Some(7));
        assert_eq!(r.matches("a=ssrc:").count(), 1);
        assert!(is_valid(r.as_bytes()));
        // An offer without one gets one.
        let bare = s.replace("a=ssrc:42 cname:sip:d@x\r\n", "");
        assert_eq!(floor_ssrc(bare.as_bytes()), None);
        let r = with_floor_ssrc(bare.as_bytes(), 9, "c");
        assert_eq!(floor_ssrc(r.as_bytes()), Some(9));
    }
}
