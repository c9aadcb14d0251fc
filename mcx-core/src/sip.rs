//! SIP helpers shared by the roles: building requests and responses with
//! `mcx-sip`, parsing datagrams, reading multipart bodies.

use bytes::Bytes;
use mcx_sip::{
    AckTemplate, Dialog, EncodedRequest, Limits, Message, Method, Multipart, ParseError, Part,
    Request, RequestTemplate, Response, Slot, new_branch, parse_datagram,
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
    let ids = InviteIds::draw(&host, rng);
    build_invite(
        from,
        contact,
        request_uri,
        to,
        &ids,
        Some(body),
        extra_headers,
        ("UDP", &host),
    )
}

/// The call INVITE of [`invite_with_body`] with its own values `ids`,
/// with `body` or without any, its top Via written with `via`
/// (transport, sent-by).
#[allow(clippy::too_many_arguments)] // the INVITE's parts, each once
fn build_invite(
    from: &str,
    contact: &str,
    request_uri: &str,
    to: &str,
    ids: &InviteIds,
    body: Option<&EncodedBody>,
    extra_headers: &[(&str, String)],
    via: (&str, &str),
) -> Result<Request, Error> {
    let mut b = Request::builder(Method::Invite, request_uri)
        .via(via.0, via.1, &ids.branch)
        .max_forwards(70)
        .from(None, from, &ids.tag)
        .to(None, to, None)
        .call_id(&ids.call_id)
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
    if let Some(body) = body {
        b = b.body(&body.content_type, body.bytes.clone());
    }
    Ok(b.build()?)
}

/// The To of [`InviteForm`]'s template before a recipient's is put in.
const TO_SLOT: &str = "<sip:to-slot.invalid>";

/// What one recipient's call INVITE has of its own besides its To:
/// fresh random values (RFC 3261 8.1.1.7 branch, 8.1.1.3 From tag,
/// 8.1.1.4 Call-ID), drawn in this order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InviteIds {
    pub(crate) branch: String,
    pub(crate) tag: String,
    pub(crate) call_id: String,
}

impl InviteIds {
    /// New values; the Call-ID names `host` (the sender's).
    pub(crate) fn draw(host: &str, rng: &mut impl CryptoRng) -> Self {
        Self::of(rand8(rng), rand8(rng), rand16(rng), host)
    }

    /// The values of these random octets as mcx-sip writes them.
    fn of(branch: [u8; 8], tag: [u8; 8], call_id: [u8; 16], host: &str) -> Self {
        Self {
            branch: new_branch(branch),
            tag: mcx_sip::new_tag(tag),
            call_id: mcx_sip::new_call_id(call_id, host),
        }
    }
}

/// A call INVITE prepared once for many recipients (an MC server's
/// INVITE to each member of a group). The parts every recipient's INVITE
/// shares are written and checked once, by the builder; per recipient
/// only its To (checked when its group was added: [`to_value`]) and its
/// [`InviteIds`] are put in, without formatting or checking the rest
/// again. The result is the request [`invite_with_body`] builds, header
/// for header.
#[derive(Debug)]
pub(crate) struct InviteForm {
    /// The INVITE with only Via, From, To, Call-ID and CSeq, placeholder
    /// values in them.
    kept: Request,
    /// The INVITE with body, encoded once: [`InviteForm::encoded`].
    template: RequestTemplate,
    /// The sender's host (Call-IDs name it).
    host: String,
    /// The Via value before its branch, the From value before its tag.
    via_prefix: String,
    from_prefix: String,
    /// The CSeq number of every INVITE the form makes.
    cseq: u32,
    /// The ACK to each 2xx, written once but for each dialog's own values
    /// ([`InviteForm::ack`]).
    ack: AckTemplate,
}

