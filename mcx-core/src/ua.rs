//! [`UserAgent`]: the one way the three roles build and send SIP
//! responses, dialogs and in-dialog requests (RFC 3261 8.2.6, 9.1, 12,
//! 13.2.2.4, 15), and queue their datagrams.
//!
//! Every role owns one; the roles decide what to send, this decides how
//! it is written: a fresh To tag per response, Contact and SDP on 2xx, the
//! call result body on final answers, ACK and BYE from the dialog, CANCEL
//! from the INVITE as sent.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mcx_sip::{Dialog, Message, Method, Multipart, Part, Request, Response, StatusCode, Transport};
use rand_core::CryptoRng;

use crate::result::{CALL_RESULT_CONTENT_TYPE, CallResult};
use crate::sip::{host_of, rand8};
use crate::{Channel, Error, SDP_CONTENT_TYPE, Transmit};

/// The body of a response built by [`UserAgent::respond`].
pub(crate) enum Answer {
    /// No body.
    Empty,
    /// An SDP answer.
    Sdp(String),
    /// A call result only (non-2xx final answers).
    Result(CallResult),
    /// SDP and a call result, as multipart/mixed (2xx to a call request).
    SdpAndResult(String, CallResult),
}

/// A role's SIP user agent core: its address and its outgoing datagrams.
pub(crate) struct UserAgent {
    uri: String,
    /// Our Contact header value, `<uri>`, written once.
    contact: String,
    /// The top Via the link sends with (its transport and address), once
    /// the driver said it: requests are then written with it and the link
    /// has nothing to rewrite. Until then ("UDP", `host`).
    via: (&'static str, String),
    transmits: VecDeque<Transmit>,
}

impl UserAgent {
    pub(crate) fn new(uri: &str) -> Self {
        Self {
            uri: uri.to_owned(),
            contact: format!("<{uri}>"),
            via: ("UDP", host_of(uri)),
            transmits: VecDeque::new(),
        }
    }

    /// The Via the link writes (its transport token and address: RFC 3261
    /// 18.1.1), for requests written from now on.
    pub(crate) fn set_via(&mut self, transport: Transport, sent_by: &str) {
        self.via = (transport.as_str(), sent_by.to_owned());
    }

    /// The role's URI (its address and Contact).
    pub(crate) fn uri(&self) -> &str {
        &self.uri
    }

