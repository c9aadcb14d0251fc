//! Thousands of lingering transactions: every timer still fires at exactly its own deadline,
//! `poll_timeout` is always the earliest pending deadline, and every transaction ends exactly
//! when RFC 3261 / RFC 6026 say (the layer keeps its timers in an index rather than scanning).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mcx_sip::{
    Event, Method, Remote, Request, Response, StatusCode, Timers, TransactionLayer, Transport,
    TxKey,
};

const N: usize = 5000;

fn udp() -> Remote {
    Remote {
        addr: "192.0.2.9:5060".parse().unwrap(),
        transport: Transport::Udp,
    }
}

fn invite(i: usize) -> Request {
    request(Method::Invite, i)
}

fn request(method: Method, i: usize) -> Request {
    Request::builder(method, &format!("sip:m{i}@example.org"))
        .via("UDP", "192.0.2.1:5060", &format!("z9hG4bK{i}"))
        .max_forwards(70)
        .from(None, "sip:server@example.org", &format!("f{i}"))
        .to(None, &format!("sip:m{i}@example.org"), None)
        .call_id(&format!("call-{i}@192.0.2.1"))
        .cseq(1)
        .contact("<sip:server@192.0.2.1:5060>")
        .build()
        .unwrap()
}

fn response(req: &Request, code: u16) -> Response {
    Response::for_request(req, StatusCode(code), Some("ttag")).unwrap()
}

/// The transaction a message or key belongs to: the `i` of its branch `z9hG4bK<i>`.
fn index_of_branch(branch: &str) -> usize {
    branch.strip_prefix("z9hG4bK").unwrap().parse().unwrap()
}

/// The same from a whole message (searched for, not parsed: 10⁴ messages in a debug build).
fn index_of_bytes(bytes: &[u8]) -> usize {
    let text = std::str::from_utf8(bytes).unwrap();
    let at = text.find(";branch=").unwrap() + ";branch=".len();
    let end = text[at..]
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap();
    index_of_branch(&text[at..at + end])
}

/// What the layer does on its own at a timer, per transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Out {
    /// A (re)transmission: Timer A, or the 100 Trying.
    Send(usize),
    /// Timer B.
    Timeout(usize),
    /// Timer D, L or M: ended silently.
    Terminated(usize),
}

type Expected = BTreeMap<Instant, Vec<Out>>;

fn expect(e: &mut Expected, at: Instant, out: Out) {
    e.entry(at).or_default().push(out);
}

fn unexpect(e: &mut Expected, at: Instant, out: Out) {
    let outs = e.get_mut(&at).unwrap();
    outs.retain(|o| *o != out);
    if outs.is_empty() {
        e.remove(&at);
    }
}

/// Runs `inputs` (time-ordered; each handled by `input`, which checks its own immediate
/// output) interleaved with the layer's timers, checking before every step that
/// `poll_timeout` is exactly the earliest expected deadline and at every timer that the
/// layer does exactly what is expected then.
fn run<I>(
    l: &mut TransactionLayer,
    inputs: Vec<(Instant, I)>,
    expected: &mut Expected,
    mut input: impl FnMut(&mut TransactionLayer, Instant, I, &mut Expected),
) {
    let mut inputs = inputs.into_iter().peekable();
    loop {
        let timer = l.poll_timeout();
        assert_eq!(
            timer,
            expected.keys().next().copied(),
            "poll_timeout is the earliest pending deadline"
        );
        let next_input = inputs.peek().map(|(at, _)| *at);
        match (timer, next_input) {
            (Some(t), i) if i.is_none_or(|i| t <= i) => {
                l.handle_timeout(t);
                let mut got: Vec<Out> = std::iter::from_fn(|| l.poll_transmit())
                    .map(|tr| Out::Send(index_of_bytes(&tr.bytes)))
                    .collect();
                got.extend(std::iter::from_fn(|| l.poll_event()).map(|e| match e {
                    Event::Timeout { key, .. } => Out::Timeout(index_of_branch(&key.branch)),
                    Event::Terminated { key, .. } => Out::Terminated(index_of_branch(&key.branch)),
                    other => panic!("unexpected {other:?}"),
                }));
                got.sort();
                let mut want = expected.remove(&t).unwrap();
                want.sort();
                assert_eq!(got, want, "at {t:?}");
            }
            (_, Some(_)) => {
                let (at, what) = inputs.next().unwrap();
                input(l, at, what, expected);
            }
            (None, None) => return,
            (Some(_), None) => unreachable!(),
        }
    }
}

