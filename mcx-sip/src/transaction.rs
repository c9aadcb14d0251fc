//! Sans-IO transactions (RFC 3261 17, with the RFC 6026 Accepted states), in the quinn-proto
//! style of STYLE.md section 5: the caller feeds messages and time in and drains transmits,
//! timeouts and events out.
//!
//! Method taxonomy: (A) getters [`TransactionLayer::state`], [`TransactionLayer::len`];
//! (B) input [`TransactionLayer::handle_incoming`], [`TransactionLayer::handle_timeout`],
//! [`TransactionLayer::handle_transport_error`]; (C) TU commands
//! [`TransactionLayer::send_request`], [`TransactionLayer::send_response`],
//! [`TransactionLayer::send_stateless`]; (D) outputs, drained in this order:
//! [`TransactionLayer::poll_transmit`] → [`TransactionLayer::poll_timeout`] →
//! [`TransactionLayer::poll_event`].
//!
//! Cost: every input, command and output touches only the transactions it concerns (O(1) for
//! the usual timers, O(log n) at worst in the number of live transactions): the timers are kept
//! in deadline order ([`Timeline`]), and a
//! transaction that ends without a response or timeout to report says so with
//! [`Event::Terminated`], so the TU never has to scan for ended transactions.
//!
//! A TU that keeps state per transaction keeps it in the layer's own record (the `U` of
//! [`TransactionLayer<U>`], [`TransactionLayer::with_user_data`]) and reaches it through the
//! [`TxHandle`] of each event: a message then costs one lookup of its key, the layer's, not a
//! second one in a table of the TU's beside it. The data comes back to the TU with the event
//! that ends the transaction.

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::error::{ParseError, TxError};
use crate::message::{MAGIC_COOKIE, Message, Method, Request, Response, StatusCode};
use crate::position_index::PositionIndex;
use crate::slots::Slots;

/// The transport a message travels on. Only unreliable transports retransmit (RFC 3261 17.1.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// UDP: unreliable; timers A, E and G retransmit.
    Udp,
    /// TCP: reliable; no retransmission, timers D, I, J and K are zero.
    Tcp,
    /// TLS over TCP (RFC 3261 26.2, `sips:`/`transport=tls`): reliable like TCP.
    Tls,
}

impl Transport {
    /// True for TCP and TLS.
    pub fn is_reliable(self) -> bool {
        matches!(self, Self::Tcp | Self::Tls)
    }
    /// The Via transport token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
        }
    }
}

/// A peer: address and transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Remote {
    /// The peer's address.
    pub addr: SocketAddr,
    /// The transport.
    pub transport: Transport,
}

/// Bytes to send: the only network output of the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send.
    pub destination: SocketAddr,
    /// Over which transport (for TCP, the connection to `destination`).
    pub transport: Transport,
    /// One whole encoded message, shared with the copy the transaction
    /// keeps for retransmission (no second copy of every message sent).
    pub bytes: Bytes,
}

/// Timer base values (RFC 3261 17.1.1.1, table 4) and the 100 Trying delay (17.2.1).
///
/// Defaults ([`Timers::RFC3261`]): T1 = 500 ms, T2 = 4 s, T4 = 5 s, 100 Trying after 200 ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses.
    pub t2: Duration,
    /// Maximum time a message stays in the network.
    pub t4: Duration,
    /// Delay before the INVITE server transaction sends 100 Trying itself.
    pub trying_delay: Duration,
}

impl Timers {
    /// RFC 3261 values.
    pub const RFC3261: Self = Self {
        t1: Duration::from_millis(500),
        t2: Duration::from_secs(4),
        t4: Duration::from_secs(5),
        trying_delay: Duration::from_millis(200),
    };
    /// TS 24.229 7.7 values towards a UE: T1 = 2 s, T2 = 16 s, T4 = 17 s.
    pub const TS24229: Self = Self {
        t1: Duration::from_secs(2),
        t2: Duration::from_secs(16),
        t4: Duration::from_secs(17),
        trying_delay: Duration::from_millis(200),
    };
    fn t64(&self) -> Duration {
        self.t1 * 64
    }
}

impl Default for Timers {
    fn default() -> Self {
        Self::RFC3261
    }
}

/// Client or server side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// We sent the request.
    Client,
    /// We received the request.
    Server,
}

/// Identifies a transaction (RFC 3261 17.1.3 for clients: branch + CSeq method; 17.2.3 for
/// servers: branch + sent-by + method, ACK counted as INVITE).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxKey {
    /// Client or server.
    pub role: Role,
    /// The top Via branch (for RFC 2543 peers without the magic cookie, a derived key).
    pub branch: String,
    /// The top Via sent-by (servers only; empty for clients).
    pub sent_by: String,
    /// The method (INVITE for an ACK to a non-2xx).
    pub method: Method,
}

/// A transaction found without its key: from the events about it, for
/// [`TransactionLayer::user_data_mut`] and the other handle-taking commands. It stays valid
/// until the event that ends the transaction ([`Event::Terminated`], [`Event::Timeout`],
/// [`Event::TransportError`]) has been polled; a later transaction never takes it over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TxHandle {
    /// The transaction's slot in [`TransactionLayer::slots`].
    slot: usize,
    /// [`Tx::id`]: tells this transaction from a later one in the same slot.
    id: u64,
}

/// Transaction states (RFC 3261 figures 5–8, RFC 6026 figures 3 and 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// INVITE client, request sent.
    Calling,
    /// Non-INVITE client or server, no provisional response yet.
    Trying,
    /// A provisional response was sent or received.
    Proceeding,
    /// A final response (non-2xx for INVITE) was sent or received.
    Completed,
    /// INVITE 2xx sent or received (RFC 6026).
    Accepted,
    /// INVITE server: ACK received for a non-2xx.
    Confirmed,
}