    /// The Via transport and sent-by the role writes (the link rewrites
    /// it to its socket's where they differ).
    pub(crate) fn via(&self) -> (&'static str, &str) {
        (self.via.0, &self.via.1)
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Queues `contents` to `to` on `channel`.
    pub(crate) fn send(&mut self, to: &str, channel: Channel, contents: Vec<u8>) {
        self.transmits.push_back(Transmit::of_octets(
            self.uri.clone(),
            to.to_owned(),
            channel,
            contents,
        ));
    }

    /// Queues a SIP message to `to` as a value: the link encodes it, once
    /// (no octets here: see [`Transmit::sip`]).
    pub(crate) fn send_sip(&mut self, to: &str, msg: impl Into<Message>) {
        self.transmits.push_back(Transmit {
            from: self.uri.clone(),
            to: to.to_owned(),
            channel: Channel::Sip,
            contents: Vec::new(),
            sip: Some(msg.into()),
            encoded: None,
        });
    }

    /// Queues a request the role encoded itself (see [`Transmit::encoded`]).
    pub(crate) fn send_encoded(&mut self, to: &str, req: mcx_sip::EncodedRequest) {
        self.transmits.push_back(Transmit {
            from: self.uri.clone(),
            to: to.to_owned(),
            channel: Channel::Sip,
            contents: Vec::new(),
            sip: None,
            encoded: Some(Box::new(req)),
        });
    }

    /// Sends a request (the role built it).
    pub(crate) fn send_request(&mut self, to: &str, req: &Request) {
        self.send_sip(to, req.clone());
    }

    /// Builds and sends a response to `req` (RFC 3261 8.2.6): a new To
    /// tag, our Contact on 2xx, `reason` if given, `body`.
    pub(crate) fn respond(
        &mut self,
        to: &str,
        req: &Request,
        status: StatusCode,
        reason: Option<&str>,
        body: Answer,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        self.respond_with(to, req, status, reason, &[], body, rng)
    }

    /// [`UserAgent::respond`] with `extra` headers (e.g. `P-Answer-State`).
    #[allow(clippy::too_many_arguments)] // a response's parts, each needed
    pub(crate) fn respond_with(
        &mut self,
        to: &str,
        req: &Request,
        status: StatusCode,
        reason: Option<&str>,
        extra: &[(&str, &str)],
        body: Answer,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let tag = mcx_sip::new_tag(rand8(rng));
        let mut r = Response::for_request(req, status, Some(&tag))?;
        if let Some(reason) = reason {
            r.set_reason(reason)?;
        }
        if status.is_success() {
            r.headers_mut().push("Contact", &self.contact)?;
        }
        for (name, value) in extra {
            r.headers_mut().push(name, value)?;
        }
        match body {
            Answer::Empty => {}
            Answer::Sdp(sdp) => r.set_body(Some(SDP_CONTENT_TYPE), Bytes::from(sdp))?,
            Answer::Result(res) => {
                r.set_body(Some(CALL_RESULT_CONTENT_TYPE), Bytes::from(res.to_xml()))?;
            }
            Answer::SdpAndResult(sdp, res) => {
                let mut boundary = [0u8; 16];
                rng.fill_bytes(&mut boundary);
                let mut mp = Multipart::new(boundary)
                    .part(Part::new(SDP_CONTENT_TYPE, Bytes::from(sdp)))
                    .part(Part::new(
                        CALL_RESULT_CONTENT_TYPE,
                        Bytes::from(res.to_xml()),
                    ));
                let bytes = mp.encode()?;
                r.set_body(Some(&mp.content_type()), Bytes::from(bytes))?;
            }
        }
        self.send_sip(to, r);
        Ok(())
    }

    /// Accepts an INVITE: sends the 2xx and returns the UAS dialog (12.1.1).
    pub(crate) fn accept(
        &mut self,
        to: &str,
        invite: &Request,
        body: Answer,
        rng: &mut impl CryptoRng,
    ) -> Result<Dialog, Error> {
        self.accept_with(to, invite, &[], body, rng)
    }

    /// [`UserAgent::accept`] with `extra` headers.
    pub(crate) fn accept_with(
        &mut self,
        to: &str,
        invite: &Request,
        extra: &[(&str, &str)],
        body: Answer,
        rng: &mut impl CryptoRng,
    ) -> Result<Dialog, Error> {
        self.respond_with(to, invite, StatusCode::OK, None, extra, body, rng)?;
        // The dialog is read from the 2xx where it was just queued (as a
        // value, for the link to encode: no copy of it is made here).
        match self.transmits.back().and_then(|t| t.sip.as_ref()) {
            Some(Message::Response(resp)) => Ok(Dialog::uas(invite, resp)?),
            _ => Err(Error::Unexpected("the 2xx was not queued")),
        }
    }

    /// Takes a 2xx to our INVITE: sends the ACK and returns the UAC
    /// dialog (12.1.2, 13.2.2.4).
    pub(crate) fn confirm(
        &mut self,
        to: &str,
        invite: &Request,
        resp: &Response,
        rng: &mut impl CryptoRng,
    ) -> Result<Dialog, Error> {
        self.acknowledge(to, Dialog::uac(invite, resp)?, rng)
    }

    /// Sends the ACK of the 2xx that made `dialog` (RFC 3261 13.2.2.4),
    /// and hands the dialog back.
    pub(crate) fn acknowledge(
        &mut self,
        to: &str,
        dialog: Dialog,
        rng: &mut impl CryptoRng,
    ) -> Result<Dialog, Error> {
        let ack = dialog.ack_encoded(self.via(), rand8(rng))?;
        self.send_encoded(to, ack);
        Ok(dialog)
    }

    /// [`UserAgent::acknowledge`] with the ACK written from `template`
    /// (the fan-out's): the same ACK, octet for octet.
    pub(crate) fn acknowledge_from(
        &mut self,
        to: &str,
        dialog: Dialog,
        template: &mcx_sip::AckTemplate,
        rng: &mut impl CryptoRng,
    ) -> Result<Dialog, Error> {
        let ack = template.fill(&dialog, self.via(), rand8(rng))?;
        self.send_encoded(to, ack);
        Ok(dialog)
    }

    /// A 2xx we no longer want (it came after we gave up): ACK it, then
    /// BYE the dialog it made (RFC 3261 15: a UAC that does not want a
    /// session it was accepted into ends it with BYE).
    pub(crate) fn refuse_late_2xx(
        &mut self,
        to: &str,
        invite: &Request,
        resp: &Response,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let mut d = self.confirm(to, invite, resp, rng)?;
        self.bye(to, &mut d, rng)
    }

    /// Sends BYE in `dialog` (15.1.1).
    pub(crate) fn bye(
        &mut self,
        to: &str,
        dialog: &mut Dialog,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let bye = dialog.request_in_dialog(Method::Bye, self.via(), rand8(rng))?;
        self.send_sip(to, bye);
        Ok(())
    }

    /// Sends an in-call report in `dialog`: INFO with `Info-Package:
    /// mcx.call-result` (RFC 6086) and the call result body (a lost group
    /// toward the initiator; a late joiner toward the controlling server).
    pub(crate) fn send_call_result_info(
        &mut self,
        to: &str,
        dialog: &mut Dialog,
        result: &CallResult,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let mut info = dialog.request_in_dialog(Method::Info, self.via(), rand8(rng))?;
        info.headers_mut()
            .push("Info-Package", crate::GROUP_LOST_INFO_PACKAGE)?;
        info.set_body(Some(CALL_RESULT_CONTENT_TYPE), Bytes::from(result.to_xml()))?;
        self.send_sip(to, info);
        Ok(())
    }

    /// Sends CANCEL for `invite` as sent (9.1): its Request-URI, Call-ID,
    /// From, To, CSeq number and top Via (so its branch) with method CANCEL.
    pub(crate) fn cancel(&mut self, to: &str, invite: &Request) -> Result<(), Error> {
        let mut c = Request::new(Method::Cancel, invite.uri())?;
        let via = invite
            .headers()
            .get("Via")
            .ok_or(Error::Missing("Via"))?
            .split(',')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        let (n, _) = invite.cseq()?;
        let h = c.headers_mut();
        h.push("Via", &via)?;
        h.push("Max-Forwards", "70")?;
        for name in ["From", "To", "Call-ID"] {
            h.push(name, invite.header(name).ok_or(Error::Missing(name))?)?;
        }
        h.push("CSeq", &format!("{n} CANCEL"))?;
        self.send_sip(to, c);
        Ok(())
    }
}

/// Whether `cancel` cancels `invite` (RFC 3261 9.2: same Call-ID, CSeq
/// number and top Via branch).
pub(crate) fn cancels(cancel: &Request, invite: &Request) -> bool {
    fn branch(r: &Request) -> Option<&str> {
        r.top_via_ref().ok()?.branch.as_deref()
    }
    cancel.call_id().ok() == invite.call_id().ok()
        && cancel.cseq().ok().map(|c| c.0) == invite.cseq().ok().map(|c| c.0)
        && branch(cancel) == branch(invite)
}

/// The methods every role supports (RFC 3261 20.5 `Allow`).
pub(crate) const ALLOWED_METHODS: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO";

impl UserAgent {
    /// Answers a request the role has no handler for. In a dialog (a To
    /// tag) the role does not hold: 481 (RFC 3261 12.2.2) — which is how a
    /// keep-alive OPTIONS learns that its peer restarted. Otherwise
    /// OPTIONS gets the status an INVITE would get now (11.2: 200, or 486
    /// when `busy`; in a dialog, 200) and any other method 405 (8.2.1),
    /// both listing [`ALLOWED_METHODS`]. ACK is never answered.
    pub(crate) fn answer_other_method(
        &mut self,
        to: &str,
        req: &Request,
        busy: bool,
        known_dialog: impl FnOnce(&Request) -> bool,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let in_dialog = req.to_ref().is_ok_and(|t| t.tag.is_some());
        let status = match req.method() {
            Method::Ack => return Ok(()),
            _ if in_dialog && !known_dialog(req) => StatusCode::CALL_DOES_NOT_EXIST,
            Method::Options if busy && !in_dialog => StatusCode::BUSY_HERE,
            Method::Options => StatusCode::OK,
            _ => StatusCode::METHOD_NOT_ALLOWED,
        };
        let tag = mcx_sip::new_tag(rand8(rng));
        let mut r = Response::for_request(req, status, Some(&tag))?;
        r.headers_mut().push("Allow", ALLOWED_METHODS)?;
        if status.is_success() {
            r.headers_mut().push("Contact", &self.contact)?;
        }
        self.send_sip(to, r);
        Ok(())
    }

