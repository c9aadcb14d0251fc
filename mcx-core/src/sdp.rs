//! Minimal SDP offer and answer (RFC 4566) for an MCPTT group call: one
//! audio stream over SRTP and the MCPTT floor control channel.

/// An SDP offer (or answer) from `user` with its media on `host`.
pub(crate) fn session(user: &str, host: &str, session_id: u64) -> String {
    let user = user.replace([' ', '\r', '\n'], "");
    format!(
        "v=0\r\n\
         o={user} {session_id} 1 IN IP4 {host}\r\n\
         s=-\r\n\
         c=IN IP4 {host}\r\n\
         t=0 0\r\n\
         m=audio 49170 RTP/SAVP 96\r\n\
         a=rtpmap:96 opus/48000/2\r\n\
         m=application 49172 udp MCPTT\r\n\
         a=fmtp:MCPTT mc_queueing;mc_priority=4\r\n"
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