/// What the layer reports to the transaction user. `U` is the TU's data per transaction
/// ([`TransactionLayer::with_user_data`]), handed back with the event that ends one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<U = ()> {
    /// A new request created a server transaction; answer with [`TransactionLayer::send_response`].
    Request {
        /// The new server transaction.
        key: TxKey,
        /// The same transaction, to reach its data and answer it without a lookup of `key`.
        handle: TxHandle,
        /// Where it came from (responses go back there).
        remote: Remote,
        /// The request.
        request: Request,
    },
    /// An ACK that matched no transaction: the ACK for a 2xx, which belongs to the dialog.
    Ack {
        /// Where it came from.
        remote: Remote,
        /// The ACK.
        request: Request,
    },
    /// A response for a client transaction (every 2xx retransmission too, RFC 6026 7.2).
    Response {
        /// The client transaction.
        key: TxKey,
        /// The same transaction, to reach its data without a lookup of `key`. Valid even when
        /// this response ended it (a final response over a reliable transport): its
        /// [`Event::Terminated`] comes next.
        handle: TxHandle,
        /// The response.
        response: Response,
    },
    /// Timer B, F or H fired: no (final) response, or no ACK, in time.
    Timeout {
        /// The transaction that timed out (it is gone).
        key: TxKey,
        /// A client transaction's request as sent, for the TU's 408 (RFC 3261 8.1.3.1);
        /// `None` for a server transaction (Timer H).
        request: Option<Request>,
        /// The TU's data of the transaction.
        user: U,
    },
    /// The driver reported a send failure (RFC 3261 17.1.4, 17.2.4); the transaction is gone.
    TransportError {
        /// The transaction.
        key: TxKey,
        /// A client transaction's request as sent, for the TU's 503 (RFC 3261 8.1.3.1);
        /// `None` for a server transaction.
        request: Option<Request>,
        /// The TU's data of the transaction.
        user: U,
    },
    /// The transaction ended without an event of its own: Timer D, I, J, K, L or M fired, or it
    /// completed at once on a reliable transport. It comes after the transaction's last
    /// [`Event::Response`]; a TU keeping per-transaction state drops it here. (Transactions
    /// ending with [`Event::Timeout`] or [`Event::TransportError`] get no `Terminated`.)
    Terminated {
        /// The transaction that is gone.
        key: TxKey,
        /// The TU's data of the transaction.
        user: U,
    },
}

/// An event as queued. The event that ends a transaction is made when it is polled, from the
/// transaction's record: the record (and so its handle) stays until then, so that a TU
/// handling an earlier event of the same transaction (the [`Event::Response`] that ended it)
/// still reaches its data.
enum Queued<U> {
    Event(Event<U>),
    Ended {
        slot: usize,
        how: End,
        /// A client transaction's request as sent, for [`End::Timeout`] and
        /// [`End::TransportError`] (see [`Event::Timeout`]).
        request: Option<Request>,
    },
}

/// Which event reports a transaction's end ([`Queued::Ended`]).
#[derive(Clone, Copy)]
enum End {
    Terminated,
    Timeout,
    TransportError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // the four machines of RFC 3261 17 by their names
enum Kind {
    ClientInvite,
    ClientNonInvite,
    ServerInvite,
    ServerNonInvite,
}

/// Timer names of RFC 3261 table 4 and RFC 6026, plus the 100 Trying delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimerKind {
    A,
    B,
    D,
    E,
    F,
    G,
    H,
    I,
    J,
    K,
    L,
    M,
    Trying,
}
const NTIMERS: usize = 13;
const ALL_TIMERS: [TimerKind; NTIMERS] = [
    TimerKind::A,
    TimerKind::B,
    TimerKind::D,
    TimerKind::E,
    TimerKind::F,
    TimerKind::G,
    TimerKind::H,
    TimerKind::I,
    TimerKind::J,
    TimerKind::K,
    TimerKind::L,
    TimerKind::M,
    TimerKind::Trying,
];

struct Tx<U> {
    kind: Kind,
    state: State,
    remote: Remote,
    /// The request while the transaction may still need it: a client's until its final
    /// response (the TU's 408 or 503, the ACK for a non-2xx are built from it), a server's
    /// until its final response (100 Trying). It is dropped then: an INVITE client
    /// transaction lives 64·T1 after its 2xx (RFC 6026), and a fan-out keeps thousands.
    request: Option<Request>,
    /// Client: the request bytes while they may be retransmitted. Server: the last response
    /// sent.
    last: Option<Bytes>,
    /// INVITE client: the ACK sent for a non-2xx.
    ack: Option<Bytes>,
    timers: [Option<Instant>; NTIMERS],
    /// Bit `k` set when `timers[k]` is armed: finding the next deadline
    /// looks at the one to three armed timers, not all thirteen (every
    /// re-arm asks; profiled at ~2 % of an MC server).
    armed: u16,
    interval: Duration,
    /// Unique per layer: tells this transaction's timer entries (and handles) from those of
    /// an earlier one in its slot, and orders equal deadlines.
    id: u64,
    /// Its key (to remove it from [`TransactionLayer::slot_of`] when a timer ends it).
    key: TxKey,
    /// The hash `key` is filed under in [`TransactionLayer::slot_of`].
    hash: u64,
    /// Bit `k` set when `timers[k]` changed since [`TransactionLayer::reindex`] last filed
    /// them in the [`Timeline`].
    touched: u16,
    /// The TU's data ([`TransactionLayer::user_data_mut`]).
    user: U,
    /// Ended: no longer filed or timed, its record kept only until its ending event is polled.
    ended: bool,
}

impl<U> Tx<U> {
    /// Takes a client transaction's request: the value kept, or parsed from
    /// the octets sent ([`TransactionLayer::send_encoded`] keeps no value;
    /// only rare paths get here). `None` for a server transaction.
    fn take_client_request(&mut self) -> Option<Request> {
        if self.key.role != Role::Client {
            return None;
        }
        self.request.take().or_else(|| {
            let b = self.last.clone()?;
            match crate::framing::parse_datagram_bytes(b, &crate::framing::Limits::TCP) {
                Ok(Message::Request(r)) => Some(r),
                _ => None,
            }
        })
    }

    fn set(&mut self, t: TimerKind, at: Instant) {
        self.timers[t as usize] = Some(at);
        self.armed |= 1 << t as usize;
        self.touched |= 1 << t as usize;
    }
    fn clear(&mut self, t: TimerKind) {
        self.timers[t as usize] = None;
        self.armed &= !(1 << t as usize);
        self.touched |= 1 << t as usize;
    }
    fn clear_all(&mut self) {
        self.timers = [None; NTIMERS];
        self.touched |= self.armed;
        self.armed = 0;
    }
    /// True if `due` is one of this transaction's armed timers (not an entry it left behind
    /// when the timer was cleared or re-armed, or when it ended).
    fn has(&self, due: &Due) -> bool {
        self.id == due.id
            && !self.ended
            && self.timers.get(usize::from(due.kind)) == Some(&Some(due.at))
    }
    /// The earliest armed timer; of equal deadlines, the first in [`ALL_TIMERS`].
    fn next(&self) -> Option<(Instant, TimerKind)> {
        let mut best: Option<(Instant, TimerKind)> = None;
        let mut bits = self.armed;
        while bits != 0 {
            let k = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if let (Some(at), Some(&kind)) = (self.timers[k], ALL_TIMERS.get(k))
                && best.is_none_or(|(b, _)| at < b)
            {
                best = Some((at, kind));
            }
        }
        best
    }
    fn reliable(&self) -> bool {
        self.remote.transport.is_reliable()
    }
}

