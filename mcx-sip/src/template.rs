//! Requests written once for many recipients.
//!
//! An MC server calls every member of a group with the same INVITE but for
//! a handful of values: the member's To, and its own branch, From tag and
//! Call-ID. Building each as a [`Request`], rewriting its Via and encoding
//! it costs more than the datagram's send. A [`RequestTemplate`] is the
//! request encoded once, cut where those values go; [`RequestTemplate::fill`]
//! splices a recipient's values in (checked for what could break the
//! message) and gives an [`EncodedRequest`], which the transport finishes
//! with its own top Via (RFC 3261 18.1.1) and the transaction layer sends
//! as it is ([`crate::TransactionLayer::send_encoded`]). Nothing of it is
//! parsed again.

use std::ops::Range;
use std::sync::Arc;

use crate::Transport;
use crate::dialog::Dialog;
use crate::error::BuildError;
use crate::framing::Limits;
use crate::message::{
    CONTROL, Decimal, MAGIC_COOKIE, Method, NOT_CALL_ID, NOT_PARAM, Request, check_nonempty_token,
    check_request_uri, check_value, new_branch, octet_classes,
};

/// A per-recipient value of a [`RequestTemplate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Slot {
    /// The top Via's branch: the last thing of the top Via's value
    /// (required: it keys the client transaction). A token with the
    /// magic cookie, without `%`.
    Branch,
    /// The From tag: a token without `%`.
    FromTag,
    /// The whole To value (a name-addr or addr-spec the caller checked).
    To,
    /// The Call-ID: a word, possibly `word@host`.
    CallId,
}

impl Slot {
    fn name(self) -> &'static str {
        match self {
            Self::Branch => "Via branch",
            Self::FromTag => "From tag",
            Self::To => "To",
            Self::CallId => "Call-ID",
        }
    }

    /// Whether `v` may stand in this slot without changing the message's
    /// structure: never a control character (header injection), and for
    /// the token slots only token octets (RFC 3261 25.1; `@` for a
    /// Call-ID's host).
    fn admits(self, v: &str) -> bool {
        let seen = octet_classes(v);
        !v.is_empty()
            && match self {
                // Not `%`, although a token octet: parsers that read
                // escapes in parameters (ezk-sip-types, so ours) refuse a
                // branch with a `%` not followed by two hex digits, and
                // read a tag's `%00` as a NUL.
                Self::Branch => v.starts_with(MAGIC_COOKIE) && seen & NOT_PARAM == 0,
                Self::FromTag => seen & NOT_PARAM == 0,
                Self::CallId => seen & NOT_CALL_ID == 0,
                Self::To => seen & CONTROL == 0,
            }
    }
}

/// A request encoded once, cut at its [`Slot`]s.
#[derive(Clone, Debug)]
pub struct RequestTemplate {
    /// The encoding without the markers: `cuts[i]` is where slot `i`'s
    /// value goes (ascending).
    text: Vec<u8>,
    cuts: Vec<usize>,
    /// The slots in the order their values are given to `fill`, and
    /// where each is in `cuts`.
    slots: Vec<(Slot, usize)>,
    /// Per cut: the length of its header line without the value, for the
    /// line-length limit.
    line_rest: Vec<usize>,
    /// The cut of the branch, which ends the top Via's value, and the
    /// length of that value before the branch (no slot in it).
    branch_cut: usize,
    via_head: usize,
    limits: Limits,
    method: Method,
    cseq: u32,
    uri: Arc<str>,
    /// The Call-ID when it is not a slot.
    call_id: Option<String>,
}

