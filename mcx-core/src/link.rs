//! [`SipLink`]: the sans-IO shim between one role and the network. It puts
//! the roles' message-level SIP on the `mcx-sip` [`TransactionLayer`]
//! (RFC 3261 17 with RFC 6026) and does the transaction-user work the
//! roles leave out: 2xx retransmission and ACK matching (RFC 3261
//! 13.3.1.4, 13.2.2.4), a synthesized 408 when a client transaction times
//! out (8.1.3.1) and naming the peer of every message by its SIP URI.
//!
//! ```text
//!  role.poll_transmit() ──send(now, remote, bytes)──► SipLink ──poll_transmit()──► socket
//!  role.handle_sip(from, msg) ◄──poll_deliver()─────── SipLink ◄──receive(now, remote, bytes)── socket
//!                                  handle_timeout(now) / poll_timeout()
//! ```
//!
//! Taxonomy (STYLE.md section 5): (A) [`SipLink::stats`], [`SipLink::local`];
//! (B) [`SipLink::receive`], [`SipLink::receive_message`],
//! [`SipLink::handle_timeout`], [`SipLink::handle_transport_error`];
//! (C) [`SipLink::send`]; (D) [`SipLink::poll_transmit`] →
//! [`SipLink::poll_timeout`] → [`SipLink::poll_deliver`].
//!
//! Cost: O(log n) per message and per timer in the number n of live
//! transactions and records. The link's own deadlines are kept in
//! deadline-ordered indexes ([`Agenda`]), and it drops a transaction's
//! state when the layer reports [`Event::Terminated`], never by scanning.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mcx_sip::{
    Event, Limits, MAGIC_COOKIE, Message, Method, Remote, Request, Response, Role, StatusCode,
    Timers, TransactionLayer, Transmit, Transport, TxError, TxHandle, TxKey, parse_datagram,
};

use crate::Error;
use crate::agenda::{Agenda, Slot};
use crate::hashed::{CallSeq, CallSeqRef, HashedMap};

/// How long the role may take to give a final response to a non-INVITE
/// request before the link answers 500 itself (in units of T1; the
/// client gives up at 64·T1, Timer F).
const NON_INVITE_TU_DEADLINE_T1: u32 = 64;
/// The same for INVITE: at least 3 minutes (the value of RFC 3261 Timer
/// C) and at least 3·64·T1, because an MC server waits up to 64·T1 for
/// its members and the controlling server waits for the MC servers.
const INVITE_TU_DEADLINE_MIN: Duration = Duration::from_secs(180);
/// At most this many dialog peers are remembered (oldest evicted).
const MAX_DIALOGS: usize = 4096;

/// A SIP message for the role: pass it to the role's `handle_sip(time,
/// &from, message, rng)`. It is parsed once, by the link: the role does
/// not parse it again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The peer's address as the roles use addresses (its SIP URI): for a
    /// request the dialog peer (in-dialog requests), else its Contact,
    /// else its From URI; for a response its Contact, else the address
    /// the request was sent to (the dialog peer, else the Request-URI).
    pub from: String,
    /// One whole SIP message, as parsed by the link (or synthesized by
    /// it: a 408 or 503 for a failed client transaction).
    pub message: Message,
}

/// Counters of what the link did (for tests and operators).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkStats {
    /// Messages received from the network.
    pub received: u64,
    /// Received octets that were not a usable SIP message (dropped).
    pub malformed: u64,
    /// Responses and ACKs that matched nothing, or duplicates absorbed
    /// by the link (dropped).
    pub stray: u64,
    /// Messages handed to the role.
    pub delivered: u64,
    /// 2xx responses to INVITE retransmitted by the link (13.3.1.4).
    pub retransmitted_2xx: u64,
    /// ACKs re-sent for a retransmitted 2xx (13.2.2.4).
    pub reacked: u64,
    /// Client transactions that timed out (Timer B or F) and were
    /// answered to the role with a synthesized 408.
    pub timeouts: u64,
    /// 2xx responses retransmitted for 64·T1 without an ACK.
    pub ack_timeouts: u64,
    /// Requests the role never answered; the link answered 500.
    pub unanswered: u64,
}

/// What the link keeps with each transaction, in the layer's record of it
/// ([`TransactionLayer::with_user_data`]): a message finds both with the
/// layer's one lookup of its key, and they end together. (A table of the
/// link's own beside the layer's cost every member of a fan-out a second
/// hash of the key, a bucket miss and a key comparison per message.)
#[derive(Default)]
enum TxData {
    /// A server transaction the role has answered (or, for an instant, one
    /// just made).
    #[default]
    None,
    Client(ClientTx),
    /// Boxed: most of a fan-out's transactions are clients, whose records
    /// should not carry the size of a request.
    Server(Box<ServerTx>),
}

impl TxData {
    /// A server transaction's record, taken (the role or the link answers
    /// it); `None` for a client transaction, whose data stays.
    fn take_server(&mut self) -> Option<Box<ServerTx>> {
        match std::mem::take(self) {
            Self::Server(tx) => Some(tx),
            other => {
                *self = other;
                None
            }
        }
    }
}

/// What the link keeps per client transaction. (A 408 or 503 for the
/// role is built from the request the layer hands back with its
/// [`Event::Timeout`] or [`Event::TransportError`]: nothing is made or kept
/// here for the failure that seldom comes.)
struct ClientTx {
    /// Where the request went (a transport error there ends it).
    remote: Remote,
    /// Who the request was sent to, as a URI (see [`Delivery::from`]).
    peer: String,
    /// To tags of the 2xx responses already delivered (INVITE).
    ok_tags: Vec<String>,
}

impl ClientTx {
    fn new(remote: Remote, peer: String) -> Self {
        Self {
            remote,
            peer,
            ok_tags: Vec::new(),
        }
    }
}

/// What the link keeps per server transaction until the role answers.
struct ServerTx {
    /// The request (the link's own 500 is built from it; its Call-ID and
    /// Via are read from it, checked when it came).
    request: Request,
    remote: Remote,
    /// The Contact URI of the request (the dialog peer once 2xx is sent).
    contact: Option<String>,
    cseq: u32,
    method: Method,
    /// When the link answers 500 if the role did not: its entry in
    /// [`SipLink::wake`].
    deadline: Slot,
}

impl ServerTx {
    /// The request's Call-ID ([`SipLink::on_request`] took only requests
    /// that have one).
    fn call_id(&self) -> &str {
        self.request.call_id().unwrap_or_default()
    }

    /// The request's Via as written: a response carries it unchanged
    /// (RFC 3261 8.2.6.2).
    fn via(&self) -> &str {
        self.request.header("Via").unwrap_or_default()
    }
}

/// A 2xx to an INVITE the link retransmits until the ACK (13.3.1.4).
struct Accepted {
    remote: Remote,
    /// The octets the layer sent, shared with its copy.
    bytes: Bytes,
    interval: Duration,
    /// Next retransmission (`None` over TCP and once acknowledged).
    next: Option<Instant>,
    /// The entry of `next` in [`SipLink::wake`], while `next < until`.
    next_slot: Option<Slot>,
    /// 64·T1 after the first send: retransmission stops; the record goes
    /// (its entry in [`SipLink::expiry`]).
    until: Slot,
    acked: bool,
}

impl Accepted {
    /// The retransmission to schedule, if any (none at or after `until`).
    fn due(&self) -> Option<Instant> {
        self.next.filter(|n| *n < self.until.0)
    }
}

/// An ACK the role sent for a 2xx, re-sent if the 2xx comes again.
struct SentAck {
    remote: Remote,
    /// The ACK's octets as sent (Via rewritten), shared with the transmit:
    /// re-sent as they are if the 2xx comes again. (Not the `Request`: its
    /// buffers and parsed values would be kept 64·T1 for a rare re-send.)
    bytes: Bytes,
    /// When it is forgotten: its entry in [`SipLink::expiry`].
    until: Slot,
}

/// A dialog's peer URI (Call-ID keyed; see [`Delivery::from`]).
struct DialogPeer {
    uri: String,
    seq: u64,
}