impl InviteForm {
    /// The form of an INVITE as [`invite_with_body`] would build it.
    ///
    /// # Errors
    /// [`Error::SipBuild`] if the shared parts are malformed.
    pub(crate) fn new(
        from: &str,
        contact: &str,
        request_uri: &str,
        body: EncodedBody,
        extra_headers: &[(&str, String)],
        via: (&str, &str),
    ) -> Result<Self, Error> {
        let host = host_of(contact);
        // Replaced for every recipient: never sent. Distinct octets, so that
        // no value is a part of another (the template finds each once).
        let placeholder = InviteIds::of([0x11; 8], [0x22; 8], [0x33; 16], &host);
        let bare = build_invite(
            from,
            contact,
            request_uri,
            request_uri,
            &placeholder,
            None,
            extra_headers,
            via,
        )?;
        let prefix = |name: &'static str, own: &str| {
            bare.header(name)
                .and_then(|v| v.strip_suffix(own))
                .map(str::to_owned)
                .ok_or(Error::Missing(name))
        };
        let via_prefix = prefix("Via", &placeholder.branch)?;
        let from_prefix = prefix("From", &placeholder.tag)?;
        let (cseq, _) = bare.cseq()?;
        // Every header `build_invite` writes but those kept.
        let mut kept = bare.clone();
        let shared = extra_headers.iter().map(|(n, _)| *n);
        for name in ["Max-Forwards", "Contact", "Accept-Contact"]
            .into_iter()
            .chain(shared)
        {
            kept.headers_mut().remove(name);
        }
        // The whole INVITE, encoded once, cut at the recipient's values; as
        // the link sends it, within its limits.
        let mut whole = bare.clone();
        whole.headers_mut().set("To", TO_SLOT)?;
        whole.set_body(Some(&body.content_type), body.bytes.clone())?;
        check_limits(&Message::Request(whole.clone()), &Limits::TCP)?;
        let template = RequestTemplate::new(
            &whole,
            &[
                (Slot::To, TO_SLOT),
                (Slot::Branch, &placeholder.branch),
                (Slot::FromTag, &placeholder.tag),
                (Slot::CallId, &placeholder.call_id),
            ],
            Limits::TCP,
        )?;
        let ack = AckTemplate::new(via, &from_prefix, cseq)?;
        Ok(Self {
            kept,
            template,
            host,
            via_prefix,
            from_prefix,
            cseq,
            ack,
        })
    }

    /// [`InviteForm::invite`] encoded, from the form's template: what the
    /// link sends for it, octet for octet, without building or encoding a
    /// request.
    ///
    /// # Errors
    /// [`Error::SipBuild`] if `to` or a value could change the message's
    /// structure (never for values from [`to_value`] and
    /// [`InviteForm::draw`]).
    pub(crate) fn encoded(&self, to: &str, ids: &InviteIds) -> Result<EncodedRequest, Error> {
        Ok(self
            .template
            .fill(&[to, &ids.branch, &ids.tag, &ids.call_id])?)
    }

    /// The dialog a 2xx to the INVITE with `ids` makes: what
    /// [`Dialog::uac`] of [`InviteForm::kept`] gives, without building
    /// that request.
    ///
    /// # Errors
    /// [`Error::SipParse`] as [`Dialog::uac`] for a 2xx without To tag
    /// or Contact.
    pub(crate) fn dialog(&self, ids: &InviteIds, resp: &Response) -> Result<Dialog, Error> {
        let local = [self.from_prefix.as_str(), &ids.tag].concat();
        Ok(Dialog::uac_from_parts(
            local,
            &ids.tag,
            &ids.call_id,
            self.cseq,
            resp,
        )?)
    }

    /// The template of the ACK to a 2xx for the form's INVITEs: with a
    /// dialog from [`InviteForm::dialog`], the ACK [`Dialog::ack_encoded`]
    /// writes.
    pub(crate) fn ack(&self) -> &AckTemplate {
        &self.ack
    }

    /// A recipient's own values, fresh.
    pub(crate) fn draw(&self, rng: &mut impl CryptoRng) -> InviteIds {
        InviteIds::draw(&self.host, rng)
    }

    /// What a sender keeps of the INVITE [`InviteForm::encoded`] makes: its
    /// request line, Via, From, To, Call-ID and CSeq, all its CANCEL
    /// (RFC 3261 9.1), its dialog and ACK (12.1.2, 13.2.2.4) and a
    /// 2xx's refusal are made from.
    ///
    /// # Errors
    /// [`Error::SipBuild`] if a value is not a token (never for values
    /// from [`InviteForm::draw`]).
    pub(crate) fn kept(&self, to: &str, ids: &InviteIds) -> Result<Request, Error> {
        Self::fill(
            self.kept.clone(),
            &self.via_prefix,
            &self.from_prefix,
            to,
            ids,
        )
    }

    fn fill(
        mut r: Request,
        via_prefix: &str,
        from_prefix: &str,
        to: &str,
        ids: &InviteIds,
    ) -> Result<Request, Error> {
        let h = r.headers_mut();
        // The four values are appended to a clone, which has no spare room;
        // so is the Via the link writes over the top one (RFC 3261 18.1.1:
        // its transport, its address, this branch).
        let via_rewrite = 64 + ids.branch.len();
        let values = [
            via_prefix,
            &ids.branch,
            from_prefix,
            &ids.tag,
            to,
            &ids.call_id,
        ];
        h.reserve(
            values.iter().map(|v| v.len()).sum::<usize>() + via_rewrite,
            1,
        );
        h.set("Via", &[via_prefix, &ids.branch].concat())?;
        h.set("From", &[from_prefix, &ids.tag].concat())?;
        h.set("To", to)?;
        h.set("Call-ID", &ids.call_id)?;
        Ok(r)
    }

    /// The INVITE [`InviteForm::encoded`] sends, parsed (tests compare
    /// it with the builder's).
    #[cfg(test)]
    pub(crate) fn invite(&self, to: &str, ids: &InviteIds) -> Result<Request, Error> {
        match Message::parse(self.encoded(to, ids)?.bytes())? {
            Message::Request(r) => Ok(r),
            Message::Response(_) => Err(Error::Unexpected("the form made a response")),
        }
    }
}