impl RequestTemplate {
    /// The template of `req`, whose values for `slots` are the given
    /// markers: each must occur exactly once in the encoded head, and the
    /// [`Slot::Branch`] marker must end the top Via's value. `limits`
    /// bound every filled request (its lines and its size).
    ///
    /// # Errors
    /// [`BuildError::Missing`] without a Branch slot or a Via,
    /// [`BuildError::Malformed`] naming the slot whose marker is not found
    /// once, or is not where it must be.
    pub fn new(req: &Request, slots: &[(Slot, &str)], limits: Limits) -> Result<Self, BuildError> {
        if *req.method() == Method::Ack {
            return Err(BuildError::Malformed("an ACK has no transaction"));
        }
        if slots.len() > MAX_SLOTS
            || slots
                .iter()
                .enumerate()
                .any(|(i, (s, _))| slots[..i].iter().any(|(t, _)| t == s))
        {
            return Err(BuildError::Malformed("slots: each at most once"));
        }
        let encoded = req.to_bytes();
        // Slots are header values: the body (which may hold anything) is
        // not searched.
        let head =
            memchr::memmem::find(&encoded, b"\r\n\r\n").map_or(&encoded[..], |e| &encoded[..e]);
        let mut found: Vec<(usize, usize, usize)> = Vec::with_capacity(slots.len());
        for (i, (slot, marker)) in slots.iter().enumerate() {
            let m = marker.as_bytes();
            let mut at = memchr::memmem::find_iter(head, m);
            let (Some(pos), None) = (at.next(), at.next()) else {
                return Err(BuildError::Malformed(slot.name()));
            };
            found.push((pos, m.len(), i));
        }
        found.sort_unstable();
        if found.windows(2).any(|w| w[0].0 + w[0].1 > w[1].0) {
            return Err(BuildError::Malformed("overlapping slots"));
        }
        let mut text = Vec::with_capacity(encoded.len());
        let mut cuts = Vec::with_capacity(found.len());
        let mut line_rest = Vec::with_capacity(found.len());
        let mut order = vec![0; slots.len()];
        let mut from = 0;
        for (cut, &(pos, len, i)) in found.iter().enumerate() {
            text.extend_from_slice(&encoded[from..pos]);
            cuts.push(text.len());
            let line_start = encoded[..pos]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1);
            let line_end =
                memchr::memchr(b'\r', &encoded[pos..]).map_or(encoded.len(), |e| pos + e);
            line_rest.push(line_end - line_start - len);
            order[i] = cut;
            from = pos + len;
        }
        text.extend_from_slice(&encoded[from..]);
        let branch = slots
            .iter()
            .position(|(s, _)| *s == Slot::Branch)
            .ok_or(BuildError::Missing("Via branch slot"))?;
        let marker = slots[branch].1;
        let branch_cut = order[branch];
        // The top Via's value, as written, ends with the branch marker:
        // the transport writes that value whole.
        let via = req.header("Via").ok_or(BuildError::Missing("Via"))?;
        let head = via
            .strip_suffix(marker)
            .filter(|h| h.starts_with("SIP/2.0/"))
            .ok_or(BuildError::Malformed("Via branch"))?;
        cuts[branch_cut]
            .checked_sub(head.len())
            .filter(|&s| text.get(s..cuts[branch_cut]) == Some(head.as_bytes()))
            .ok_or(BuildError::Malformed("Via branch"))?;
        let slots: Vec<(Slot, usize)> =
            slots.iter().zip(order).map(|((s, _), c)| (*s, c)).collect();
        let (cseq, _) = req.cseq().map_err(|_| BuildError::Missing("CSeq"))?;
        let call_id = if slots.iter().any(|(s, _)| *s == Slot::CallId) {
            None
        } else {
            Some(
                req.header("Call-ID")
                    .ok_or(BuildError::Missing("Call-ID"))?
                    .to_owned(),
            )
        };
        Ok(Self {
            text,
            cuts,
            slots,
            line_rest,
            branch_cut,
            via_head: head.len(),
            limits,
            method: req.method().clone(),
            cseq,
            uri: Arc::from(req.uri()),
            call_id,
        })
    }

    /// The request for one recipient: `values` in the order of the slots
    /// given to [`RequestTemplate::new`].
    ///
    /// # Errors
    /// [`BuildError::Missing`] for a missing value,
    /// [`BuildError::Malformed`] naming the slot whose value could change
    /// the message's structure (see [`Slot`]), or that makes a line or the
    /// message longer than the template's limits.
    pub fn fill(&self, values: &[&str]) -> Result<EncodedRequest, BuildError> {
        if values.len() != self.slots.len() {
            return Err(BuildError::Missing("a template value"));
        }
        let mut at_cut: [&str; MAX_SLOTS] = [""; MAX_SLOTS];
        let mut size = self.text.len();
        let mut branch = "";
        let mut call_id = self.call_id.as_deref().unwrap_or("");
        for (&(slot, cut), v) in self.slots.iter().zip(values) {
            if !slot.admits(v) || self.line_rest[cut] + v.len() > self.limits.max_line {
                return Err(BuildError::Malformed(slot.name()));
            }
            match slot {
                Slot::Branch => branch = v,
                Slot::CallId => call_id = v,
                Slot::FromTag | Slot::To => {}
            }
            *at_cut
                .get_mut(cut)
                .ok_or(BuildError::Malformed("too many slots"))? = v;
            size += v.len();
        }
        if size > self.limits.max_message {
            return Err(BuildError::Malformed("message size"));
        }
        let mut bytes = Vec::with_capacity(size);
        let mut from = 0;
        let mut via = 0..0;
        for (cut, (&at, v)) in self.cuts.iter().zip(at_cut).enumerate() {
            bytes.extend_from_slice(&self.text[from..at]);
            bytes.extend_from_slice(v.as_bytes());
            if cut == self.branch_cut {
                via = bytes.len() - v.len() - self.via_head..bytes.len();
            }
            from = at;
        }
        bytes.extend_from_slice(&self.text[from..]);
        Ok(EncodedRequest {
            bytes,
            via,
            branch: branch.to_owned(),
            call_id: call_id.to_owned(),
            method: self.method.clone(),
            cseq: self.cseq,
            uri: Arc::clone(&self.uri),
        })
    }
}