/// What an entry of [`SipLink::wake`] is for.
///
/// An entry names its record in `accepted` or `acks` by the record's hash
/// in that map, and the record is the one there whose slot is the entry's
/// (`next_slot`, `until`): no copy of the Call-ID per entry, and neither
/// hashing nor a key comparison when it is due.
enum Wake {
    /// The next retransmission of the 2xx in `accepted` (13.3.1.4).
    Retransmit(u64),
    /// The deadline of the server transaction's request ([`ServerTx`]):
    /// the link answers 500.
    Unanswered(TxHandle),
}

/// What an entry of [`SipLink::expiry`] drops (named as in [`Wake`]).
enum Expiry {
    /// The record in `accepted` (64·T1 after the 2xx).
    Accepted(u64),
    /// The record in `acks` (64·T1 after the ACK).
    Ack(u64),
}

/// One role's SIP over the network: transactions, retransmissions,
/// 2xx/ACK handling and peer naming (sans-IO).
///
/// The driver feeds the role's SIP transmits to [`SipLink::send`] and
/// socket input to [`SipLink::receive`], hands [`SipLink::poll_deliver`]
/// to the role, writes [`SipLink::poll_transmit`] to sockets and calls
/// [`SipLink::handle_timeout`] at [`SipLink::poll_timeout`]. Floor
/// control does not go through the link.
pub struct SipLink {
    timers: Timers,
    local: Remote,
    /// `local`'s address as a Via sent-by, written once.
    sent_by: String,
    /// `sent_by` checked once, for every request the link writes its Via
    /// into (a socket's address always passes).
    via: Result<mcx_sip::TransportVia, mcx_sip::BuildError>,
    /// The transactions, each with the link's [`TxData`].
    layer: TransactionLayer<TxData>,
    // The records below are found by whole key only: hashed, because an
    // ordered map compared branches and Call-IDs (long common prefixes)
    // at every level, a tenth of an MC server's time at 400 members.
    // Each entry keeps its hash (`HashedMap`): no rehashing of keys as
    // records churn, hashes compared before keys.
    /// By (Call-ID, CSeq number).
    accepted: HashedMap<CallSeq, Accepted>,
    /// By (Call-ID, CSeq number).
    acks: HashedMap<CallSeq, SentAck>,
    /// Timers that do something: 2xx retransmissions, unanswered requests.
    wake: Agenda<Wake>,
    /// Ends of `accepted` and `acks` records (dropped on every input too).
    expiry: Agenda<Expiry>,
    /// By Call-ID.
    dialogs: HashedMap<String, DialogPeer>,
    /// The hashes in `dialogs` of its entries by `DialogPeer::seq`, oldest
    /// first (eviction: the entry under that hash with that `seq`).
    dialog_order: BTreeMap<u64, u64>,
    dialog_seq: u64,
    transmits: VecDeque<Transmit>,
    deliveries: VecDeque<Delivery>,
    stats: LinkStats,
}