/// The To value of a request to `uri` outside a dialog, checked as the
/// builder checks it (a SIP URI, no display name, no tag): what an
/// [`InviteForm`] puts in for a recipient checked once.
///
/// # Errors
/// The builder's error for a malformed `uri`.
pub(crate) fn to_value(uri: &str) -> Result<String, mcx_sip::BuildError> {
    let r = Request::builder(Method::Invite, "sip:check@invalid")
        .via("UDP", "invalid", &new_branch([0; 8]))
        .max_forwards(70)
        .from(None, "sip:check@invalid", "0")
        .to(None, uri, None)
        .call_id("0")
        .cseq(1)
        .build()?;
    Ok(r.header("To").unwrap_or_default().to_owned())
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
pub(crate) fn read_answer(resp: &Response) -> Result<AnswerBody, Error> {
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
    use mcx_sip::{new_call_id, new_tag};

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

    /// The INVITE's own values are written as mcx-sip's makers write
    /// them, octet for octet.
    #[test]
    fn invite_ids_are_written_as_mcx_sip_writes_them() {
        let mut rng = SeqRng(3);
        for host in ["mcx.test", "10.0.0.1", ""] {
            let (b, t, c) = (rand8(&mut rng), rand8(&mut rng), rand16(&mut rng));
            assert_eq!(
                InviteIds::of(b, t, c, host),
                InviteIds {
                    branch: new_branch(b),
                    tag: new_tag(t),
                    call_id: new_call_id(c, host),
                }
            );
        }
        let zero = InviteIds::of([0; 8], [0xff; 8], [0xa5; 16], "h");
        assert_eq!(zero.branch, "z9hG4bK0000000000000000");
        assert_eq!(zero.tag, "ffffffffffffffff");
        assert_eq!(zero.call_id, format!("{}@h", "a5".repeat(16)));
    }

    /// A counter-based generator: two with the same seed give the same
    /// values (so the form and the builder can be given the same ones).
    struct SeqRng(u64);

    impl rand_core::TryRng for SeqRng {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            Ok(self.try_next_u64()? as u32)
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let z = (self.0 ^ (self.0 >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            Ok(z ^ (z >> 29))
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            for chunk in dst.chunks_mut(8) {
                let v = self.try_next_u64()?.to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
            Ok(())
        }
    }

    impl rand_core::TryCryptoRng for SeqRng {}

    const CALLER: &str = "sip:alice@mcx.test";
    const SERVER: &str = "sip:mc-a@mcx.test";
    const GROUP: &str = "sip:group-a@mcx.test";

    fn shared_headers() -> Vec<(&'static str, String)> {
        vec![
            (mcx_sip::headers::P_ASSERTED_IDENTITY, format!("<{CALLER}>")),
            asserted_service(),
            (mcx_sip::headers::RESOURCE_PRIORITY, "mcpttp.5".into()),
        ]
    }

    fn body() -> EncodedBody {
        let info = McpttInfo {
            broadcast: true,
            ..McpttInfo::default()
        };
        EncodedBody::of(&mut call_body(
            "v=0\r\n".into(),
            &info,
            &[(GROUP, &[1, 2, 3])],
            &mut SeqRng(99),
        ))
        .unwrap()
    }

    fn form(via: (&str, &str)) -> InviteForm {
        InviteForm::new(CALLER, SERVER, GROUP, body(), &shared_headers(), via).unwrap()
    }

    /// A form made with the link's Via (as the driver tells the role)
    /// writes it: the link then sends the INVITE without a rewrite.
    #[test]
    fn the_form_writes_the_via_it_is_given() {
        let ids = InviteIds::draw("mcx.test", &mut SeqRng(3));
        let to = to_value("sip:bob@mcx.test").unwrap();
        let sent = form(("UDP", "127.0.0.1:5070")).encoded(&to, &ids).unwrap();
        let mut same = sent.clone();
        same.set_top_via("UDP", "127.0.0.1:5070").unwrap();
        assert_eq!(same, sent);
        let via = format!("Via: SIP/2.0/UDP 127.0.0.1:5070;branch={}\r\n", ids.branch);
        let text = String::from_utf8_lossy(sent.bytes()).into_owned();
        assert!(text.contains(&via), "{text}");
    }

    /// Each member's INVITE made from the prepared form is the one the
    /// builder makes with the same random values, octet for octet; it
    /// parses back with the member in To (no tag), the drawn branch,
    /// tag and Call-ID; the kept copy is the same without the body.
    #[test]
    fn invite_from_the_form_is_the_builders() {
        let form = form(("UDP", &host_of(SERVER)));
        for (i, member) in ["sip:bob@mcx.test", "sip:carol@other.test;transport=udp"]
            .into_iter()
            .enumerate()
        {
            let seed = 7 + i as u64;
            let built = invite_with_body(
                CALLER,
                SERVER,
                GROUP,
                member,
                &body(),
                &shared_headers(),
                &mut SeqRng(seed),
            )
            .unwrap();
            let ids = form.draw(&mut SeqRng(seed));
            let to = to_value(member).unwrap();
            let made = form.invite(&to, &ids).unwrap();
            assert_eq!(made.to_bytes(), built.to_bytes());
            // What is sent: the form's template, filled, octet for octet.
            let encoded = form.encoded(&to, &ids).unwrap();
            assert_eq!(encoded.bytes(), &built.to_bytes()[..]);
            assert_eq!(
                (encoded.branch(), encoded.call_id(), encoded.uri()),
                (ids.branch.as_str(), ids.call_id.as_str(), GROUP)
            );
            let parsed = match Message::parse(&made.to_bytes()).unwrap() {
                Message::Request(r) => r,
                Message::Response(_) => panic!("not a request"),
            };
            assert_eq!(parsed.to().unwrap().uri, member);
            assert_eq!(parsed.to().unwrap().tag, None);
            assert_eq!(parsed.from().unwrap().uri, CALLER);
            assert_eq!(
                parsed.from().unwrap().tag.as_deref(),
                Some(ids.tag.as_str())
            );
            assert_eq!(
                parsed.top_via().unwrap().branch.as_deref(),
                Some(ids.branch.as_str())
            );
            assert_eq!(parsed.call_id().unwrap(), ids.call_id);
            assert_eq!(parsed.uri(), GROUP);
            assert_eq!(&parsed.body()[..], &body().bytes[..]);
            // What is kept: the request line and the five headers a
            // CANCEL, dialog and ACK are made from, as sent.
            let kept = form.kept(&to, &ids).unwrap();
            assert_eq!(kept.headers().len(), 5);
            assert_eq!((kept.method(), kept.uri()), (made.method(), made.uri()));
            for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
                assert_eq!(kept.header(name), made.header(name), "{name}");
            }
            let mut ok =
                Response::for_request(&made, mcx_sip::StatusCode::OK, Some("membertag")).unwrap();
            ok.headers_mut()
                .push("Contact", &format!("<{member}>"))
                .unwrap();
            let sent = Dialog::uac(&made, &ok).unwrap();
            assert_eq!(Dialog::uac(&kept, &ok).unwrap(), sent);
            // The dialog made from the form's parts, without a request.
            assert_eq!(form.dialog(&ids, &ok).unwrap(), sent);
            // Its ACK from the form's template: the dialog's, octet for octet.
            let via = ("UDP", host_of(SERVER));
            let via = (via.0, via.1.as_str());
            assert!(form.ack().fits(&sent, via));
            assert_eq!(
                form.ack().fill(&sent, via, [5; 8]).unwrap(),
                sent.ack_encoded(via, [5; 8]).unwrap()
            );
            assert_eq!(
                form.ack().fill(&sent, via, [5; 8]).unwrap().bytes(),
                &sent.ack(via, [5; 8]).unwrap().to_bytes()[..]
            );
            let cancel = |inv: &Request| {
                let mut ua = crate::ua::UserAgent::new(SERVER);
                ua.cancel(member, inv).unwrap();
                ua.poll_transmit().unwrap().octets().into_owned()
            };
            assert_eq!(cancel(&kept), cancel(&made));
        }
    }

    /// Fresh values per member and per call: no branch, tag or Call-ID
    /// repeats across the members of two fan-outs.
    #[test]
    fn form_values_differ_between_members_and_calls() {
        let mut rng = SeqRng(1);
        let mut seen = std::collections::HashSet::new();
        for _call in 0..2 {
            let form = form(("UDP", &host_of(SERVER)));
            for m in 0..200 {
                let ids = form.draw(&mut rng);
                let r = form
                    .invite(&to_value(&format!("sip:m{m}@mcx.test")).unwrap(), &ids)
                    .unwrap();
                let branch = r.top_via().unwrap().branch.unwrap();
                assert!(branch.starts_with(mcx_sip::MAGIC_COOKIE));
                let tag = r.from().unwrap().tag.unwrap();
                for v in [branch, tag, r.call_id().unwrap().to_owned()] {
                    assert!(seen.insert(v), "a value repeated");
                }
            }
        }
    }

    /// A member URI the builder refuses in To is refused by `to_value`
    /// with the builder's error; good ones give the builder's To.
    #[test]
    fn to_value_checks_as_the_builder() {
        assert_eq!(to_value("sip:bob@mcx.test").unwrap(), "<sip:bob@mcx.test>");
        for bad in ["not a uri", "sip:bob@mcx.test>", "sip:a@b\r\nX: y", ""] {
            let built = invite_with_body(CALLER, SERVER, GROUP, bad, &body(), &[], &mut SeqRng(1));
            let Err(Error::SipBuild(e)) = built else {
                panic!("the builder took {bad:?}");
            };
            assert_eq!(to_value(bad), Err(e), "{bad:?}");
        }
    }
}
