//! SIP helpers shared by the roles: building requests and responses with
//! `mcx-sip`, parsing datagrams, reading multipart bodies.

use bytes::Bytes;
use mcx_sip::{
    Limits, Message, Method, Multipart, ParseError, Part, Request, new_branch, new_call_id,
    new_tag, parse_datagram,
};
use rand_core::CryptoRng;

use crate::info::McpttInfo;
use crate::result::{CALL_RESULT_CONTENT_TYPE, CallResult};
use crate::{Error, MCPTT_INFO_CONTENT_TYPE, MIKEY_CONTENT_TYPE, SDP_CONTENT_TYPE};

/// Part header naming the constituent group of a wrapped TGMK part
/// (decision, after the TS 24.481 GKTP attribute).
pub(crate) const GROUP_PART_HEADER: &str = "Content-Description";
const GROUP_PART_PREFIX: &str = "gktp;mcptt-group-id=";

pub(crate) fn rand8(rng: &mut impl CryptoRng) -> [u8; 8] {
    let mut b = [0u8; 8];
    rng.fill_bytes(&mut b);
    b
}

pub(crate) fn rand16(rng: &mut impl CryptoRng) -> [u8; 16] {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b
}

/// The host part of a SIP URI (for Via sent-by and Call-ID).
pub(crate) fn host_of(uri: &str) -> String {
    let rest = uri.split_once(':').map_or(uri, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
        .collect();
    if host.is_empty() {
        "invalid".to_owned()
    } else {
        host
    }
}

/// A new out-of-dialog INVITE from `from` to `request_uri` with `body`.
/// The MCPTT ICSI (TS 24.379 4.x, 3GPP TS 24.229 7.2A.8).
pub(crate) const ICSI_MCPTT: &str = "urn:urn-7:3gpp-service.ims.icsi.mcptt";

/// The media feature tags of an MCPTT Contact (TS 24.379 7.2.1.2, 10.1.1.2.1.1:
/// `g.3gpp.mcptt` and `g.3gpp.icsi-ref` with the MCPTT ICSI, URN-escaped).
pub(crate) const CONTACT_FEATURE_TAGS: &str =
    "+g.3gpp.mcptt;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mcptt\"";

/// The service a client asks for (TS 24.379 10.1.1.2.1.1: P-Preferred-Service).
pub(crate) fn preferred_service() -> (&'static str, String) {
    ("P-Preferred-Service", ICSI_MCPTT.to_owned())
}

/// The service a server asserts toward the next hop (TS 24.379 10.1.2.x,
/// 3GPP TS 24.229: P-Asserted-Service).
pub(crate) fn asserted_service() -> (&'static str, String) {
    ("P-Asserted-Service", ICSI_MCPTT.to_owned())
}

/// Every Resource-Priority value of `req` (RFC 4412 3.1: the header may
/// repeat), in order: a server passes them on to the next hop unchanged.
pub(crate) fn resource_priority(req: &Request) -> Vec<String> {
    req.headers()
        .iter()
        .filter(|h| {
            h.name
                .eq_ignore_ascii_case(mcx_sip::headers::RESOURCE_PRIORITY)
        })
        .map(|h| h.value.trim().to_owned())
        .collect()
}

/// A call INVITE (TS 24.379 10.1.1.2.1.1): the Contact with the MCPTT
/// feature tags, Accept-Contact requiring them (`require;explicit`), and
/// `extra_headers` (the service header, P-Asserted-Identity, ...).
/// An INVITE to `request_uri` whose To names `to` (the logical recipient,
/// RFC 3261 8.1.1.2: a member for an MC server's leg, else the
/// Request-URI).
pub(crate) fn invite(
    from: &str,
    contact: &str,
    request_uri: &str,
    to: &str,
    body: &mut Multipart,
    extra_headers: &[(&str, String)],
    rng: &mut impl CryptoRng,
) -> Result<Request, Error> {
    let body = EncodedBody::of(body)?;
    invite_with_body(from, contact, request_uri, to, &body, extra_headers, rng)
}

/// A multipart body encoded once, to go into many requests (an MC
/// server's INVITE to each member of a group carries the same one).
#[derive(Clone, Debug)]
pub(crate) struct EncodedBody {
    pub(crate) content_type: String,
    pub(crate) bytes: Bytes,
}

impl EncodedBody {
    pub(crate) fn of(body: &mut Multipart) -> Result<Self, Error> {
        let bytes = Bytes::from(body.encode()?);
        Ok(Self {
            content_type: body.content_type(),
            bytes,
        })
    }
}

/// [`invite`] with a body already encoded.
pub(crate) fn invite_with_body(
    from: &str,
    contact: &str,
    request_uri: &str,
    to: &str,
    body: &EncodedBody,
    extra_headers: &[(&str, String)],
    rng: &mut impl CryptoRng,
) -> Result<Request, Error> {
    let host = host_of(contact);
    let mut b = Request::builder(Method::Invite, request_uri)
        .via("UDP", &host, &new_branch(rand8(rng)))
        .max_forwards(70)
        .from(None, from, &new_tag(rand8(rng)))
        .to(None, to, None)
        .call_id(&new_call_id(rand16(rng), &host))
        .cseq(1)
        .contact(&format!("<{contact}>;{CONTACT_FEATURE_TAGS}"))
        .header("Accept-Contact", "*;+g.3gpp.mcptt;require;explicit")
        .header(
            "Accept-Contact",
            "*;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mcptt\";require;explicit",
        );
    for (n, v) in extra_headers {
        b = b.header(n, v);
    }
    Ok(b.body(&body.content_type, body.bytes.clone()).build()?)
}

/// Parses one datagram.
pub(crate) fn parse(bytes: &[u8]) -> Result<Message, Error> {
    Ok(parse_datagram(bytes, &Limits::UDP)?)
}

/// Checks a message the role did not parse itself against `limits`, as
/// [`parse_datagram`] would check its encoding: the whole message, the
/// number of header lines (Content-Length included) and each line. No
/// allocation: O(number of headers).
pub(crate) fn check_limits(msg: &Message, limits: &Limits) -> Result<(), Error> {
    // Encoded as by `Request::encode` / `Response::encode`.
    let start = match msg {
        Message::Request(r) => r.method().as_str().len() + 1 + r.uri().len() + " SIP/2.0".len(),
        Message::Response(r) => "SIP/2.0 NNN ".len() + r.reason().len(),
    };
    if start > limits.max_line {
        return Err(ParseError::LineTooLong { line: 0 }.into());
    }
    let body = msg.body().len();
    let digits = body.checked_ilog10().map_or(1, |d| d as usize + 1);
    let content_length = "Content-Length: ".len() + digits;
    let mut size = start + 2 + content_length + 4 + body;
    let mut lines = 1;
    for h in msg.headers().iter().filter(|h| {
        !h.name.eq_ignore_ascii_case("Content-Length") && !h.name.eq_ignore_ascii_case("l")
    }) {
        let line = h.name.len() + 2 + h.value.len();
        if line > limits.max_line {
            return Err(ParseError::LineTooLong { line: lines }.into());
        }
        lines += 1;
        size += line + 2;
    }
    if lines > limits.max_headers {
        return Err(ParseError::TooManyHeaders {
            limit: limits.max_headers,
        }
        .into());
    }
    if size > limits.max_message {
        return Err(ParseError::TooLarge {
            limit: limits.max_message,
        }
        .into());
    }
    Ok(())
}

/// The parts of a call request: SDP, MCPTT info and wrapped TGMKs
/// (constituent group ID, MIKEY octets).
pub(crate) struct CallBody {
    pub(crate) sdp: Bytes,
    pub(crate) info: McpttInfo,
    pub(crate) wraps: Vec<(String, Bytes)>,
}

/// Builds the multipart body of a call request.
pub(crate) fn call_body(
    sdp: String,
    info: &McpttInfo,
    wraps: &[(&str, &[u8])],
    rng: &mut impl CryptoRng,
) -> Multipart {
    let mut m = Multipart::new(rand16(rng))
        .part(Part::new(SDP_CONTENT_TYPE, Bytes::from(sdp)))
        .part(Part::new(
            MCPTT_INFO_CONTENT_TYPE,
            Bytes::from(info.to_xml()),
        ));
    for (group, mikey) in wraps {
        let mut p = Part::new(MIKEY_CONTENT_TYPE, Bytes::copy_from_slice(mikey));
        p.other_headers.push((
            GROUP_PART_HEADER.to_owned(),
            format!("{GROUP_PART_PREFIX}{group}"),
        ));
        m = m.part(p);
    }
    m
}

/// Reads the multipart body of a call request.
pub(crate) fn read_call_body(req: &Request) -> Result<CallBody, Error> {
    let ct = req.content_type().ok_or(Error::Missing("Content-Type"))?;
    if !ct
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("multipart/mixed")
    {
        return Err(Error::Unexpected(
            "call request body is not multipart/mixed",
        ));
    }
    let mp = Multipart::parse(ct, req.body())?;
    let sdp = mp
        .find(SDP_CONTENT_TYPE)
        .ok_or(Error::Missing("SDP offer"))?;
    if !crate::sdp::is_valid(&sdp.body) {
        return Err(Error::Unexpected("SDP offer lacks audio or MCPTT media"));
    }
    let info = mp
        .find(MCPTT_INFO_CONTENT_TYPE)
        .ok_or(Error::Missing("mcptt-info"))?;
    let info = McpttInfo::parse(&info.body)?;
    let mut wraps = Vec::new();
    for p in mp.parts.iter() {
        if p.media_type() != MIKEY_CONTENT_TYPE {
            continue;
        }
        let group = p
            .other_headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(GROUP_PART_HEADER))
            .and_then(|(_, v)| v.strip_prefix(GROUP_PART_PREFIX))
            .ok_or(Error::Missing("constituent group of a wrapped TGMK"))?;
        wraps.push((group.to_owned(), transfer_decoded(p)?));
    }
    Ok(CallBody {
        sdp: sdp.body.clone(),
        info,
        wraps,
    })
}