/// The ACKs for the 2xx responses to the INVITEs of one fan-out (RFC 3261
/// 13.2.2.4), written once but for what each dialog has of its own: the
/// Request-URI (the 2xx's Contact), the branch, the From tag, the To (with
/// the callee's tag) and the Call-ID. The Via, the From before its tag
/// and the CSeq line are the fan-out's: checked and written when the
/// template is made, not for every member.
///
/// [`AckTemplate::fill`] gives octet for octet what
/// [`Dialog::ack_encoded`] gives for the same dialog, Via and random
/// octets, with the same checks of the values that came from the network
/// (the Request-URI, the To, the Call-ID). A dialog it was not made for (a
/// route set, another From, CSeq or Via) gets [`Dialog::ack_encoded`]'s
/// ACK.
#[derive(Clone, Debug)]
pub struct AckTemplate {
    transport: String,
    sent_by: String,
    /// The dialogs' From value before the tag, as [`Dialog`] keeps it.
    from_prefix: String,
    cseq: u32,
    /// After the Request-URI, up to the branch's random part:
    /// ` SIP/2.0\r\nVia: SIP/2.0/{transport} {sent-by};branch=z9hG4bK`.
    via_line: String,
    /// After the branch, up to the From tag: `\r\nMax-Forwards:
    /// 70\r\nFrom: ` and the From prefix (as trimmed in a header line).
    from_line: String,
    /// After the Call-ID: `\r\nCSeq: {n} ACK\r\nContent-Length: 0\r\n\r\n`.
    tail: String,
}

impl AckTemplate {
    /// The template of the ACKs to the 2xx responses of dialogs whose From
    /// value is `from_prefix` and a tag, and whose INVITE had CSeq number
    /// `cseq`, with the top Via `via` (transport token, sent-by).
    ///
    /// # Errors
    /// As [`Dialog::ack_encoded`] for a Via part or a From that could
    /// change the message's structure.
    pub fn new(via: (&str, &str), from_prefix: &str, cseq: u32) -> Result<Self, BuildError> {
        check_nonempty_token(via.0, "Via transport")?;
        check_nonempty_token(via.1, "Via sent-by")?;
        check_value(from_prefix, "header value")?;
        let n = Decimal::new(cseq.into());
        Ok(Self {
            transport: via.0.to_owned(),
            sent_by: via.1.to_owned(),
            from_prefix: from_prefix.to_owned(),
            cseq,
            via_line: [
                " SIP/2.0\r\nVia: SIP/2.0/",
                via.0,
                " ",
                via.1,
                ";branch=",
                MAGIC_COOKIE,
            ]
            .concat(),
            from_line: ["\r\nMax-Forwards: 70\r\nFrom: ", from_prefix.trim_start()].concat(),
            tail: [
                "\r\nCSeq: ",
                n.as_str(),
                " ACK\r\nContent-Length: 0\r\n\r\n",
            ]
            .concat(),
        })
    }