/// One armed timer in the [`Timeline`]. Ordered as timers fire: by deadline, then by
/// transaction (`Tx::id`, oldest first), then by kind ([`ALL_TIMERS`] order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    at: Instant,
    id: u64,
    /// The [`TimerKind`] as its index in [`ALL_TIMERS`].
    kind: u8,
    slot: usize,
}

/// The armed timers in deadline order, one queue per timer kind. A timer is armed at `now` plus
/// a delay fixed for its kind (T1 for A and E at first, 64·T1 for B, F, H, J, L and M, T4 for
/// I and K, …), so each kind's deadlines come in order: filing one is a push at the back of its
/// kind's queue and firing one a pop at the front, O(1), where an ordered map paid O(log n) for
/// every arm and disarm. An entry that would break its queue's order (a retransmission timer
/// re-armed from its fired deadline with a doubled interval, a clock that stepped back) goes
/// to `others`, ordered.
///
/// Disarming leaves the entry in place, found stale (`Tx::has`) and dropped once it comes
/// first; entries that come first are always live (every change prunes the fronts it made
/// stale), so the first entry of all is the earliest armed timer, never early. Stale entries
/// last at most until their deadline.
#[derive(Default)]
struct Timeline {
    queues: [VecDeque<Due>; NTIMERS],
    others: BTreeSet<Due>,
}

impl Timeline {
    /// Files an armed timer.
    fn file(&mut self, due: Due) {
        match self.queues.get_mut(usize::from(due.kind)) {
            Some(q) if q.back().is_none_or(|last| *last < due) => q.push_back(due),
            _ => {
                self.others.insert(due);
            }
        }
    }

    /// The earliest entry (live: see the type's docs).
    fn first(&self) -> Option<Due> {
        let queued = self.queues.iter().filter_map(VecDeque::front).min();
        match (queued, self.others.first()) {
            (Some(q), Some(o)) => Some(*q.min(o)),
            (q, o) => q.or(o).copied(),
        }
    }

    /// Removes `due`, the earliest entry ([`Timeline::first`]), and drops the stale entries
    /// that then come first in its place.
    fn pop_first(&mut self, due: &Due, live: impl Fn(&Due) -> bool) {
        if let Some(q) = self.queues.get_mut(usize::from(due.kind))
            && q.front() == Some(due)
        {
            q.pop_front();
            Self::prune(q, &live);
        } else {
            self.others.remove(due);
            Self::prune_others(&mut self.others, &live);
        }
    }

    /// After a change to the timers of the transaction `id` in `slot`: drops the stale entries
    /// that come first in a queue whose first entry is that transaction's (no other first
    /// entry went stale).
    fn prune_after(&mut self, slot: usize, id: u64, live: impl Fn(&Due) -> bool) {
        let mine = |d: Option<&Due>| d.is_some_and(|d| d.slot == slot && d.id == id);
        for q in &mut self.queues {
            if mine(q.front()) {
                Self::prune(q, &live);
            }
        }
        if mine(self.others.first()) {
            Self::prune_others(&mut self.others, &live);
        }
    }

    fn prune(q: &mut VecDeque<Due>, live: &impl Fn(&Due) -> bool) {
        while q.front().is_some_and(|d| !live(d)) {
            q.pop_front();
        }
    }

    fn prune_others(others: &mut BTreeSet<Due>, live: &impl Fn(&Due) -> bool) {
        while others.first().is_some_and(|d| !live(d)) {
            others.pop_first();
        }
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.others.is_empty() && self.queues.iter().all(VecDeque::is_empty)
    }
}

/// All client and server transactions of one SIP endpoint, each with the TU's data `U`
/// ([`TransactionLayer::with_user_data`]; none for [`TransactionLayer::new`]).
pub struct TransactionLayer<U = ()> {
    timers: Timers,
    /// The slot in `slots` of each live transaction. Hashed, not ordered: every lookup is by
    /// whole key, and ordering keys compared branches (long common prefixes) at every tree
    /// level.
    slot_of: PositionIndex,
    /// The transactions, by slot. Kept apart from the hashed keys: growing the table then moves
    /// keys and slot numbers, not whole records (at a 10,000-member fan-out that rehash, and the
    /// fresh pages it touched, were a quarter of an MC server's time), and freed slots are
    /// reused, so a steady load stops allocating records. An ended transaction keeps its slot
    /// until the event that reports its end is polled ([`Queued::Ended`]).
    slots: Slots<Tx<U>>,
    /// The armed timers in deadline order: every change to a transaction's timers is filed by
    /// [`TransactionLayer::reindex`] (or [`TransactionLayer::end`]).
    index: Timeline,
    next_id: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Queued<U>>,
}

impl<U> std::fmt::Debug for TransactionLayer<U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionLayer")
            .field("transactions", &{
                let mut keys = (self.slot_of.positions())
                    .filter_map(|slot| self.slots.get(slot).map(|t| &t.key))
                    .collect::<Vec<_>>();
                keys.sort();
                keys
            })
            .finish()
    }
}

/// The server transaction key of a request (RFC 3261 17.2.3).
pub fn server_key(req: &Request) -> Result<TxKey, ParseError> {
    let via = req.headers().via().as_ref().map_err(Clone::clone)?;
    let method = if *req.method() == Method::Ack {
        Method::Invite
    } else {
        req.method().clone()
    };
    let branch = match &via.branch {
        Some(b) if b.starts_with(MAGIC_COOKIE) => b.clone(),
        // RFC 2543 peer (17.2.3, second half): Request-URI, From tag, Call-ID, CSeq number, top Via.
        _ => {
            let (n, _) = req.cseq()?;
            let from_tag = req.from()?.tag.unwrap_or_default();
            let uri = if *req.method() == Method::Ack {
                ""
            } else {
                req.uri()
            };
            format!(
                "rfc2543 {uri} {from_tag} {} {n} {}",
                req.call_id()?,
                req.header("Via").unwrap_or_default()
            )
        }
    };
    Ok(TxKey {
        role: Role::Server,
        branch,
        sent_by: via.sent_by.to_ascii_lowercase(),
        method,
    })
}