    /// Answers a CANCEL that matches no pending INVITE: 481 (9.2).
    pub(crate) fn no_such_transaction(
        &mut self,
        to: &str,
        req: &Request,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        self.respond(
            to,
            req,
            StatusCode::CALL_DOES_NOT_EXIST,
            None,
            Answer::Empty,
            rng,
        )
    }
}

/// Legs of ended calls that may still get a late 2xx: (Call-ID → server,
/// INVITE), oldest first, at most [`GoneLegs::CAPACITY`] and for
/// [`GoneLegs::KEEP`] (the longest an MC server's INVITE transaction can
/// live, Timer B / its member deadline being shorter).
#[derive(Default)]
pub(crate) struct GoneLegs {
    order: VecDeque<(Instant, String)>,
    legs: HashMap<String, (String, Request)>,
}

impl GoneLegs {
    const CAPACITY: usize = 4096;
    const KEEP: Duration = Duration::from_secs(64);

    pub(crate) fn remember(
        &mut self,
        call_id: &str,
        server: String,
        invite: Request,
        now: Instant,
    ) {
        while self.order.len() >= Self::CAPACITY
            || self
                .order
                .front()
                .is_some_and(|(t, _)| now.saturating_duration_since(*t) > Self::KEEP)
        {
            if let Some((_, c)) = self.order.pop_front() {
                self.legs.remove(&c);
            }
        }
        self.order.push_back((now, call_id.to_owned()));
        self.legs.insert(call_id.to_owned(), (server, invite));
    }

    pub(crate) fn take(&mut self, call_id: &str) -> Option<(String, Request)> {
        self.legs.remove(call_id)
    }
}