    /// Whether [`AckTemplate::fill`] writes `dialog`'s ACK with `via`
    /// from the template (else it hands over to [`Dialog::ack_encoded`]):
    /// the dialog has no route set, the template's From (with a tag), CSeq
    /// number and Via.
    pub fn fits(&self, dialog: &Dialog, via: (&str, &str)) -> bool {
        self.tag_of(dialog, via).is_some()
    }

    /// The From tag of a dialog the template [`fits`](Self::fits): a
    /// token (without `%`), so that the From as trimmed in its line is the prefix as
    /// trimmed and the tag.
    fn tag_of<'d>(&self, dialog: &'d Dialog, via: (&str, &str)) -> Option<&'d str> {
        let fits = dialog.route_set.is_empty()
            && dialog.invite_cseq() == self.cseq
            && via == (self.transport.as_str(), self.sent_by.as_str());
        dialog
            .local()
            .strip_prefix(self.from_prefix.as_str())
            .filter(|t| fits && !t.is_empty() && octet_classes(t) & NOT_PARAM == 0)
    }

    /// The ACK for the 2xx that made `dialog`, with the top Via `via`
    /// and a branch from `random`: [`Dialog::ack_encoded`]`(via, random)`.
    ///
    /// # Errors
    /// As [`Dialog::ack_encoded`].
    pub fn fill(
        &self,
        dialog: &Dialog,
        via: (&str, &str),
        random: [u8; 8],
    ) -> Result<EncodedRequest, BuildError> {
        let Some(tag) = self.tag_of(dialog, via) else {
            return dialog.ack_encoded(via, random);
        };
        let uri = dialog.remote_target.as_str();
        check_request_uri(uri)?;
        check_value(dialog.remote(), "header value")?;
        check_value(&dialog.id.call_id, "header value")?;
        let (to, call_id) = (dialog.remote().trim(), dialog.id.call_id.trim());
        let branch = new_branch(random);
        const FIXED: usize = "ACK ".len() + "\r\nTo: ".len() + "\r\nCall-ID: ".len();
        let size = FIXED
            + uri.len()
            + self.via_line.len()
            + (branch.len() - MAGIC_COOKIE.len())
            + self.from_line.len()
            + tag.len()
            + to.len()
            + call_id.len()
            + self.tail.len();
        let mut b = Vec::with_capacity(size);
        b.extend_from_slice(b"ACK ");
        b.extend_from_slice(uri.as_bytes());
        let via_start = b.len() + " SIP/2.0\r\nVia: ".len();
        b.extend_from_slice(self.via_line.as_bytes());
        b.extend_from_slice(&branch.as_bytes()[MAGIC_COOKIE.len()..]);
        let via_span = via_start..b.len();
        for part in [
            &self.from_line,
            tag,
            "\r\nTo: ",
            to,
            "\r\nCall-ID: ",
            call_id,
            &self.tail,
        ] {
            b.extend_from_slice(part.as_bytes());
        }
        debug_assert_eq!(b.len(), size, "the ACK's size is computed exactly");
        Ok(EncodedRequest::ack(
            b,
            via_span,
            branch,
            &dialog.id.call_id,
            uri,
            self.cseq,
        ))
    }
}

/// A transport's own sent-by (its address), checked once for every
/// request it sends ([`EncodedRequest::set_transport_via`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportVia {
    sent_by: String,
}

impl TransportVia {
    /// `sent_by` checked as [`EncodedRequest::set_top_via`] checks it.
    ///
    /// # Errors
    /// As [`EncodedRequest::set_top_via`] for this sent-by.
    pub fn new(sent_by: &str) -> Result<Self, BuildError> {
        check_nonempty_token(sent_by, "Via sent-by")?;
        Ok(Self {
            sent_by: sent_by.to_owned(),
        })
    }

    /// The sent-by.
    pub fn sent_by(&self) -> &str {
        &self.sent_by
    }
}

/// Every [`Slot`] once.
const MAX_SLOTS: usize = 4;