fn client_key_of(msg_branch: Option<String>, method: Method) -> Option<TxKey> {
    Some(TxKey {
        role: Role::Client,
        branch: msg_branch?,
        sent_by: String::new(),
        method,
    })
}

/// The ACK for a non-2xx final response (RFC 3261 17.1.1.3).
pub fn ack_for_non2xx(
    invite: &Request,
    resp: &Response,
) -> Result<Request, crate::error::BuildError> {
    let mut ack = Request::new(Method::Ack, invite.uri())?;
    let h = ack.headers_mut();
    if let Some(v) = invite.header("Via") {
        // only the top Via value
        let top = v.split(',').next().unwrap_or(v);
        h.push("Via", top)?;
    }
    for r in invite.headers().get_all("Route") {
        h.push("Route", r)?;
    }
    h.push("Max-Forwards", "70")?;
    h.push("From", invite.header("From").unwrap_or_default())?;
    h.push("To", resp.header("To").unwrap_or_default())?;
    h.push("Call-ID", invite.header("Call-ID").unwrap_or_default())?;
    let n = invite.cseq().map(|(n, _)| n).unwrap_or(0);
    h.push("CSeq", &format!("{n} ACK"))?;
    Ok(ack)
}

impl TransactionLayer {
    /// An empty layer that keeps no data of the TU's.
    pub fn new(timers: Timers) -> Self {
        Self::with_user_data(timers)
    }
}

impl<U: Default> TransactionLayer<U> {
    /// An empty layer that keeps a `U` with each transaction for the TU: set when a client
    /// transaction starts ([`TransactionLayer::send_request_with`]), `U::default()` for a server
    /// transaction until the TU sets it ([`TransactionLayer::user_data_mut`]), and handed back
    /// with the event that ends the transaction.
    pub fn with_user_data(timers: Timers) -> Self {
        Self {
            timers,
            slot_of: PositionIndex::default(),
            slots: Slots::default(),
            index: Timeline::default(),
            next_id: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    // (A) getters

    /// The state of a live transaction.
    pub fn state(&self, key: &TxKey) -> Option<State> {
        self.get(key).map(|t| t.state)
    }
    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.slot_of.len()
    }
    /// True if no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.slot_of.is_empty()
    }

    fn get(&self, key: &TxKey) -> Option<&Tx<U>> {
        self.slots
            .get(self.slot_hashed(self.slot_of.hash(key), key)?)
    }

    /// The live transaction of `key`.
    pub fn find(&self, key: &TxKey) -> Option<TxHandle> {
        let slot = self.slot_hashed(self.slot_of.hash(key), key)?;
        let id = self.slots.get(slot)?.id;
        Some(TxHandle { slot, id })
    }

    /// The transaction of `handle`, while its handle is valid (see [`TxHandle`]).
    fn at(&self, handle: TxHandle) -> Option<&Tx<U>> {
        self.slots.get(handle.slot).filter(|t| t.id == handle.id)
    }

    fn at_mut(&mut self, handle: TxHandle) -> Option<&mut Tx<U>> {
        self.slots
            .get_mut(handle.slot)
            .filter(|t| t.id == handle.id)
    }

    /// The key of the transaction of `handle`.
    pub fn key(&self, handle: TxHandle) -> Option<&TxKey> {
        self.at(handle).map(|t| &t.key)
    }

    /// The TU's data of the transaction of `handle`.
    pub fn user_data_mut(&mut self, handle: TxHandle) -> Option<&mut U> {
        self.at_mut(handle).map(|t| &mut t.user)
    }

    /// The live transactions, in no order: handle, key and the TU's data (for the TU's rare
    /// searches by something other than the key).
    pub fn transactions(&self) -> impl Iterator<Item = (TxHandle, &TxKey, &U)> {
        self.slot_of.positions().filter_map(|slot| {
            let t = self.slots.get(slot)?;
            Some((TxHandle { slot, id: t.id }, &t.key, &t.user))
        })
    }

    /// The slot of the live transaction of `key`, hashed to `hash`.
    fn slot_hashed(&self, hash: u64, key: &TxKey) -> Option<usize> {
        let slots = &self.slots;
        self.slot_of
            .get(hash, key, |slot| slots.get(slot).map(|t| &t.key))
    }

    /// The live transaction of `key` and its slot: one lookup, then the slot
    /// serves every later step of the same input ([`TransactionLayer::reindex`]).
    fn find_mut(&mut self, key: &TxKey) -> Option<(usize, &mut Tx<U>)> {
        self.find_hashed_mut(self.slot_of.hash(key), key)
    }

    /// [`TransactionLayer::find_mut`] for a key already hashed.
    fn find_hashed_mut(&mut self, hash: u64, key: &TxKey) -> Option<(usize, &mut Tx<U>)> {
        let slot = self.slot_hashed(hash, key)?;
        Some((slot, self.slots.get_mut(slot)?))
    }

    /// Stores a new transaction (its key, hashed to `tx.hash`, not live) in a
    /// free slot or a new one: its handle.
    fn insert(&mut self, tx: Tx<U>) -> TxHandle {
        let (hash, id) = (tx.hash, tx.id);
        let slot = self.slots.insert(tx);
        self.slot_of.insert(hash, slot);
        self.reindex(slot);
        TxHandle { slot, id }
    }

    // (C) TU commands

    /// Starts a client transaction and sends `req` (RFC 3261 17.1.1.2 / 17.1.2.2). The request
    /// needs a top Via whose branch has the magic cookie, and a CSeq.
    pub fn send_request(
        &mut self,
        now: Instant,
        to: Remote,
        req: Request,
    ) -> Result<TxKey, TxError> {
        let handle = self.send_request_with(now, to, req, U::default())?;
        self.key(handle).cloned().ok_or(TxError::NoTransaction)
    }