#[test]
fn thousands_of_invite_server_transactions_each_end_at_their_own_timer_l() {
    let t = Timers::RFC3261;
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(t);
    let invites: Vec<Request> = (0..N).map(invite).collect();
    // Request i arrives at 3i ms; the TU answers 200 after 0.5 ms .. 399.5 ms, so about half
    // of them get the 100 Trying at 200 ms first.
    let arrive = |i: usize| t0 + Duration::from_millis(3 * i as u64);
    let delay = |i: usize| Duration::from_micros(((i * 37) % 400) as u64 * 1000 + 500);
    let mut inputs: Vec<(Instant, (usize, bool))> = (0..N)
        .flat_map(|i| [(arrive(i), (i, false)), (arrive(i) + delay(i), (i, true))])
        .collect();
    inputs.sort_by_key(|(at, _)| *at); // stable: arrival before answer
    let mut keys: Vec<Option<TxKey>> = vec![None; N];
    let mut expected = Expected::new();
    let mut tryings = 0;
    run(&mut l, inputs, &mut expected, |l, now, (i, answer), exp| {
        if answer {
            let key = keys[i].as_ref().unwrap();
            l.send_response(now, key, response(&invites[i], 200))
                .unwrap();
            assert_eq!(index_of_bytes(&l.poll_transmit().unwrap().bytes), i);
            if delay(i) < t.trying_delay {
                unexpect(exp, arrive(i) + t.trying_delay, Out::Send(i));
            }
            // Timer L = 64·T1 after the 2xx (RFC 6026 8.7).
            expect(exp, now + t.t1 * 64, Out::Terminated(i));
        } else {
            l.handle_incoming(now, udp(), invites[i].clone().into());
            let Some(Event::Request { key, .. }) = l.poll_event() else {
                panic!("request {i}")
            };
            keys[i] = Some(key);
            // The 100 Trying is armed; an earlier answer disarms it.
            expect(exp, now + t.trying_delay, Out::Send(i));
            tryings += usize::from(delay(i) > t.trying_delay);
        }
        assert!(l.poll_event().is_none() && l.poll_transmit().is_none());
    });
    assert!(tryings > N / 3 && tryings < 2 * N / 3);
    assert!(l.is_empty() && expected.is_empty());
}

#[test]
fn thousands_of_udp_invite_client_transactions_keep_timers_a_b_d_m() {
    let t = Timers::RFC3261;
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(t);
    let invites: Vec<Request> = (0..N).map(invite).collect();
    // INVITE i is sent at 3i ms (+ i mod 7 × 100 µs). i mod 3 = 0: no answer (Timer A, then
    // Timer B); 1: 486 after 0.7 s (Timer D = 32 s); 2: 200 after 2 s (Timer M = 64·T1).
    let start = |i: usize| {
        t0 + Duration::from_millis(3 * i as u64) + Duration::from_micros(100 * (i % 7) as u64)
    };
    let answer_after = |i: usize| match i % 3 {
        1 => Some((Duration::from_millis(700), 486)),
        2 => Some((Duration::from_secs(2), 200)),
        _ => None,
    };
    let mut inputs: Vec<(Instant, (usize, Option<u16>))> = (0..N)
        .map(|i| (start(i), (i, None)))
        .chain((0..N).filter_map(|i| answer_after(i).map(|(d, c)| (start(i) + d, (i, Some(c))))))
        .collect();
    inputs.sort_by_key(|(at, _)| *at);
    let mut expected = Expected::new();
    run(&mut l, inputs, &mut expected, |l, now, (i, code), exp| {
        match code {
            None => {
                l.send_request(now, udp(), invites[i].clone()).unwrap();
                assert_eq!(index_of_bytes(&l.poll_transmit().unwrap().bytes), i);
                // Timer A: T1, then doubling, while Calling (17.1.1.2).
                let stop = answer_after(i).map_or(t.t1 * 64, |(d, _)| d);
                let mut a = t.t1;
                let mut at = t.t1;
                while at < stop {
                    expect(exp, now + at, Out::Send(i));
                    a *= 2;
                    at += a;
                }
                if answer_after(i).is_none() {
                    expect(exp, now + t.t1 * 64, Out::Timeout(i)); // Timer B
                }
            }
            Some(c) => {
                l.handle_incoming(now, udp(), response(&invites[i], c).into());
                assert!(matches!(l.poll_event(), Some(Event::Response { .. })));
                if c == 486 {
                    let ack = l.poll_transmit().unwrap();
                    assert_eq!(index_of_bytes(&ack.bytes), i, "the ACK");
                    expect(exp, now + Duration::from_secs(32), Out::Terminated(i)); // D
                } else {
                    expect(exp, now + t.t1 * 64, Out::Terminated(i)); // M
                }
            }
        }
        assert!(l.poll_event().is_none() && l.poll_transmit().is_none());
    });
    assert!(l.is_empty() && expected.is_empty());
}

#[test]
fn terminated_comes_after_the_last_response_on_tcp() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(Timers::RFC3261);
    let tcp = Remote {
        transport: Transport::Tcp,
        ..udp()
    };
    let inv = invite(7);
    let key = l.send_request(t0, tcp, inv.clone()).unwrap();
    l.handle_incoming(t0, tcp, response(&inv, 486).into());
    assert!(matches!(l.poll_event(), Some(Event::Response { key: k, .. }) if k == key));
    assert_eq!(l.poll_event(), Some(Event::Terminated { key, user: () }));
    assert!(l.is_empty() && l.poll_timeout().is_none());
    // A server transaction answered over TCP ends at once (Timer J = 0).
    let opt = request(Method::Options, 8);
    l.handle_incoming(t0, tcp, opt.clone().into());
    let Some(Event::Request { key, .. }) = l.poll_event() else {
        panic!()
    };
    l.send_response(t0, &key, response(&opt, 200)).unwrap();
    assert_eq!(l.poll_event(), Some(Event::Terminated { key, user: () }));
    assert!(l.is_empty() && l.poll_timeout().is_none());
}