/// A request encoded by its sender ([`RequestTemplate::fill`]), with what
/// the transport and the transaction layer need of it without parsing it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedRequest {
    bytes: Vec<u8>,
    /// The top Via's value.
    via: Range<usize>,
    branch: String,
    call_id: String,
    method: Method,
    cseq: u32,
    /// The Request-URI: shared with the template and every request filled
    /// from it (a reference count, not a copy per member).
    uri: Arc<str>,
}

impl EncodedRequest {
    /// An ACK for a 2xx (RFC 3261 13.2.2.4) written as
    /// [`crate::Dialog::ack`] builds it; the values were checked by the
    /// caller.
    pub(crate) fn ack(
        bytes: Vec<u8>,
        via: Range<usize>,
        branch: String,
        call_id: &str,
        uri: &str,
        cseq: u32,
    ) -> Self {
        Self {
            bytes,
            via,
            branch,
            call_id: call_id.to_owned(),
            method: Method::Ack,
            cseq,
            uri: Arc::from(uri),
        }
    }

    /// The CSeq number.
    pub fn cseq(&self) -> u32 {
        self.cseq
    }

    /// The request's octets.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The octets, taken.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The octets and the Call-ID, taken (an ACK kept under its Call-ID
    /// without a copy of it).
    pub fn into_bytes_and_call_id(self) -> (Vec<u8>, String) {
        (self.bytes, self.call_id)
    }

    /// The octets and the branch, taken (a client transaction keyed by
    /// its branch without a copy of it).
    pub(crate) fn into_bytes_and_branch(self) -> (Vec<u8>, String) {
        (self.bytes, self.branch)
    }

    /// The top Via's branch (the client transaction's key).
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The Call-ID.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The Request-URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Writes the top Via as a transport sends it (RFC 3261 18.1.1): its
    /// transport, its address, the request's branch.
    ///
    /// # Errors
    /// As [`Request::set_top_via_sent_by`]: `transport` or `sent_by` empty,
    /// or with whitespace, a separator or a control character.
    pub fn set_top_via(&mut self, transport: &str, sent_by: &str) -> Result<(), BuildError> {
        // As `Request::set_top_via_sent_by` checks them.
        check_nonempty_token(transport, "Via transport")?;
        check_nonempty_token(sent_by, "Via sent-by")?;
        self.write_top_via(transport, sent_by);
        Ok(())
    }

    /// [`EncodedRequest::set_top_via`] with `transport`'s token and a
    /// sent-by checked once, when `via` was made: a transport writes its
    /// own address into every request it sends.
    pub fn set_transport_via(&mut self, transport: Transport, via: &TransportVia) {
        self.write_top_via(transport.as_str(), &via.sent_by);
    }

    /// Writes the top Via of checked values.
    fn write_top_via(&mut self, transport: &str, sent_by: &str) {
        // Already so (the role wrote it with the link's Via): nothing to do.
        let written = &self.bytes[self.via.clone()];
        let same = written
            .strip_prefix(b"SIP/2.0/")
            .and_then(|w| w.strip_prefix(transport.as_bytes()))
            .and_then(|w| w.strip_prefix(b" "))
            .and_then(|w| w.strip_prefix(sent_by.as_bytes()))
            .and_then(|w| w.strip_prefix(b";branch="))
            .is_some_and(|w| w == self.branch.as_bytes());
        if same && !transport.bytes().any(|b| b.is_ascii_lowercase()) {
            return;
        }
        // Written into an exact-size copy: the octets are kept as they are
        // (for retransmissions) and should hold no spare room.
        let parts = [
            "SIP/2.0/",
            transport,
            " ",
            sent_by,
            ";branch=",
            &self.branch,
        ];
        let via_len: usize = parts.iter().map(|p| p.len()).sum();
        let mut bytes = Vec::with_capacity(self.bytes.len() - self.via.len() + via_len);
        bytes.extend_from_slice(&self.bytes[..self.via.start]);
        for part in parts {
            bytes.extend_from_slice(part.as_bytes());
        }
        bytes[self.via.start..self.via.start + 8 + transport.len()].make_ascii_uppercase();
        bytes.extend_from_slice(&self.bytes[self.via.end..]);
        self.via.end = self.via.start + via_len;
        self.bytes = bytes;
    }
}