    /// [`TransactionLayer::send_request`] of a transaction that keeps `user` for the TU: its
    /// handle.
    ///
    /// # Errors
    /// As [`TransactionLayer::send_request`].
    pub fn send_request_with(
        &mut self,
        now: Instant,
        to: Remote,
        req: Request,
        user: U,
    ) -> Result<TxHandle, TxError> {
        if *req.method() == Method::Ack {
            return Err(TxError::AckTransaction);
        }
        let via = req
            .headers()
            .via()
            .as_ref()
            .map_err(|e| TxError::BadRequest(e.clone()))?;
        let (_, method) = req.cseq().map_err(TxError::BadRequest)?;
        let branch = via.branch.clone().filter(|b| b.starts_with(MAGIC_COOKIE));
        let key = client_key_of(branch, method)
            .ok_or(TxError::BadRequest(ParseError::BadHeader("Via")))?;
        let hash = self.slot_of.hash(&key);
        if self.slot_hashed(hash, &key).is_some() {
            return Err(TxError::InvalidState);
        }
        let bytes = Bytes::from(req.to_bytes());
        let invite = *req.method() == Method::Invite;
        Ok(self.start_client(now, to, (key, hash), invite, (Some(req), bytes), user))
    }

    fn start_client(
        &mut self,
        now: Instant,
        to: Remote,
        (key, hash): (TxKey, u64),
        invite: bool,
        (request, bytes): (Option<Request>, Bytes),
        user: U,
    ) -> TxHandle {
        let mut tx = Tx {
            kind: if invite {
                Kind::ClientInvite
            } else {
                Kind::ClientNonInvite
            },
            state: if invite {
                State::Calling
            } else {
                State::Trying
            },
            remote: to,
            request,
            last: Some(bytes.clone()),
            ack: None,
            timers: [None; NTIMERS],
            armed: 0,
            interval: self.timers.t1,
            id: self.next_id,
            touched: 0,
            key,
            hash,
            user,
            ended: false,
        };
        self.next_id += 1;
        if !to.transport.is_reliable() {
            tx.set(
                if invite { TimerKind::A } else { TimerKind::E },
                now + self.timers.t1,
            );
        }
        tx.set(
            if invite { TimerKind::B } else { TimerKind::F },
            now + self.timers.t64(),
        );
        self.transmit(to, bytes);
        self.insert(tx)
    }

    /// Sends a response in a server transaction (RFC 3261 17.2.1, 17.2.2; RFC 6026 for 2xx).
    pub fn send_response(
        &mut self,
        now: Instant,
        key: &TxKey,
        resp: Response,
    ) -> Result<(), TxError> {
        let handle = self.find(key).ok_or(TxError::NoTransaction)?;
        self.respond(now, handle, resp).map(drop)
    }

    /// [`TransactionLayer::send_response`] in the transaction of `handle`: the octets sent
    /// (what [`TransactionLayer::last_sent`] gives then).
    ///
    /// # Errors
    /// As [`TransactionLayer::send_response`]; [`TxError::NoTransaction`] for a transaction
    /// that has ended.
    pub fn respond(
        &mut self,
        now: Instant,
        handle: TxHandle,
        resp: Response,
    ) -> Result<Bytes, TxError> {
        let t = self.timers;
        let slot = handle.slot;
        let tx = (self.at_mut(handle))
            .filter(|tx| !tx.ended)
            .ok_or(TxError::NoTransaction)?;
        let code = resp.status();
        if !(100..700).contains(&code.0) {
            return Err(TxError::BadStatus);
        }
        let reliable = tx.reliable();
        let mut terminate = false;
        match (tx.kind, tx.state) {
            (Kind::ServerInvite, State::Proceeding) => {
                tx.clear(TimerKind::Trying);
                if code.is_success() {
                    tx.state = State::Accepted;
                    tx.clear_all();
                    tx.set(TimerKind::L, now + t.t64());
                } else if code.is_final() {
                    tx.state = State::Completed;
                    tx.clear_all();
                    if !reliable {
                        tx.interval = t.t1;
                        tx.set(TimerKind::G, now + t.t1);
                    }
                    tx.set(TimerKind::H, now + t.t64());
                }
            }
            // RFC 6026 8.5: 2xx retransmissions from the TU pass through in Accepted.
            (Kind::ServerInvite, State::Accepted) if code.is_success() => {}
            (Kind::ServerNonInvite, State::Trying | State::Proceeding) => {
                if code.is_final() {
                    tx.state = State::Completed;
                    tx.clear_all();
                    if reliable {
                        terminate = true;
                    } else {
                        tx.set(TimerKind::J, now + t.t64());
                    }
                } else {
                    tx.state = State::Proceeding;
                }
            }
            _ => return Err(TxError::InvalidState),
        }
        if code.is_final() {
            tx.request = None;
        }
        let bytes = Bytes::from(resp.to_bytes());
        tx.last = Some(bytes.clone());
        let remote = tx.remote;
        self.transmit(remote, bytes.clone());
        if terminate {
            self.terminate(slot);
        } else {
            self.reindex(slot);
        }
        Ok(bytes)
    }

    /// The octets last sent in this transaction (its request, or its
    /// latest response), as they went out: what a 2xx retransmission
    /// above the layer repeats without encoding the response again.
    pub fn last_sent(&self, key: &TxKey) -> Option<&Bytes> {
        self.get(key)?.last.as_ref()
    }

    /// Starts a client transaction for a request its sender encoded
    /// ([`crate::RequestTemplate`]) and sends it as it is: nothing is
    /// parsed or encoded here. The request is parsed from its octets only
    /// if a rare path needs it (the ACK for a non-2xx, a [`Event::Timeout`]
    /// or [`Event::TransportError`] report).
    ///
    /// # Errors
    /// [`TxError::AckTransaction`] for an ACK, [`TxError::BadRequest`] for
    /// a branch without the magic cookie, [`TxError::InvalidState`] if the
    /// transaction exists.
    pub fn send_encoded(
        &mut self,
        now: Instant,
        to: Remote,
        req: crate::EncodedRequest,
    ) -> Result<TxKey, TxError> {
        let handle = self.send_encoded_with(now, to, req, U::default())?;
        self.key(handle).cloned().ok_or(TxError::NoTransaction)
    }

    /// [`TransactionLayer::send_encoded`] of a transaction that keeps `user` for the TU: its
    /// handle.
    ///
    /// # Errors
    /// As [`TransactionLayer::send_encoded`].
    pub fn send_encoded_with(
        &mut self,
        now: Instant,
        to: Remote,
        req: crate::EncodedRequest,
        user: U,
    ) -> Result<TxHandle, TxError> {
        let method = req.method().clone();
        if method == Method::Ack {
            return Err(TxError::AckTransaction);
        }
        if !req.branch().starts_with(MAGIC_COOKIE) {
            return Err(TxError::BadRequest(ParseError::BadHeader("Via")));
        }
        let (bytes, branch) = req.into_bytes_and_branch();
        let key = TxKey {
            role: Role::Client,
            branch,
            sent_by: String::new(),
            method: method.clone(),
        };
        let hash = self.slot_of.hash(&key);
        if self.slot_hashed(hash, &key).is_some() {
            return Err(TxError::InvalidState);
        }
        let bytes = Bytes::from(bytes);
        let invite = method == Method::Invite;
        Ok(self.start_client(now, to, (key, hash), invite, (None, bytes), user))
    }