/// A MIME part's body with its `Content-Transfer-Encoding` undone (RFC 2045
/// 6): SIP sends MIKEY as binary (RFC 3261 7.4: no encoding), but a peer may
/// send it base64 (RFC 2045 6.8: line breaks and other whitespace ignored),
/// as text-only tools such as SIPp must. Other encodings are refused.
fn transfer_decoded(p: &Part) -> Result<Bytes, Error> {
    use base64::Engine as _;
    let encoding = p
        .other_headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("Content-Transfer-Encoding"))
        .map(|(_, v)| v.trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("binary" | "8bit" | "7bit") => Ok(p.body.clone()),
        Some("base64") => {
            let text: Vec<u8> = p
                .body
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map(Bytes::from)
                .map_err(|_| Error::Unexpected("wrapped TGMK: malformed base64"))
        }
        Some(_) => Err(Error::Unexpected(
            "wrapped TGMK: unsupported Content-Transfer-Encoding",
        )),
    }
}

/// The calling party's URI (From).
pub(crate) fn from_uri(req: &Request) -> Result<String, Error> {
    Ok(req.from()?.uri)
}

/// What a final response to a call request carried: its SDP answer and
/// its call result, each if present (a lone body, or multipart/mixed).
pub(crate) struct AnswerBody {
    pub(crate) sdp: Option<Bytes>,
    pub(crate) result: Option<CallResult>,
}

