//! SIP message trace at `trace` level (target `mcx::sip`): the start line
//! and headers of every message in and out, never a secret — credentials
//! (`Authorization`, `Proxy-Authorization`) are redacted and bodies (SDP,
//! MIKEY, mcptt-info) are shown only by type and length.

use std::fmt::Display;

/// Header names whose values are never logged.
const SECRET_HEADERS: [&str; 2] = ["authorization", "proxy-authorization"];

/// The message `bytes` as a trace shows it.
pub fn redacted(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut out = String::with_capacity(head.len() + 64);
    let mut content_type = "";
    for line in head.split("\r\n") {
        let name = line.split(':').next().unwrap_or_default().trim();
        if SECRET_HEADERS.iter().any(|s| name.eq_ignore_ascii_case(s)) {
            out.push_str(name);
            out.push_str(": <redacted>\n");
            continue;
        }
        if name.eq_ignore_ascii_case("content-type") || name.eq_ignore_ascii_case("c") {
            content_type = line.split_once(':').map_or("", |(_, v)| v.trim());
        }
        out.push_str(line);
        out.push('\n');
    }
    if !body.is_empty() {
        let kind = content_type.split(';').next().unwrap_or_default();
        out.push_str(&format!("[body: {} octets of {kind}]", body.len()));
    }
    out
}

/// Logs one SIP message of node `role` (`dir` "in from" or "out to") if
/// tracing is on. The fields (`role`, `dir`, `peer`, `message`) let a
/// subscriber file each role's messages apart (`mcx … --sip-trace DIR`).
pub(crate) fn sip(role: &str, dir: &str, peer: &dyn Display, bytes: impl FnOnce() -> Vec<u8>) {
    if tracing::enabled!(target: "mcx::sip", tracing::Level::TRACE) {
        tracing::trace!(
            target: "mcx::sip",
            role,
            dir,
            peer = %peer,
            "SIP {dir} {peer}\n{}",
            redacted(&bytes())
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_bodies_never_show() {
        let msg = b"REGISTER sip:mcs-a@mcx.test SIP/2.0\r\n\
Via: SIP/2.0/TLS a1.mcx.test;branch=z9hG4bK1\r\n\
authorization: Bearer eyJhbGciOiJFUzI1NiJ9.secret.sig\r\n\
Proxy-Authorization: Digest response=\"abc\"\r\n\
Content-Type: application/mikey\r\n\
Content-Length: 8\r\n\r\n\x01\x02secret";
        let t = redacted(msg);
        assert!(t.contains("REGISTER sip:mcs-a@mcx.test SIP/2.0"), "{t}");
        assert!(t.contains("authorization: <redacted>"), "{t}");
        assert!(t.contains("Proxy-Authorization: <redacted>"), "{t}");
        assert!(t.contains("[body: 8 octets of application/mikey]"), "{t}");
        for secret in ["eyJ", "response=", "secret"] {
            assert!(!t.contains(secret), "{secret} in {t}");
        }
    }
}