    /// Sends a message outside any transaction (the ACK for a 2xx, a 2xx retransmitted by a dialog).
    pub fn send_stateless(&mut self, to: Remote, msg: &Message) {
        self.transmit(to, Bytes::from(msg.to_bytes()));
    }

    // (B) input

    /// The driver could not send for this transaction: it ends with [`Event::TransportError`].
    pub fn handle_transport_error(&mut self, key: &TxKey) {
        if let Some(slot) = self.slot_hashed(self.slot_of.hash(key), key) {
            self.end(slot, End::TransportError);
        }
    }

    /// A parsed message from the network.
    pub fn handle_incoming(&mut self, now: Instant, from: Remote, msg: Message) {
        match msg {
            Message::Response(r) => self.handle_response(now, r),
            Message::Request(r) => self.handle_request(now, from, r),
        }
    }

    fn handle_response(&mut self, now: Instant, resp: Response) {
        let (Ok(via), Ok((_, method))) = (resp.headers().via(), resp.cseq()) else {
            return;
        };
        let Some(key) = client_key_of(via.branch.clone(), method) else {
            return;
        };
        let t = self.timers;
        let Some((slot, tx)) = self.find_mut(&key) else {
            return;
        }; // stray: dropped (RFC 3261 18.1.2)
        let handle = TxHandle { slot, id: tx.id };
        let code = resp.status();
        let reliable = tx.reliable();
        let mut pass = false;
        let mut terminate = false;
        let mut send = None;
        match (tx.kind, tx.state) {
            (Kind::ClientInvite, State::Calling | State::Proceeding) => {
                pass = true;
                if code.is_provisional() {
                    tx.state = State::Proceeding;
                    tx.clear_all();
                } else if code.is_success() {
                    tx.state = State::Accepted;
                    tx.clear_all();
                    tx.set(TimerKind::M, now + t.t64());
                    // Accepted only passes 2xx retransmissions up: nothing is sent again.
                    tx.request = None;
                    tx.last = None;
                } else {
                    tx.state = State::Completed;
                    tx.clear_all();
                    // The request goes with its final response: the TU got that response,
                    // so a later transport error has nothing to report (no 503).
                    let request = tx.take_client_request();
                    tx.last = None;
                    if let Some(ack) = request.and_then(|r| ack_for_non2xx(&r, &resp).ok()) {
                        let b = Bytes::from(ack.to_bytes());
                        tx.ack = Some(b.clone());
                        send = Some(b);
                    }
                    if reliable {
                        terminate = true;
                    } else {
                        tx.set(TimerKind::D, now + Duration::from_secs(32).max(t.t64() / 2));
                    }
                }
            }
            (Kind::ClientInvite, State::Accepted) => pass = code.is_success(),
            (Kind::ClientInvite, State::Completed) if code.is_final() && !code.is_success() => {
                send.clone_from(&tx.ack);
            }
            (Kind::ClientNonInvite, State::Trying | State::Proceeding) => {
                pass = true;
                if code.is_provisional() {
                    tx.state = State::Proceeding;
                } else {
                    tx.state = State::Completed;
                    tx.clear_all();
                    // Completed only absorbs retransmitted responses.
                    tx.request = None;
                    tx.last = None;
                    if reliable {
                        terminate = true;
                    } else {
                        tx.set(TimerKind::K, now + t.t4);
                    }
                }
            }
            _ => {}
        }
        let remote = tx.remote;
        if let Some(b) = send {
            self.transmit(remote, b);
        }
        if pass {
            self.events.push_back(Queued::Event(Event::Response {
                key,
                handle,
                response: resp,
            }));
        }
        // After the response: Event::Terminated comes last.
        if terminate {
            self.terminate(slot);
        } else {
            self.reindex(slot);
        }
    }

    fn handle_request(&mut self, now: Instant, from: Remote, req: Request) {
        let Ok(key) = server_key(&req) else { return };
        let t = self.timers;
        let is_ack = *req.method() == Method::Ack;
        let hash = self.slot_of.hash(&key);
        if let Some((slot, tx)) = self.find_hashed_mut(hash, &key) {
            let reliable = tx.reliable();
            let mut resend = None;
            let mut terminate = false;
            match (tx.kind, tx.state, is_ack) {
                (Kind::ServerInvite, State::Completed, true) => {
                    tx.state = State::Confirmed;
                    tx.clear_all();
                    if reliable {
                        terminate = true;
                    } else {
                        tx.set(TimerKind::I, now + t.t4);
                    }
                }
                (Kind::ServerInvite, State::Accepted, true) => {
                    // RFC 2543-style ACK for a 2xx that matched: hand it to the dialog.
                    self.events.push_back(Queued::Event(Event::Ack {
                        remote: from,
                        request: req,
                    }));
                    return;
                }
                (_, _, true) => {} // absorbed (Confirmed)
                (Kind::ServerInvite, State::Proceeding | State::Completed, false)
                | (Kind::ServerNonInvite, State::Proceeding | State::Completed, false) => {
                    resend.clone_from(&tx.last);
                }
                _ => {} // Trying, Accepted, Confirmed: absorbed
            }
            let remote = tx.remote;
            if let Some(b) = resend {
                self.transmit(remote, b);
            }
            if terminate {
                self.terminate(slot);
            } else {
                self.reindex(slot);
            }
            return;
        }
        if is_ack {
            self.events.push_back(Queued::Event(Event::Ack {
                remote: from,
                request: req,
            }));
            return;
        }
        let invite = *req.method() == Method::Invite;
        let mut tx = Tx {
            kind: if invite {
                Kind::ServerInvite
            } else {
                Kind::ServerNonInvite
            },
            state: if invite {
                State::Proceeding
            } else {
                State::Trying
            },
            remote: from,
            // Only the 100 Trying the layer may send itself needs it.
            request: invite.then(|| req.clone()),
            last: None,
            ack: None,
            timers: [None; NTIMERS],
            armed: 0,
            interval: t.t1,
            id: self.next_id,
            touched: 0,
            key: key.clone(),
            hash,
            user: U::default(),
            ended: false,
        };
        self.next_id += 1;
        if invite {
            tx.set(TimerKind::Trying, now + t.trying_delay);
        }
        let handle = self.insert(tx);
        self.events.push_back(Queued::Event(Event::Request {
            key,
            handle,
            remote: from,
            request: req,
        }));
    }