/// Reads the body of a final response to a call request.
///
/// # Errors
/// A malformed multipart body or call result.
pub(crate) fn read_answer(resp: &mcx_sip::Response) -> Result<AnswerBody, Error> {
    let mut out = AnswerBody {
        sdp: None,
        result: None,
    };
    let Some(ct) = resp.content_type() else {
        return Ok(out);
    };
    let media = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "multipart/mixed" => {
            let mp = Multipart::parse(ct, resp.body())?;
            out.sdp = mp.find(SDP_CONTENT_TYPE).map(|p| p.body.clone());
            if let Some(p) = mp.find(CALL_RESULT_CONTENT_TYPE) {
                out.result = Some(CallResult::parse(&p.body)?);
            }
        }
        m if m == SDP_CONTENT_TYPE => out.sdp = Some(resp.body().clone()),
        m if m == CALL_RESULT_CONTENT_TYPE => out.result = Some(CallResult::parse(resp.body())?),
        _ => {}
    }
    Ok(out)
}

/// A request's body-less copy: what a role keeps of a request it sent or
/// received to build CANCEL, ACK, dialogs and responses later. The body
/// (a call request carries wrapped keys, up to tens of KB) is dropped so
/// an open call costs its headers only.
pub(crate) fn without_body(req: &Request) -> Request {
    let mut r = req.clone();
    let _ = r.set_body(None, Bytes::new());
    r
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn part(encoding: Option<&str>, body: &[u8]) -> Part {
        let mut p = Part::new(MIKEY_CONTENT_TYPE, Bytes::copy_from_slice(body));
        if let Some(e) = encoding {
            p.other_headers
                .push(("Content-Transfer-Encoding".into(), e.into()));
        }
        p
    }

    /// RFC 2045 6.8: base64 with line breaks decodes to the octets; the
    /// identity encodings and none leave the body alone; others are refused.
    #[test]
    fn transfer_encodings_of_a_wrapped_tgmk() {
        let octets = [0x01, 0x00, 0x05, 0xff, 0x0d, 0x0a, 0x00];
        // "AQAF/w0KAA==" split over two lines, as a mailer or SIPp writes it.
        let b64 = part(Some(" Base64 "), b"AQAF\r\n/w0KAA==\r\n");
        assert_eq!(&transfer_decoded(&b64).unwrap()[..], &octets);
        for e in [None, Some("binary"), Some("8bit"), Some("7bit")] {
            assert_eq!(&transfer_decoded(&part(e, &octets)).unwrap()[..], &octets);
        }
        assert!(transfer_decoded(&part(Some("base64"), b"AQ!F")).is_err());
        assert!(transfer_decoded(&part(Some("quoted-printable"), b"x")).is_err());
    }
}