impl fmt::Debug for SipLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SipLink")
            .field("local", &self.local)
            .field("transactions", &self.layer.len())
            .field("pending", &self.pending())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl SipLink {
    /// A link for the endpoint whose SIP socket is `local`: its address
    /// becomes the sent-by of the top Via of every request sent.
    pub fn new(timers: Timers, local: Remote) -> Self {
        Self {
            timers,
            local,
            sent_by: local.addr.to_string(),
            via: mcx_sip::TransportVia::new(&local.addr.to_string()),
            layer: TransactionLayer::with_user_data(timers),
            accepted: HashedMap::default(),
            acks: HashedMap::default(),
            wake: Agenda::new(),
            expiry: Agenda::new(),
            dialogs: HashedMap::default(),
            dialog_order: BTreeMap::new(),
            dialog_seq: 0,
            transmits: VecDeque::new(),
            deliveries: VecDeque::new(),
            stats: LinkStats::default(),
        }
    }

    // (A) getters

    /// This endpoint's SIP socket and transport.
    pub fn local(&self) -> Remote {
        self.local
    }

    /// What the link did so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// How many transactions (with the link's records of them), 2xx/ACK
    /// records and their timers the link holds: 0 once everything has
    /// ended and expired (64·T1 after the last exchange). Dialog peers
    /// (kept until BYE, at most 4096) are not counted.
    pub fn pending(&self) -> usize {
        self.layer.len()
            + self.accepted.len()
            + self.acks.len()
            + self.wake.len()
            + self.expiry.len()
    }

    // (C) the role's output

    /// A SIP message the role produced, to `remote`.
    ///
    /// - A request other than ACK starts a client transaction: its top
    ///   Via is rewritten to `SIP/2.0/<transport of remote> <local
    ///   address>;branch=<the role's branch>` (RFC 3261 18.1.1).
    /// - An ACK (for a 2xx; the transaction layer sends those for
    ///   non-2xx itself) goes out statelessly with the same Via rewrite
    ///   and is remembered for 64·T1 so a retransmitted 2xx is re-ACKed.
    /// - A response goes through the server transaction it answers
    ///   (matched by top Via, Call-ID and CSeq, so branch and method);
    ///   `remote` is ignored: responses go where the request came from.
    ///   A 2xx to INVITE over UDP is retransmitted by the link from T1,
    ///   doubling to T2, until the ACK arrives or 64·T1 passes
    ///   (13.3.1.4).
    ///
    /// # Errors
    /// [`Error::SipParse`] if `bytes` is not one SIP message,
    /// [`Error::Transaction`] if the layer refuses it (e.g.
    /// [`TxError::NoTransaction`] for a response to no live request,
    /// [`TxError::BadRequest`] without a magic-cookie branch),
    /// [`Error::SipBuild`] if the Via cannot be rewritten.
    pub fn send(&mut self, now: Instant, remote: Remote, bytes: &[u8]) -> Result<(), Error> {
        self.send_message(now, remote, parse_datagram(bytes, &Limits::TCP)?)
    }

    /// [`SipLink::send`] of a message the role built ([`crate::Transmit::sip`]),
    /// handed over as a value: nothing is parsed; the message is encoded
    /// once, after its Via is rewritten. The size limits a parse would
    /// apply (those of TCP) are checked on the value.
    ///
    /// # Errors
    /// As [`SipLink::send`].
    pub fn send_message(
        &mut self,
        now: Instant,
        remote: Remote,
        msg: Message,
    ) -> Result<(), Error> {
        crate::sip::check_limits(&msg, &Limits::TCP)?;
        self.expire(now);
        let r = match msg {
            Message::Request(req) if *req.method() == Method::Ack => {
                self.send_ack(now, remote, req)
            }
            Message::Request(req) => self.send_request(now, remote, req),
            Message::Response(resp) => self.send_response(now, resp),
        };
        self.pump(now);
        r
    }

    /// The sent-by of the top Via this link writes (its address).
    pub fn sent_by(&self) -> &str {
        &self.sent_by
    }

    /// Sends a role's SIP output (a [`crate::Transmit`] on
    /// [`crate::Channel::Sip`]) to `remote`: its message as a value
    /// ([`SipLink::send_message`]), its encoded request
    /// ([`SipLink::send_encoded`]) or its octets ([`SipLink::send`]).
    ///
    /// # Errors
    /// As the one of those it goes to.
    pub fn send_transmit(
        &mut self,
        now: Instant,
        remote: Remote,
        t: crate::Transmit,
    ) -> Result<(), Error> {
        match (t.sip, t.encoded) {
            (Some(msg), _) => self.send_message(now, remote, msg),
            (None, Some(req)) => self.send_encoded(now, remote, *req),
            (None, None) => self.send(now, remote, &t.contents),
        }
    }

    /// Sends a request the role encoded itself ([`mcx_sip::RequestTemplate`],
    /// [`mcx_sip::Dialog::ack_encoded`]; within the limits it was made for):
    /// its top Via is written for `remote`'s transport and this link's
    /// address, and the transaction layer sends it as it is (an ACK for a
    /// 2xx goes as [`SipLink::send_message`] sends one). Nothing of it is
    /// parsed or encoded here.
    ///
    /// # Errors
    /// As [`SipLink::send_message`] for a request.
    pub fn send_encoded(
        &mut self,
        now: Instant,
        remote: Remote,
        mut req: mcx_sip::EncodedRequest,
    ) -> Result<(), Error> {
        self.expire(now);
        match &self.via {
            Ok(via) => req.set_transport_via(remote.transport, via),
            Err(e) => return Err(e.clone().into()),
        }
        if *req.method() == Method::Ack {
            let cseq = req.cseq();
            let (bytes, call_id) = req.into_bytes_and_call_id();
            self.remember_ack(now, remote, (call_id, cseq), Bytes::from(bytes));
            return Ok(());
        }
        let peer = self.peer_of(req.call_id(), req.uri());
        self.layer.send_encoded_with(
            now,
            remote,
            req,
            TxData::Client(ClientTx::new(remote, peer)),
        )?;
        self.pump(now);
        Ok(())
    }

    /// Where a request of ours goes: its dialog's peer, else its
    /// Request-URI.
    fn peer_of(&self, call_id: &str, uri: &str) -> String {
        self.dialogs
            .get(call_id)
            .map_or_else(|| uri.to_owned(), |d| d.uri.clone())
    }

    fn send_ack(&mut self, now: Instant, remote: Remote, mut ack: Request) -> Result<(), Error> {
        self.rewrite_via(&mut ack, remote.transport)?;
        let key = (ack.call_id()?.to_owned(), ack.cseq()?.0);
        self.remember_ack(now, remote, key, Bytes::from(ack.to_bytes()));
        Ok(())
    }

    /// Sends the ACK for a 2xx and keeps it for 64·T1, to send again for
    /// each retransmission of that 2xx (RFC 3261 13.2.2.4).
    fn remember_ack(&mut self, now: Instant, remote: Remote, key: (String, u32), bytes: Bytes) {
        self.push_transmit(remote, bytes.clone());
        let hash = self.acks.hash(&key);
        let until = self
            .expiry
            .insert(now + self.timers.t1 * 64, Expiry::Ack(hash));
        if let Some(old) = self.acks.insert_hashed(
            hash,
            key,
            SentAck {
                remote,
                bytes,
                until,
            },
        ) {
            self.expiry.remove(old.until);
        }
    }

    fn send_request(
        &mut self,
        now: Instant,
        remote: Remote,
        mut req: Request,
    ) -> Result<(), Error> {
        self.rewrite_via(&mut req, remote.transport)?;
        let peer = self.peer_of(req.call_id()?, req.uri());
        self.layer.send_request_with(
            now,
            remote,
            req,
            TxData::Client(ClientTx::new(remote, peer)),
        )?;
        Ok(())
    }

    fn send_response(&mut self, now: Instant, resp: Response) -> Result<(), Error> {
        let handle = self
            .server_handle_of(&resp)
            .ok_or(Error::Transaction(TxError::NoTransaction))?;
        let status = resp.status();
        // The octets sent: a 2xx's retransmissions repeat them (encoded once).
        let bytes = self.layer.respond(now, handle, resp)?;
        if !status.is_final() {
            return Ok(());
        }
        let Some(mut tx) = self.take_server(handle) else {
            return Ok(());
        };
        if tx.method == Method::Invite && status.is_success() {
            if let Some(contact) = tx.contact.take() {
                self.remember_dialog(tx.call_id(), contact);
            }
            let remote = tx.remote;
            let t1 = self.timers.t1;
            let id = (tx.call_id().to_owned(), tx.cseq);
            let hash = self.accepted.hash(&id);
            let mut a = Accepted {
                remote,
                bytes,
                interval: t1,
                next: (!remote.transport.is_reliable()).then_some(now + t1),
                next_slot: None,
                until: self.expiry.insert(now + t1 * 64, Expiry::Accepted(hash)),
                acked: false,
            };
            a.next_slot = a
                .due()
                .map(|at| self.wake.insert(at, Wake::Retransmit(hash)));
            if let Some(old) = self.accepted.insert_hashed(hash, id, a) {
                self.unindex_accepted(&old);
            }
        } else if tx.method == Method::Bye {
            self.forget_dialog(tx.call_id());
        }
        Ok(())
    }

    // (B) network and timer input

    /// Octets received from `from`: one whole SIP message (a UDP datagram,
    /// or one message cut from a TCP stream by `mcx_sip::StreamDecoder`).
    /// Malformed input is counted in [`LinkStats::malformed`] and dropped.
    pub fn receive(&mut self, now: Instant, from: Remote, bytes: &[u8]) {
        let limits = if from.transport.is_reliable() {
            Limits::TCP
        } else {
            Limits::UDP
        };
        match parse_datagram(bytes, &limits) {
            Ok(msg) => self.receive_message(now, from, msg),
            Err(_) => {
                self.stats.received += 1;
                self.stats.malformed += 1;
            }
        }
    }

    /// A message already parsed (e.g. by `mcx_sip::StreamDecoder`) from
    /// `from`. Retransmitted requests are absorbed (the last response is
    /// re-sent), a retransmitted 2xx is re-ACKed, duplicates never reach
    /// the role twice.
    ///
    /// A request's top Via gets the transport source (`received`, `rport`:
    /// RFC 3261 18.2.1, RFC 3581), replacing any the sender wrote: roles
    /// bind registrations to it and authorise requests by it
    /// ([`mcx_sip::Request::source`]).
    pub fn receive_message(&mut self, now: Instant, from: Remote, mut msg: Message) {
        self.stats.received += 1;
        self.expire(now);
        if let Message::Request(r) = &mut msg
            && r.stamp_received(&from.addr.ip().to_string(), from.addr.port())
                .is_err()
        {
            self.stats.malformed += 1;
            return;
        }
        let usable = match &msg {
            // With the rest checked here, a usable top Via is all
            // `server_key` needs: its key is made once, by the layer.
            Message::Request(r) => {
                r.top_via_ref().is_ok()
                    && r.call_id().is_ok()
                    && r.cseq().is_ok()
                    && r.from_ref().is_ok()
                    && r.to_ref().is_ok()
            }
            Message::Response(r) => {
                r.top_via_ref().is_ok() && r.cseq().is_ok() && r.call_id().is_ok()
            }
        };
        if !usable {
            self.stats.malformed += 1;
            return;
        }
        self.layer.handle_incoming(now, from, msg);
        self.pump(now);
    }

    /// Fires the timers due at `now`: transaction timers (retransmissions,
    /// Timer B/F → a 408 for the role), 2xx retransmissions, clean-up.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        self.pump(now);
        let t2 = self.timers.t2;
        // Only the due entries: O(log n) each.
        while let Some((slot, w)) = self.wake.pop_due_slot(now) {
            match w {
                Wake::Retransmit(hash) => {
                    let Some(a) = (self.accepted).get_mut_by(hash, |a| a.next_slot == Some(slot))
                    else {
                        continue;
                    };
                    let mut sent = 0;
                    while let Some(at) = a.due().filter(|at| *at <= now) {
                        sent += 1;
                        a.interval = (a.interval * 2).min(t2);
                        a.next = Some(at + a.interval);
                    }
                    let (remote, bytes) = (a.remote, a.bytes.clone());
                    a.next_slot = a
                        .due()
                        .map(|at| self.wake.insert(at, Wake::Retransmit(hash)));
                    for _ in 0..sent {
                        self.stats.retransmitted_2xx += 1;
                        self.push_transmit(remote, bytes.clone());
                    }
                }
                // A request the role never answered (a role error or an
                // ignored method): answer 500 so the transaction ends.
                Wake::Unanswered(handle) => {
                    let Some(tx) = (self.layer.user_data_mut(handle)).and_then(TxData::take_server)
                    else {
                        continue;
                    };
                    self.stats.unanswered += 1;
                    let resp = (self.layer.key(handle))
                        .and_then(|key| Self::unanswered_response(key, &tx));
                    if let Some(resp) = resp {
                        let _ = self.layer.respond(now, handle, resp);
                    }
                }
            }
        }
        self.expire(now);
        self.pump(now);
    }

    /// The driver could not send to `remote` (e.g. a TCP connect failed):
    /// every client transaction toward it ends, and the role gets a 503
    /// for each (RFC 3261 8.1.3.1).
    pub fn handle_transport_error(&mut self, now: Instant, remote: Remote) {
        let keys: Vec<TxKey> = self
            .layer
            .transactions()
            .filter(|(_, _, d)| matches!(d, TxData::Client(c) if c.remote == remote))
            .map(|(_, k, _)| k.clone())
            .collect();
        for k in keys {
            self.layer.handle_transport_error(&k);
        }
        self.pump(now);
    }

    // (D) outputs

    /// The next SIP message for the role.
    #[must_use]
    pub fn poll_deliver(&mut self) -> Option<Delivery> {
        self.deliveries.pop_front()
    }

    /// The next datagram (UDP) or stream write (TCP) to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// When to call [`SipLink::handle_timeout`] next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.layer.poll_timeout(),
            self.wake.first(),
            self.expiry.first(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // internals

    /// Moves the layer's transmits to ours and turns its events into
    /// deliveries.
    fn pump(&mut self, now: Instant) {
        while let Some(t) = self.layer.poll_transmit() {
            self.transmits.push_back(t);
        }
        while let Some(e) = self.layer.poll_event() {
            match e {
                Event::Request {
                    handle,
                    remote,
                    request,
                    ..
                } => self.on_request(now, handle, remote, request),
                Event::Ack { remote: _, request } => self.on_ack(request),
                Event::Response {
                    key,
                    handle,
                    response,
                } => self.on_response(&key, handle, response),
                Event::Timeout { key, request, user } => {
                    self.fail_client(&key, request, user, StatusCode::REQUEST_TIMEOUT);
                }
                Event::TransportError { key, request, user } => {
                    self.fail_client(&key, request, user, StatusCode::SERVICE_UNAVAILABLE);
                }
                // Ended silently (timers D, I, J, K, L, M; reliable
                // completion): its state has gone with it, but for an
                // unanswered request's deadline.
                Event::Terminated { key: _, user } => self.drop_data(user),
                _ => {}
            }
            while let Some(t) = self.layer.poll_transmit() {
                self.transmits.push_back(t);
            }
        }
    }

    fn on_request(&mut self, now: Instant, handle: TxHandle, remote: Remote, request: Request) {
        let from = self.request_peer(&request);
        let (Ok(_), Ok((cseq, method))) = (request.call_id(), request.cseq()) else {
            return;
        };
        let deadline = if method == Method::Invite {
            INVITE_TU_DEADLINE_MIN.max(self.timers.t1 * 64 * 3)
        } else {
            self.timers.t1 * NON_INVITE_TU_DEADLINE_T1
        };
        let contact = request
            .contact_ref()
            .ok()
            .flatten()
            .filter(|c| c.uri != "*")
            .map(|c| c.uri.clone());
        let Some(data) = self.layer.user_data_mut(handle) else {
            return;
        };
        let deadline = self.wake.insert(now + deadline, Wake::Unanswered(handle));
        let old = std::mem::replace(
            data,
            TxData::Server(Box::new(ServerTx {
                request: request.clone(),
                remote,
                contact,
                cseq,
                method,
                deadline,
            })),
        );
        self.drop_data(old);
        self.deliver(from, Message::Request(request));
    }

    /// An ACK that matched no transaction: the ACK for a 2xx we sent.
    fn on_ack(&mut self, ack: Request) {
        let (Ok(call_id), Ok((cseq, _))) = (ack.call_id(), ack.cseq()) else {
            self.stats.stray += 1;
            return;
        };
        let Some(a) = self.accepted.get_mut(&CallSeqRef(call_id, cseq)) else {
            self.stats.stray += 1;
            return;
        };
        a.next = None;
        if let Some(slot) = a.next_slot.take() {
            self.wake.remove(slot);
        }
        if a.acked {
            self.stats.stray += 1; // re-ACK of a retransmitted 2xx
            return;
        }
        a.acked = true;
        let from = self.request_peer(&ack);
        self.deliver(from, Message::Request(ack));
    }

    fn on_response(&mut self, key: &TxKey, handle: TxHandle, resp: Response) {
        let Some(TxData::Client(tx)) = self.layer.user_data_mut(handle) else {
            self.stats.stray += 1;
            return;
        };
        let status = resp.status();
        if status == StatusCode::TRYING && key.method != Method::Invite {
            return; // hop by hop: it only stops Timer E
        }
        let contact = resp
            .contact_ref()
            .ok()
            .flatten()
            .filter(|c| c.uri != "*")
            .map(|c| c.uri.clone());
        let call_id = resp.call_id().unwrap_or_default();
        if key.method == Method::Invite && status.is_success() {
            let tag = resp
                .to_ref()
                .ok()
                .and_then(|t| t.tag.as_deref())
                .unwrap_or_default();
            if tx.ok_tags.iter().any(|t| t == tag) {
                // A retransmitted 2xx: ACK again, do not bother the role.
                let cseq = resp.cseq().map_or(0, |(n, _)| n);
                if let Some(ack) = self.acks.get(&CallSeqRef(call_id, cseq)) {
                    let (remote, bytes) = (ack.remote, ack.bytes.clone());
                    self.stats.reacked += 1;
                    self.push_transmit(remote, bytes);
                } else {
                    self.stats.stray += 1;
                }
                return;
            }
            tx.ok_tags.push(tag.to_owned());
            let from = contact.clone().unwrap_or_else(|| tx.peer.clone());
            if let Some(c) = contact {
                self.remember_dialog(call_id, c);
            }
            self.deliver(from, Message::Response(resp));
            return;
        }
        let from = contact.unwrap_or_else(|| tx.peer.clone());
        if key.method == Method::Bye && status.is_final() {
            self.forget_dialog(call_id);
        }
        self.deliver(from, Message::Response(resp));
    }

    /// Timer B/F or a transport error: the role gets `status` for the
    /// request as sent (RFC 3261 8.1.3.1). A transaction that already
    /// had its final response comes without its request (the layer
    /// dropped it then): the role has its answer, nothing is added.
    fn fail_client(
        &mut self,
        key: &TxKey,
        request: Option<Request>,
        data: TxData,
        status: StatusCode,
    ) {
        let TxData::Client(tx) = data else {
            self.drop_data(data);
            return;
        };
        let Some(request) = request else {
            return;
        };
        self.stats.timeouts += u64::from(status == StatusCode::REQUEST_TIMEOUT);
        if key.method == Method::Bye {
            if let Ok(c) = request.call_id() {
                self.forget_dialog(c);
            }
        }
        if let Ok(resp) = Response::for_request(&request, status, None) {
            self.deliver(tx.peer, Message::Response(resp));
        }
    }

    fn deliver(&mut self, from: String, message: Message) {
        self.stats.delivered += 1;
        self.deliveries.push_back(Delivery { from, message });
    }

    fn push_transmit(&mut self, remote: Remote, bytes: impl Into<Bytes>) {
        self.transmits.push_back(Transmit {
            destination: remote.addr,
            transport: remote.transport,
            bytes: bytes.into(),
        });
    }

    /// The peer of a received request: the dialog peer for an in-dialog
    /// request (To tag) of a known dialog, else the Contact, else From.
    fn request_peer(&self, req: &Request) -> String {
        let in_dialog = req.to_ref().is_ok_and(|t| t.tag.is_some());
        if in_dialog {
            if let Some(d) = req.call_id().ok().and_then(|c| self.dialogs.get(c)) {
                return d.uri.clone();
            }
        }
        if let Some(c) = req.contact_ref().ok().flatten().filter(|c| c.uri != "*") {
            return c.uri.clone();
        }
        req.from_ref().map(|f| f.uri.clone()).unwrap_or_default()
    }

    fn remember_dialog(&mut self, call_id: &str, uri: String) {
        let hash = self.dialogs.hash(call_id);
        if self.dialogs.get_hashed(hash, call_id).is_none() && self.dialogs.len() >= MAX_DIALOGS {
            if let Some((seq, oldest)) = self.dialog_order.pop_first() {
                self.dialogs.remove_by(oldest, |d| d.seq == seq);
            }
        }
        self.dialog_seq += 1;
        let seq = self.dialog_seq;
        if let Some(old) =
            (self.dialogs).insert_hashed(hash, call_id.to_owned(), DialogPeer { uri, seq })
        {
            self.dialog_order.remove(&old.seq);
        }
        self.dialog_order.insert(seq, hash);
    }

    fn forget_dialog(&mut self, call_id: &str) {
        if let Some(d) = self.dialogs.remove(call_id) {
            self.dialog_order.remove(&d.seq);
        }
    }

    /// Takes a server transaction's record (the role answers it) and drops
    /// its deadline.
    fn take_server(&mut self, handle: TxHandle) -> Option<Box<ServerTx>> {
        let tx = self.layer.user_data_mut(handle)?.take_server()?;
        self.wake.remove(tx.deadline);
        Some(tx)
    }

    /// The link's data of a transaction that has ended, or that is
    /// replaced: what goes with it (an unanswered request's deadline).
    fn drop_data(&mut self, data: TxData) {
        if let TxData::Server(tx) = data {
            self.wake.remove(tx.deadline);
        }
    }

    /// Removes the timers of an `accepted` record that is gone.
    fn unindex_accepted(&mut self, a: &Accepted) {
        if let Some(slot) = a.next_slot {
            self.wake.remove(slot);
        }
        self.expiry.remove(a.until);
    }

    /// The server transaction a response from the role answers: the one
    /// whose request had the same top Via, Call-ID and CSeq (what
    /// `Response::for_request` copies), which for RFC 3261 peers is the
    /// branch + sent-by + method key of 17.2.3.
    fn server_handle_of(&self, resp: &Response) -> Option<TxHandle> {
        let via = resp.top_via_ref().ok()?;
        let (cseq, method) = resp.cseq().ok()?;
        let call_id = resp.call_id().ok()?;
        if let Some(branch) = via.branch.as_ref().filter(|b| b.starts_with(MAGIC_COOKIE)) {
            let key = TxKey {
                role: Role::Server,
                branch: branch.clone(),
                sent_by: via.sent_by.to_ascii_lowercase(),
                method,
            };
            return self.layer.find(&key);
        }
        let raw_via = resp.header("Via").unwrap_or_default();
        self.layer
            .transactions()
            .find(|(_, k, d)| {
                matches!(d, TxData::Server(s) if k.role == Role::Server
                    && s.call_id() == call_id && s.cseq == cseq && k.method == method
                    && s.via() == raw_via)
            })
            .map(|(h, _, _)| h)
    }

    /// The link's own 500 for a request the role never answered. The To
    /// tag (8.2.6.2) is derived from the branch: no RNG in the link.
    fn unanswered_response(key: &TxKey, tx: &ServerTx) -> Option<Response> {
        let tag: String = key
            .branch
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .rev()
            .take(16)
            .collect();
        let tag = if tag.is_empty() {
            "mcxlink".to_owned()
        } else {
            tag
        };
        let mut r =
            Response::for_request(&tx.request, StatusCode::SERVER_INTERNAL_ERROR, Some(&tag))
                .ok()?;
        r.set_reason("Server Internal Error - no answer from the application")
            .ok()?;
        Some(r)
    }

    /// Rewrites the top Via to this endpoint (RFC 3261 18.1.1: the
    /// transport used and the address to answer at), keeping the branch.
    fn rewrite_via(&self, req: &mut Request, transport: Transport) -> Result<(), Error> {
        // The role's Via is replaced whole but for its branch: read as
        // text, not parsed; the new Via is known as written, so the
        // transaction layer reads it without a parse either.
        if req.top_via_branch().is_none() {
            return Err(Error::Missing("Via branch"));
        }
        req.set_top_via_sent_by(transport.as_str(), &self.sent_by)?;
        Ok(())
    }

    /// Tests: every agenda entry belongs to a live record and every
    /// record's deadline is in its agenda at the right time (exactness).
    #[cfg(test)]
    fn assert_indexed(&self) {
        let mut wake = 0;
        for a in self.accepted.values() {
            assert_eq!(a.next_slot.map(|s| s.0), a.due());
            wake += usize::from(a.next_slot.is_some());
            for slot in a.next_slot.iter().chain([&a.until]) {
                assert!(self.wake.entries.contains_key(slot) != (*slot == a.until));
                assert!(self.expiry.entries.contains_key(slot) == (*slot == a.until));
            }
        }
        let mut servers = 0;
        for (_, _, d) in self.layer.transactions() {
            if let TxData::Server(s) = d {
                assert!(self.wake.entries.contains_key(&s.deadline));
                servers += 1;
            }
        }
        for a in self.acks.values() {
            assert!(self.expiry.entries.contains_key(&a.until));
        }
        assert_eq!(self.wake.len(), wake + servers);
        assert_eq!(self.expiry.len(), self.accepted.len() + self.acks.len());
    }

    /// Drops the `accepted` and `acks` records whose time is over (only
    /// those: the due entries of the expiry agenda).
    fn expire(&mut self, now: Instant) {
        while let Some((slot, e)) = self.expiry.pop_due_slot(now) {
            match e {
                Expiry::Accepted(hash) => {
                    if let Some(a) = self.accepted.remove_by(hash, |a| a.until == slot) {
                        if let Some(slot) = a.next_slot {
                            self.wake.remove(slot);
                        }
                        self.stats.ack_timeouts += u64::from(!a.acked);
                    }
                }
                Expiry::Ack(hash) => {
                    self.acks.remove_by(hash, |a| a.until == slot);
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::SocketAddr;

    use mcx_sip::{Dialog, Request, Response, StatusCode};

    use super::*;

    const ALICE: &str = "sip:alice@mcx.test";
    const BOB: &str = "sip:bob@mcx.test";
    const GROUP: &str = "sip:group@mcx.test";

    fn remote(port: u16, transport: Transport) -> Remote {
        Remote {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            transport,
        }
    }

    fn pair(transport: Transport) -> (SipLink, SipLink, Remote, Remote) {
        let (a, b) = (remote(5060, transport), remote(5070, transport));
        (
            SipLink::new(Timers::RFC3261, a),
            SipLink::new(Timers::RFC3261, b),
            a,
            b,
        )
    }

    /// A request the role encoded itself goes out as the same request
    /// given as a value would (the link's Via, octet for octet), over UDP
    /// and TCP, and its 2xx reaches the role as for any INVITE.
    #[test]
    fn an_encoded_request_goes_out_as_the_value_would() {
        for transport in [Transport::Udp, Transport::Tcp] {
            let now = Instant::now();
            let (a, b) = (remote(5060, transport), remote(5070, transport));
            let mut by_value = SipLink::new(Timers::RFC3261, a);
            let mut encoded = SipLink::new(Timers::RFC3261, a);
            let mut bob = SipLink::new(Timers::RFC3261, b);
            let req = request(Method::Invite, "z9hG4bKenc1");
            let template = mcx_sip::RequestTemplate::new(
                &req,
                &[(mcx_sip::Slot::Branch, "z9hG4bKenc1")],
                Limits::TCP,
            )
            .unwrap();
            by_value
                .send_message(now, b, Message::Request(req.clone()))
                .unwrap();
            encoded
                .send_encoded(now, b, template.fill(&["z9hG4bKenc1"]).unwrap())
                .unwrap();
            let sent = |l: &mut SipLink| l.poll_transmit().unwrap();
            let (v, e) = (sent(&mut by_value), sent(&mut encoded));
            assert_eq!(e.bytes, v.bytes, "{transport:?}");
            assert_eq!(e.destination, b.addr);
            // Bob answers 200; the link that sent it encoded delivers it.
            bob.receive(now, encoded.local(), &e.bytes);
            let d = bob.poll_deliver().unwrap();
            let Message::Request(inv) = d.message else {
                panic!("not a request")
            };
            let mut ok = Response::for_request(&inv, StatusCode::OK, Some("bobtag")).unwrap();
            ok.headers_mut()
                .push("Contact", &format!("<{BOB}>"))
                .unwrap();
            bob.send_message(now, b, Message::Response(ok)).unwrap();
            let answer = bob.poll_transmit().unwrap();
            encoded.receive(now, b, &answer.bytes);
            assert_eq!(answer.destination, a.addr);
            let got = encoded.poll_deliver().unwrap();
            let Message::Response(ok) = got.message else {
                panic!("not the 2xx")
            };
            assert_eq!(ok.status(), StatusCode::OK, "{transport:?}");
            // Its ACK, encoded, goes out as the built one would and is sent
            // again, as it is, for a retransmission of the 2xx.
            let dialog = Dialog::uac(&req, &ok).unwrap();
            let mut built = dialog.ack(("UDP", "mcx.test"), [9; 8]).unwrap();
            built
                .set_top_via_sent_by(transport.as_str(), &encoded.sent_by)
                .unwrap();
            encoded
                .send_encoded(
                    now,
                    b,
                    dialog.ack_encoded(("UDP", "mcx.test"), [9; 8]).unwrap(),
                )
                .unwrap();
            let ack = encoded.poll_transmit().unwrap();
            assert_eq!(&ack.bytes[..], &built.to_bytes()[..], "{transport:?}");
            encoded.receive(now, b, &answer.bytes);
            assert!(
                encoded.poll_deliver().is_none(),
                "a retransmitted 2xx is not delivered"
            );
            assert_eq!(encoded.poll_transmit().map(|t| t.bytes), Some(ack.bytes));
        }
    }

    fn request(method: Method, branch: &str) -> Request {
        Request::builder(method, GROUP)
            .via("UDP", "mcx.test", branch)
            .max_forwards(70)
            .from(None, ALICE, "alicetag")
            .to(None, GROUP, None)
            .call_id("cid1@mcx.test")
            .cseq(1)
            .contact(&format!("<{ALICE}>"))
            .build()
            .unwrap()
    }

    /// Moves everything `from` transmits into `to` (as if from `addr`).
    fn pipe(from: &mut SipLink, to: &mut SipLink, now: Instant) -> Vec<Vec<u8>> {
        let src = from.local();
        let mut sent = Vec::new();
        while let Some(t) = from.poll_transmit() {
            assert_eq!(t.destination, to.local().addr);
            to.receive(now, src, &t.bytes);
            sent.push(t.bytes.to_vec());
        }
        sent
    }

    fn deliveries(l: &mut SipLink) -> Vec<Delivery> {
        std::iter::from_fn(|| l.poll_deliver()).collect()
    }

    fn parse_resp(bytes: &[u8]) -> Response {
        match Message::parse(bytes).unwrap() {
            Message::Response(r) => r,
            Message::Request(_) => panic!("not a response"),
        }
    }

    fn resp_of(d: &Delivery) -> Response {
        match &d.message {
            Message::Response(r) => r.clone(),
            Message::Request(_) => panic!("not a response"),
        }
    }

    fn req_of(d: &Delivery) -> Request {
        match &d.message {
            Message::Request(r) => r.clone(),
            Message::Response(_) => panic!("not a request"),
        }
    }

    #[test]
    fn duplicate_request_is_delivered_once_with_rewritten_via() {
        for transport in [Transport::Udp, Transport::Tcp, Transport::Tls] {
            let (mut a, mut b, _, rb) = pair(transport);
            let now = Instant::now();
            let inv = request(Method::Invite, "z9hG4bKdup1");
            a.send(now, rb, &inv.to_bytes()).unwrap();
            let t = a.poll_transmit().unwrap();
            let src = a.local();
            b.receive(now, src, &t.bytes);
            b.receive(now, src, &t.bytes); // a retransmission
            let got = deliveries(&mut b);
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].from, ALICE, "the Contact of the request");
            let via = req_of(&got[0]).top_via().unwrap();
            assert_eq!(via.transport, transport.as_str());
            assert_eq!(via.sent_by, "127.0.0.1:5060");
            assert_eq!(via.branch.as_deref(), Some("z9hG4bKdup1"));
            assert_eq!(b.stats().delivered, 1);
        }
    }

    #[test]
    fn a_message_handed_as_a_value_goes_out_as_its_octets_would() {
        // Request, its 2xx and the ACK: each through `send` (octets the
        // link parses) on one pair of links and through `send_message`
        // (the value) on another; the wire sees the same octets.
        let now = Instant::now();
        let (mut a1, mut b1, ra, rb) = pair(Transport::Udp);
        let (mut a2, mut b2, _, _) = pair(Transport::Udp);
        let inv = request(Method::Invite, "z9hG4bKvalue1");
        a1.send(now, rb, &inv.to_bytes()).unwrap();
        a2.send_message(now, rb, Message::Request(inv)).unwrap();
        let (w1, w2) = (pipe(&mut a1, &mut b1, now), pipe(&mut a2, &mut b2, now));
        assert_eq!(w1, w2);
        assert_eq!(w1.len(), 1);
        let got = req_of(&deliveries(&mut b1)[0]);
        assert_eq!(deliveries(&mut b2).len(), 1);
        let ok = Response::for_request(&got, StatusCode::OK, Some("bobtag")).unwrap();
        b1.send(now, ra, &ok.to_bytes()).unwrap();
        b2.send_message(now, ra, Message::Response(ok)).unwrap();
        let (w1, w2) = (pipe(&mut b1, &mut a1, now), pipe(&mut b2, &mut a2, now));
        assert_eq!(w1, w2);
        assert_eq!(w1.len(), 1);
        let two_xx = resp_of(&deliveries(&mut a1)[0]);
        assert_eq!(deliveries(&mut a2).len(), 1);
        let mut ack = request(Method::Ack, "z9hG4bKvalue2");
        ack.headers_mut()
            .set("To", two_xx.header("To").unwrap())
            .unwrap();
        a1.send(now, rb, &ack.to_bytes()).unwrap();
        a2.send_message(now, rb, Message::Request(ack)).unwrap();
        let (w1, w2) = (pipe(&mut a1, &mut b1, now), pipe(&mut a2, &mut b2, now));
        assert_eq!(w1, w2);
        assert_eq!(w1.len(), 1);
        // A value over the size limits is refused as its octets would be.
        let mut big = request(Method::Invite, "z9hG4bKvalue3");
        big.set_body(Some("text/plain"), Bytes::from(vec![b'x'; (1 << 20) + 1]))
            .unwrap();
        assert!(matches!(
            a1.send(now, rb, &big.to_bytes()),
            Err(Error::SipParse(_))
        ));
        assert!(matches!(
            a2.send_message(now, rb, Message::Request(big)),
            Err(Error::SipParse(_))
        ));
    }

    #[test]
    fn response_to_unknown_transaction_is_an_error() {
        let (_, mut b, ra, _) = pair(Transport::Udp);
        let now = Instant::now();
        let never_received = request(Method::Invite, "z9hG4bKnone");
        let r = Response::for_request(&never_received, StatusCode::OK, Some("t")).unwrap();
        assert_eq!(
            b.send(now, ra, &r.to_bytes()),
            Err(Error::Transaction(TxError::NoTransaction))
        );
        assert!(matches!(
            b.send(now, ra, b"not SIP"),
            Err(Error::SipParse(_))
        ));
        assert!(b.poll_transmit().is_none());
    }

    /// A's INVITE (branch `branch`) answered 200 with a Contact by B over
    /// UDP: the links, the time, the INVITE and the 2xx as B first sent it.
    fn invite_answered(branch: &str) -> (SipLink, SipLink, Instant, Request, Transmit) {
        let (mut a, mut b, ra, rb) = pair(Transport::Udp);
        let t0 = Instant::now();
        let inv = request(Method::Invite, branch);
        a.send(t0, rb, &inv.to_bytes()).unwrap();
        pipe(&mut a, &mut b, t0);
        let req = req_of(&deliveries(&mut b)[0]);
        let mut ok = Response::for_request(&req, StatusCode::OK, Some("bobtag")).unwrap();
        ok.headers_mut()
            .push("Contact", &format!("<{BOB}>"))
            .unwrap();
        b.send(t0, ra, &ok.to_bytes()).unwrap();
        let first = b.poll_transmit().unwrap();
        (a, b, t0, inv, first)
    }

    /// An ACK the role encoded itself ([`Dialog::ack_encoded`], as an MC
    /// server's fan-out writes it) is kept under its Call-ID and CSeq and
    /// sent again, octet for octet, for a late copy of the 2xx.
    #[test]
    fn an_encoded_ack_is_sent_again_for_a_late_2xx() {
        let (mut a, mut b, t0, inv, first) = invite_answered("z9hG4bKok2");
        let rb = b.local();
        a.receive(t0, b.local(), &first.bytes);
        let got = deliveries(&mut a);
        let dialog = Dialog::uac(&inv, &resp_of(&got[0])).unwrap();
        let ack = dialog.ack_encoded(("UDP", "mcx.test"), [7; 8]).unwrap();
        a.send_encoded(t0, rb, ack).unwrap();
        let ack_sent = pipe(&mut a, &mut b, t0);
        assert_eq!(a.stats().reacked, 0);
        a.receive(t0, b.local(), &first.bytes);
        assert!(deliveries(&mut a).is_empty());
        assert_eq!(a.stats().reacked, 1);
        assert_eq!(pipe(&mut a, &mut b, t0), ack_sent, "the same ACK again");
    }

    #[test]
    fn two_xx_is_retransmitted_until_the_ack_and_re_acked_by_the_caller() {
        let (mut a, mut b, t0, inv, first) = invite_answered("z9hG4bKok1");
        let rb = b.local();
        // T1 and 3·T1 later the 2xx goes again (the first copies are lost).
        for ms in [500, 1500] {
            let at = t0 + Duration::from_millis(ms);
            assert_eq!(b.poll_timeout(), Some(at));
            b.handle_timeout(at);
            assert_eq!(b.poll_transmit().unwrap().bytes, first.bytes);
        }
        assert_eq!(b.stats().retransmitted_2xx, 2);
        // The caller gets it (twice): the role sees it once.
        let t1 = t0 + Duration::from_millis(1600);
        a.receive(t1, b.local(), &first.bytes);
        a.receive(t1, b.local(), &first.bytes);
        let got = deliveries(&mut a);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].from, BOB, "the Contact of the 2xx");
        // The role ACKs; the ACK stops the retransmissions.
        let dialog = Dialog::uac(&inv, &resp_of(&got[0])).unwrap();
        let ack = dialog.ack(("UDP", "mcx.test"), [7; 8]).unwrap();
        a.send(t1, rb, &ack.to_bytes()).unwrap();
        let ack_sent = pipe(&mut a, &mut b, t1);
        let got = deliveries(&mut b);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].from, ALICE, "the dialog peer");
        let end = t0 + Timers::RFC3261.t1 * 64 + Duration::from_secs(1);
        while let Some(at) = b.poll_timeout().filter(|at| *at <= end) {
            b.handle_timeout(at);
        }
        assert!(b.poll_transmit().is_none(), "no 2xx after the ACK");
        assert_eq!(b.stats().retransmitted_2xx, 2);
        assert_eq!(b.stats().ack_timeouts, 0);
        assert!(b.poll_timeout().is_none());
        // A late copy of the 2xx is ACKed again without the role; the
        // second ACK does not reach B's role either.
        a.receive(t1, b.local(), &first.bytes);
        assert!(deliveries(&mut a).is_empty());
        assert_eq!(a.stats().reacked, 1);
        let t2 = t1 + Duration::from_millis(10);
        assert_eq!(pipe(&mut a, &mut b, t2), ack_sent, "the same ACK again");
        assert!(deliveries(&mut b).is_empty());
    }

    #[test]
    fn in_dialog_bye_names_the_dialog_peer() {
        let (mut a, mut b, ra, rb) = pair(Transport::Udp);
        let t0 = Instant::now();
        let inv = request(Method::Invite, "z9hG4bKdlg");
        a.send(t0, rb, &inv.to_bytes()).unwrap();
        pipe(&mut a, &mut b, t0);
        let req = req_of(&deliveries(&mut b)[0]);
        let mut ok = Response::for_request(&req, StatusCode::OK, Some("bobtag")).unwrap();
        ok.headers_mut()
            .push("Contact", &format!("<{BOB}>"))
            .unwrap();
        let mut uas = Dialog::uas(&req, &ok).unwrap();
        b.send(t0, ra, &ok.to_bytes()).unwrap();
        pipe(&mut b, &mut a, t0);
        let resp = resp_of(&deliveries(&mut a)[0]);
        let mut uac = Dialog::uac(&inv, &resp).unwrap();
        a.send(t0, rb, &uac.ack(("UDP", "x"), [1; 8]).unwrap().to_bytes())
            .unwrap();
        pipe(&mut a, &mut b, t0);
        deliveries(&mut b);
        // BYE without Contact, both ways.
        let bye = uas
            .request_in_dialog(Method::Bye, ("UDP", "x"), [2; 8])
            .unwrap();
        b.send(t0, ra, &bye.to_bytes()).unwrap();
        pipe(&mut b, &mut a, t0);
        let got = deliveries(&mut a);
        assert_eq!(got[0].from, BOB);
        let bye2 = uac
            .request_in_dialog(Method::Bye, ("UDP", "x"), [3; 8])
            .unwrap();
        a.send(t0, rb, &bye2.to_bytes()).unwrap();
        pipe(&mut a, &mut b, t0);
        let got = deliveries(&mut b);
        assert_eq!(got[0].from, ALICE);
    }

    #[test]
    fn timer_b_gives_the_role_a_408() {
        let (mut a, _, _, rb) = pair(Transport::Udp);
        let t0 = Instant::now();
        let inv = request(Method::Invite, "z9hG4bKlost");
        a.send(t0, rb, &inv.to_bytes()).unwrap();
        let mut sent = 0;
        while let Some(at) = a.poll_timeout() {
            while a.poll_transmit().is_some() {
                sent += 1;
            }
            a.handle_timeout(at);
        }
        assert_eq!(sent, 1 + 6, "Timer A at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s");
        let got = deliveries(&mut a);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].from, GROUP, "the Request-URI");
        let r = resp_of(&got[0]);
        assert_eq!(r.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(r.call_id().unwrap(), "cid1@mcx.test");
        assert_eq!(a.stats().timeouts, 1);
    }

    /// A request that cannot reach its peer (RFC 3261 8.1.3.1) gets the
    /// role a 503 with the request's Via (as the link rewrote it), From,
    /// To, Call-ID and CSeq, as a 408 does; nothing else of the request.
    #[test]
    fn transport_error_gives_the_role_a_503_with_the_requests_headers() {
        let (mut a, _, _, rb) = pair(Transport::Tcp);
        let t0 = Instant::now();
        let inv = request(Method::Invite, "z9hG4bKgone");
        a.send(t0, rb, &inv.to_bytes()).unwrap();
        let sent = match Message::parse(&a.poll_transmit().unwrap().bytes).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!("not a request"),
        };
        a.handle_transport_error(t0, rb);
        let got = deliveries(&mut a);
        assert_eq!(got.len(), 1);
        let r = resp_of(&got[0]);
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            assert_eq!(r.header(name), sent.header(name), "{name}");
        }
        assert!(
            r.header("Via")
                .unwrap()
                .contains("SIP/2.0/TCP 127.0.0.1:5060")
        );
        assert_eq!(r.headers().len(), 5);
        assert_eq!(a.stats().timeouts, 0);
    }

    /// Once the role has a request's final response, a transport error
    /// toward that peer adds nothing: no 503 after a 200.
    #[test]
    fn transport_error_after_a_final_response_gives_the_role_nothing() {
        let (mut a, mut b, ra, rb) = pair(Transport::Tcp);
        let t0 = Instant::now();
        let inv = request(Method::Invite, "z9hG4bKdone");
        a.send(t0, rb, &inv.to_bytes()).unwrap();
        pipe(&mut a, &mut b, t0);
        let got = deliveries(&mut b);
        let Message::Request(r) = &got[0].message else {
            panic!("not a request")
        };
        let ok = Response::for_request(r, StatusCode::OK, Some("tt")).unwrap();
        b.send(t0, ra, &ok.to_bytes()).unwrap();
        pipe(&mut b, &mut a, t0);
        assert_eq!(resp_of(&deliveries(&mut a)[0]).status(), StatusCode::OK);
        a.handle_transport_error(t0, rb);
        assert!(deliveries(&mut a).is_empty(), "no 503 after the 200");
    }

    #[test]
    fn unanswered_request_is_answered_500_by_the_link() {
        let (mut a, mut b, _, rb) = pair(Transport::Udp);
        let t0 = Instant::now();
        let mut opt = request(Method::Options, "z9hG4bKopt");
        opt.headers_mut().set("CSeq", "1 OPTIONS").unwrap();
        a.send(t0, rb, &opt.to_bytes()).unwrap();
        pipe(&mut a, &mut b, t0);
        assert_eq!(deliveries(&mut b).len(), 1);
        let at = t0 + Timers::RFC3261.t1 * 64;
        assert_eq!(b.poll_timeout(), Some(at));
        b.handle_timeout(at);
        let t = b.poll_transmit().unwrap();
        assert_eq!(
            parse_resp(&t.bytes).status(),
            StatusCode::SERVER_INTERNAL_ERROR
        );
        assert_eq!(b.stats().unanswered, 1);
    }

    /// Thousands of overlapping exchanges through one pair of links:
    /// every 2xx retransmission, ACK time-out and link-made 500 happens at
    /// exactly its own time, `poll_timeout` never lags behind (nothing is
    /// due after `handle_timeout`), and both links end up holding nothing.
    #[test]
    fn thousands_of_lingering_exchanges_keep_their_times_and_then_all_go() {
        const N: u64 = 2000;
        let (mut a, mut b, ra, rb) = pair(Transport::Udp);
        let t = Timers::RFC3261;
        let t0 = Instant::now();
        let start = |i: u64| t0 + Duration::from_millis(7 * i);
        let call_id = |i: u64| format!("call{i}@mcx.test");
        let build = |method: Method, i: u64| {
            let branch = format!("z9hG4bK{method}{i}");
            Request::builder(method, GROUP)
                .via("UDP", "mcx.test", &branch)
                .max_forwards(70)
                .from(None, ALICE, &format!("a{i}"))
                .to(None, GROUP, None)
                .call_id(&call_id(i))
                .cseq(1)
                .contact(&format!("<{ALICE}>"))
                .build()
                .unwrap()
        };
        // What B sends on its own: (Call-ID, status) → times after the start.
        let mut by_timer: BTreeMap<(String, u16), Vec<Duration>> = BTreeMap::new();
        let (mut i, mut now) = (0, t0);
        let (mut peak, mut fired) = (0, 0u64);
        loop {
            let timer = [a.poll_timeout(), b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            if let Some(at) = timer {
                assert!(at > now || i == 0, "nothing stays due after handle_timeout");
            }
            if i < N && timer.is_none_or(|at| start(i) < at) {
                // Exchange i: INVITE, 200, and an ACK for even i; for
                // i mod 10 = 3 also an OPTIONS B's role never answers.
                now = start(i);
                let inv = build(Method::Invite, i);
                a.send(now, rb, &inv.to_bytes()).unwrap();
                pipe(&mut a, &mut b, now);
                let req = req_of(&deliveries(&mut b)[0]);
                let mut ok = Response::for_request(&req, StatusCode::OK, Some("b")).unwrap();
                ok.headers_mut()
                    .push("Contact", &format!("<{BOB}>"))
                    .unwrap();
                b.send(now, ra, &ok.to_bytes()).unwrap();
                pipe(&mut b, &mut a, now);
                let got = resp_of(&deliveries(&mut a)[0]);
                if i % 2 == 0 {
                    let ack = Dialog::uac(&inv, &got)
                        .unwrap()
                        .ack(("UDP", "x"), [1; 8])
                        .unwrap();
                    a.send(now, rb, &ack.to_bytes()).unwrap();
                    pipe(&mut a, &mut b, now);
                    assert_eq!(deliveries(&mut b).len(), 1, "the ACK");
                }
                if i % 10 == 3 {
                    let opt = build(Method::Options, i);
                    a.send(now, rb, &opt.to_bytes()).unwrap();
                    pipe(&mut a, &mut b, now);
                    assert_eq!(deliveries(&mut b).len(), 1, "the OPTIONS");
                }
                i += 1;
                peak = peak.max(b.pending());
                if i % 50 == 0 {
                    a.assert_indexed();
                    b.assert_indexed();
                }
                continue;
            }
            let Some(at) = timer else { break };
            now = at;
            for l in [&mut a, &mut b] {
                if l.poll_timeout() == Some(at) {
                    l.handle_timeout(at);
                }
            }
            while a.poll_transmit().is_some() {} // INVITE, OPTIONS retransmissions
            while let Some(tr) = b.poll_transmit() {
                let r = parse_resp(&tr.bytes);
                let cid = r.call_id().unwrap().to_owned();
                let n: u64 = cid[4..cid.find('@').unwrap()].parse().unwrap();
                by_timer
                    .entry((cid, r.status().0))
                    .or_default()
                    .push(at - start(n));
            }
            let _ = deliveries(&mut a); // the 408s for the OPTIONS
            fired += 1;
            if fired % 200 == 0 {
                a.assert_indexed();
                b.assert_indexed();
            }
        }
        // 13.3.1.4: T1, doubling to T2, for 64·T1; then the record goes.
        let ms = Duration::from_millis;
        let schedule: Vec<Duration> = [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500]
            .into_iter()
            .chain([27500, 31500])
            .map(ms)
            .collect();
        for i in 0..N {
            let retransmitted = by_timer.remove(&(call_id(i), 200));
            if i % 2 == 0 {
                assert_eq!(retransmitted, None, "ACKed: {i}");
            } else {
                assert_eq!(retransmitted.as_ref(), Some(&schedule), "2xx of {i}");
            }
            let five_hundred = by_timer.remove(&(call_id(i), 500));
            if i % 10 == 3 {
                assert_eq!(five_hundred, Some(vec![t.t1 * NON_INVITE_TU_DEADLINE_T1]));
            } else {
                assert_eq!(five_hundred, None);
            }
        }
        assert!(by_timer.is_empty(), "B sent nothing else: {by_timer:?}");
        assert_eq!(b.stats().retransmitted_2xx, N / 2 * 10);
        assert_eq!(b.stats().ack_timeouts, N / 2);
        assert_eq!(b.stats().unanswered, N / 10);
        assert_eq!(a.stats().timeouts, N / 10, "Timer F for the OPTIONS");
        assert!(peak > 1000, "many lingered at once ({peak})");
        for l in [&a, &b] {
            assert_eq!(l.pending(), 0, "{l:?}");
            assert_eq!(l.poll_timeout(), None);
        }
    }

    #[test]
    fn malformed_input_is_counted_never_delivered() {
        let (mut a, mut b, _, rb) = pair(Transport::Udp);
        let now = Instant::now();
        a.send(now, rb, &request(Method::Invite, "z9hG4bKm").to_bytes())
            .unwrap();
        let good = a.poll_transmit().unwrap().bytes;
        let mut bad = 0u64;
        for cut in [0, 1, 10, good.len() / 2] {
            b.receive(now, a.local(), &good[..cut]);
            bad += 1u64;
        }
        for i in (0..good.len()).step_by(7) {
            let mut m = good.to_vec();
            m[i] ^= 0x80;
            b.receive(now, a.local(), &m);
        }
        assert!(b.stats().malformed >= bad);
        assert!(deliveries(&mut b).len() <= 1, "at most the one INVITE");
        // A response nobody asked for is dropped.
        let r = Response::for_request(
            &request(Method::Invite, "z9hG4bKx"),
            StatusCode::OK,
            Some("t"),
        )
        .unwrap();
        a.receive(now, b.local(), &r.to_bytes());
        assert!(deliveries(&mut a).is_empty());
    }
}