    /// Fires every timer due at `now` (in deadline order, re-armed from their deadlines). Only
    /// the transactions with a due timer are touched (the timer index's first entries).
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(due) = self.index.first().filter(|d| d.at <= now) {
            let slots = &self.slots;
            self.index
                .pop_first(&due, |d| slots.get(d.slot).is_some_and(|t| t.has(d)));
            let kind = ALL_TIMERS.get(usize::from(due.kind)).copied();
            // The first entry is the earliest armed timer of all, so its transaction's too
            // (of equal deadlines, the first kind): the order the timers always fired in.
            debug_assert_eq!(
                self.slots.get(due.slot).and_then(Tx::next),
                kind.map(|k| (due.at, k))
            );
            if let Some(kind) = kind {
                self.fire(due.slot, due.at, kind);
            }
        }
    }

    /// Files the timers of the transaction in `slot` changed since its last call in the
    /// [`Timeline`]. Call after every change to a transaction's timers.
    fn reindex(&mut self, slot: usize) {
        let Some(tx) = self.slots.get_mut(slot) else {
            return;
        };
        let mut touched = std::mem::take(&mut tx.touched);
        let id = tx.id;
        while touched != 0 {
            let k = touched.trailing_zeros() as usize;
            touched &= touched - 1;
            if let (Some(at), Ok(kind)) = (tx.timers[k], u8::try_from(k)) {
                self.index.file(Due { at, id, kind, slot });
            }
        }
        // Entries this change left behind go now if they come first (the first entries stay
        // live, so `poll_timeout` is exact); the others go when they come first.
        let slots = &self.slots;
        self.index
            .prune_after(slot, id, |d| slots.get(d.slot).is_some_and(|t| t.has(d)));
    }

    /// Ends the live transaction in `slot`: its key and index entry go, and the event `how`
    /// is queued. The record keeps its slot, and its key and the TU's data, until that event is
    /// polled ([`TransactionLayer::poll_event`] frees the slot); what it held for the network
    /// goes now.
    fn end(&mut self, slot: usize, how: End) {
        let Some(tx) = self.slots.get_mut(slot).filter(|tx| !tx.ended) else {
            return;
        };
        tx.ended = true;
        self.slot_of.remove(tx.hash, slot);
        tx.clear_all();
        let request = match how {
            End::Terminated => None,
            End::Timeout | End::TransportError => tx.take_client_request(),
        };
        tx.request = None;
        tx.last = None;
        tx.ack = None;
        self.reindex(slot);
        self.events.push_back(Queued::Ended { slot, how, request });
    }

    /// Ends the transaction in `slot` without an event of its own: [`Event::Terminated`].
    fn terminate(&mut self, slot: usize) {
        self.end(slot, End::Terminated);
    }

    fn fire(&mut self, slot: usize, at: Instant, kind: TimerKind) {
        let t = self.timers;
        let Some(tx) = self.slots.get_mut(slot) else {
            return;
        };
        tx.clear(kind);
        let mut send = None;
        let mut end = None; // Some(true) = with timeout event
        match kind {
            TimerKind::A => {
                send.clone_from(&tx.last);
                tx.interval *= 2;
                tx.set(TimerKind::A, at + tx.interval);
            }
            TimerKind::E => {
                send.clone_from(&tx.last);
                tx.interval = if tx.state == State::Proceeding {
                    t.t2
                } else {
                    (tx.interval * 2).min(t.t2)
                };
                tx.set(TimerKind::E, at + tx.interval);
            }
            TimerKind::G => {
                send.clone_from(&tx.last);
                tx.interval = (tx.interval * 2).min(t.t2);
                tx.set(TimerKind::G, at + tx.interval);
            }
            TimerKind::Trying => {
                if let Some(r) = tx
                    .request
                    .as_ref()
                    .and_then(|r| Response::for_request(r, StatusCode::TRYING, None).ok())
                {
                    let b = Bytes::from(r.to_bytes());
                    tx.last = Some(b.clone());
                    send = Some(b);
                }
            }
            TimerKind::B | TimerKind::F | TimerKind::H => end = Some(true),
            TimerKind::D
            | TimerKind::I
            | TimerKind::J
            | TimerKind::K
            | TimerKind::L
            | TimerKind::M => {
                end = Some(false);
            }
        }
        let remote = tx.remote;
        if let Some(b) = send {
            self.transmit(remote, b);
        }
        match end {
            Some(true) => self.end(slot, End::Timeout),
            Some(false) => self.terminate(slot),
            None => self.reindex(slot),
        }
    }

    fn transmit(&mut self, to: Remote, bytes: Bytes) {
        self.transmits.push_back(Transmit {
            destination: to.addr,
            transport: to.transport,
            bytes,
        });
    }

    // (D) outputs

    /// The next datagram or stream write.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }
    /// The earliest armed timer: call [`TransactionLayer::handle_timeout`] then. Exact (never
    /// early): the first entry of the timer index.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.index.first().map(|d| d.at)
    }
    /// The next event for the TU. An event that ends a transaction frees its record and
    /// hands the TU's data back.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event<U>> {
        loop {
            let (slot, how, request) = match self.events.pop_front()? {
                Queued::Event(e) => return Some(e),
                Queued::Ended { slot, how, request } => (slot, how, request),
            };
            // Always there: only this takes an ended record.
            let Some(Tx { key, user, .. }) = self.slots.take(slot) else {
                debug_assert!(false, "ended transaction's slot {slot} empty");
                continue;
            };
            return Some(match how {
                End::Terminated => Event::Terminated { key, user },
                End::Timeout => Event::Timeout { key, request, user },
                End::TransportError => Event::TransportError { key, request, user },
            });
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn udp() -> Remote {
        Remote {
            addr: "192.0.2.9:5060".parse().unwrap(),
            transport: Transport::Udp,
        }
    }

    fn invite(branch: &str) -> Request {
        Request::builder(Method::Invite, "sip:m@example.org")
            .via("UDP", "192.0.2.1:5060", branch)
            .max_forwards(70)
            .from(None, "sip:d@example.org", "ftag")
            .to(None, "sip:m@example.org", None)
            .call_id("call-1@192.0.2.1")
            .cseq(1)
            .build()
            .unwrap()
    }

    fn ok(req: &Request) -> Response {
        Response::for_request(req, StatusCode::OK, Some("ttag")).unwrap()
    }

    /// `Tx::next` over the armed bits gives what a scan of all thirteen
    /// timers gives (earliest; of equal deadlines the first kind), through
    /// sets, clears and re-arms in a pseudo-random order.
    #[test]
    fn next_over_armed_timers_agrees_with_a_scan_of_all() {
        for (i, k) in ALL_TIMERS.iter().enumerate() {
            assert_eq!(*k as usize, i, "bit k is ALL_TIMERS[k]");
        }
        let t0 = Instant::now();
        let mut tx = Tx {
            kind: Kind::ClientInvite,
            state: State::Calling,
            remote: udp(),
            request: None,
            last: None,
            ack: None,
            timers: [None; NTIMERS],
            armed: 0,
            interval: Duration::from_millis(500),
            id: 0,
            touched: 0,
            key: client_key_of(Some("z9hG4bK1".into()), Method::Invite).unwrap(),
            hash: 0,
            user: (),
            ended: false,
        };
        let scan = |tx: &Tx<()>| {
            ALL_TIMERS
                .iter()
                .filter_map(|&k| tx.timers[k as usize].map(|at| (at, k)))
                .min_by_key(|(at, _)| *at)
        };
        let mut x = 0x2545_f491_u32;
        for step in 0..5_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let kind = ALL_TIMERS[x as usize % NTIMERS];
            match (x >> 8) % 7 {
                0 => tx.clear(kind),
                1 if step % 50 == 0 => tx.clear_all(),
                // Few distinct deadlines, so that ties are frequent.
                _ => tx.set(kind, t0 + Duration::from_millis(u64::from((x >> 12) % 8))),
            }
            assert_eq!(tx.next(), scan(&tx), "step {step}");
        }
    }

    /// The timeline's first entry is always the earliest live timer (never a
    /// disarmed one, whatever order they were filed, disarmed or re-armed
    /// in), and popping the first entries gives every live timer in
    /// (deadline, transaction, kind) order.
    #[test]
    fn the_timeline_gives_live_timers_in_order() {
        use std::collections::BTreeSet;
        let t0 = Instant::now();
        let mut tl = Timeline::default();
        // The live timers; transaction i is in slot i.
        let mut live: BTreeSet<Due> = BTreeSet::new();
        let mut x = 0x9e37_79b9_u32;
        let mut clock = 0u64;
        for step in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let id = u64::from(x % 64);
            let kind = u8::try_from(x % 13).unwrap();
            let mine: Vec<Due> = live.iter().filter(|d| d.id == id).copied().collect();
            match (x >> 8) % 4 {
                // Disarm one of this transaction's timers, or all of them.
                0 => {
                    for d in mine.iter().take(if x & 1 == 0 { 1 } else { mine.len() }) {
                        live.remove(d);
                    }
                }
                // Arm (re-arm) a kind: mostly later than before, sometimes not.
                _ => {
                    clock += u64::from(x % 3);
                    let back = if (x >> 20) % 8 == 0 {
                        u64::from(x % 50)
                    } else {
                        0
                    };
                    let at =
                        t0 + Duration::from_millis(clock.saturating_sub(back) + u64::from(kind));
                    live.retain(|d| !(d.id == id && d.kind == kind));
                    let due = Due {
                        at,
                        id,
                        kind,
                        slot: usize::try_from(id).unwrap(),
                    };
                    live.insert(due);
                    tl.file(due);
                }
            }
            tl.prune_after(usize::try_from(id).unwrap(), id, |d| live.contains(d));
            assert_eq!(tl.first(), live.first().copied(), "step {step}");
            // Now and then the due ones fire (and are disarmed).
            if step % 97 == 0 {
                let now = t0 + Duration::from_millis(clock.saturating_sub(20));
                while let Some(d) = tl.first().filter(|d| d.at <= now) {
                    assert_eq!(live.pop_first(), Some(d), "step {step}: in order");
                    tl.pop_first(&d, |d| live.contains(d));
                    // Firing changed the transaction's timers (as `fire` does).
                    tl.prune_after(d.slot, d.id, |d| live.contains(d));
                    assert_eq!(tl.first(), live.first().copied());
                }
            }
        }
        while let Some(d) = tl.first() {
            assert_eq!(live.pop_first(), Some(d));
            tl.pop_first(&d, |d| live.contains(d));
            tl.prune_after(d.slot, d.id, |d| live.contains(d));
        }
        assert!(live.is_empty());
        assert!(tl.is_empty(), "no stale entry outlives the live ones");
    }

    /// An INVITE client transaction lives 64·T1 after its 2xx (RFC 6026) but
    /// needs neither its request nor its octets then: a fan-out holding
    /// thousands must not hold their messages.
    #[test]
    fn an_accepted_invite_keeps_neither_its_request_nor_its_octets() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::new(Timers::RFC3261);
        let req = invite("z9hG4bKacc");
        let key = l.send_request(t0, udp(), req.clone()).unwrap();
        let tx = l.get(&key).unwrap();
        assert!(
            tx.request.is_some() && tx.last.is_some(),
            "kept while Calling"
        );
        l.handle_incoming(t0, udp(), ok(&req).into());
        assert_eq!(l.state(&key), Some(State::Accepted));
        let tx = l.get(&key).unwrap();
        assert!(tx.request.is_none(), "request dropped in Accepted");
        assert!(tx.last.is_none(), "octets dropped in Accepted");
    }

    /// Ended transactions free their slots (once the TU has polled their
    /// ending events) and new ones take them: a steady number of live
    /// transactions stops growing the record store.
    #[test]
    fn slots_of_ended_transactions_are_reused() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::new(Timers::RFC3261);
        for round in 0..5u32 {
            let now = t0 + Duration::from_secs(40 * u64::from(round));
            for i in 0..100 {
                let req = invite(&format!("z9hG4bKr{round}x{i}"));
                l.send_request(now, udp(), req.clone()).unwrap();
                l.handle_incoming(now, udp(), ok(&req).into());
            }
            assert_eq!(l.len(), 100);
            // Timer M (64·T1) ends them all.
            l.handle_timeout(now + Duration::from_secs(33));
            assert!(l.is_empty());
            assert!(l.index.is_empty());
            while l.poll_event().is_some() {}
        }
        assert_eq!(l.slots.filled(), 100, "five rounds of 100 used 100 slots");
        assert_eq!(l.slots.free(), 100);
    }
}
