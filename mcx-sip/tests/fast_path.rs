//! The fast path of the typed header values (top Via, From, To, Contact)
//! against ezk's reading alone, which it must never contradict: whenever
//! the fast path gives a value, ezk gives `Ok` with the same value, and
//! what a message's accessor gives (fast path, else ezk) is what ezk alone
//! gives, errors included. Values are canonical forms with random edits
//! (characters inserted, removed, replaced, case changed) from an alphabet
//! of the characters that change a reading: whitespace, quotes, brackets,
//! `%` escapes, IPv6, `@`, `:`, `;`, `,`, non-ASCII.
#![allow(clippy::unwrap_used)]

use std::cell::Cell;
use std::fmt::Debug;

use mcx_sip::differential::{self, Readings};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{Config, TestRunner};

/// Characters an edit inserts or writes over another.
const ALPHABET: &[char] = &[
    ' ', '\t', '"', '\\', '<', '>', ';', ':', '=', '@', '%', ',', '[', ']', '?', '/', '.', '-',
    '_', '+', '*', '&', '$', '\'', '(', ')', '!', '~', '`', '#', 'a', 'Z', '0', '7', '9', 'F', 'é',
    '\u{a0}',
];

/// One edit at a position of the value.
#[derive(Debug, Clone)]
enum Edit {
    Insert(Index, char),
    Remove(Index),
    Replace(Index, char),
    FlipCase(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    let c = select(ALPHABET);
    prop_oneof![
        (any::<Index>(), c.clone()).prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<Index>().prop_map(Edit::Remove),
        (any::<Index>(), c).prop_map(|(i, c)| Edit::Replace(i, c)),
        any::<Index>().prop_map(Edit::FlipCase),
    ]
}

/// `value` with `edits` applied.
fn apply(value: &str, edits: &[Edit]) -> String {
    let mut v: Vec<char> = value.chars().collect();
    for e in edits {
        let n = v.len();
        match *e {
            Edit::Insert(ref i, c) => v.insert(i.index(n + 1), c),
            Edit::Remove(ref i) if n > 0 => {
                v.remove(i.index(n));
            }
            Edit::Replace(ref i, c) if n > 0 => v[i.index(n)] = c,
            Edit::FlipCase(ref i) if n > 0 => {
                let c = v[i.index(n)];
                v[i.index(n)] = if c.is_ascii_lowercase() {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                };
            }
            _ => {}
        }
    }
    v.into_iter().collect()
}

/// One of `good` (canonical forms) four times in five, else one of `odd`
/// (forms the fast path must leave to ezk, or that ezk refuses).
fn pick(
    good: &'static [&'static str],
    odd: &'static [&'static str],
) -> BoxedStrategy<&'static str> {
    prop_oneof![4 => select(good), 1 => select(odd)].boxed()
}

const HOSTS: &[&str] = &[
    "127.0.0.1",
    "192.0.2.255",
    "mcx.example",
    "a-b.example.com.",
    "h",
    "xn--bcher-kva.example",
];
const ODD_HOSTS: &[&str] = &[
    "10.0.0.01",
    "1.2.3.256",
    "1.2.3",
    "1.2.3.4.5",
    "123.example",
    "1.2.3.4-x",
    "[::1]",
    "[2001:db8::7]",
    "-bad.example",
    "bad-.example",
    "a..b",
    "",
];
const PORTS: &[&str] = &["", ":5060", ":41234", ":0", ":65535", ":05060"];
const ODD_PORTS: &[&str] = &[":65536", ":", ":+5", ": 5060"];
const VIA_PARAMS: &[&str] = &[
    "",
    ";branch=z9hG4bK8c1f2e3d4a5b6978",
    ";branch=z9hG4bKa;rport",
    ";rport;branch=z9hG4bKx;received=192.0.2.1",
    ";received=127.0.0.1;rport=5062;branch=z9hG4bK1",
    ";Branch=z9hG4bKc",
    ";branch",
    ";branch=a;branch=b",
    ";maddr=224.0.0.1;ttl=16;branch=z9hG4bKf",
];
const ODD_VIA_PARAMS: &[&str] = &[
    ";branch=z9hG4bK%41",
    ";branch=\"z9hG4bKq\"",
    ";branch=",
    ";;branch=z9hG4bKe",
    ";received=::1;branch=z9hG4bKg",
    " ;branch=z9hG4bKh",
    ";branch = z9hG4bKi",
    ";branch=z9hG4bKé",
];
const VIA_TAILS: &[&str] = &[
    "",
    ",SIP/2.0/UDP b.example",
    ", SIP/2.0/TCP c.example;branch=z9hG4bKz",
];
const ODD_VIA_TAILS: &[&str] = &[" , x", "x", " "];

fn via_value() -> impl Strategy<Value = String> {
    (
        pick(&["SIP/2.0/"], &["sip/2.0/", "SIP / 2.0 / ", "SIP/2.1/"]),
        pick(
            &["UDP", "TCP", "TLS", "udp", "SCTP", "WSS"],
            &["", "U-D", "UDP\t"],
        ),
        pick(&[" ", "  "], &["\t", ""]),
        pick(HOSTS, ODD_HOSTS),
        pick(PORTS, ODD_PORTS),
        pick(VIA_PARAMS, ODD_VIA_PARAMS),
        pick(VIA_TAILS, ODD_VIA_TAILS),
    )
        .prop_map(|(v, t, sp, h, p, params, tail)| format!("{v}{t}{sp}{h}{p}{params}{tail}"))
}

const DISPLAYS: &[&str] = &[
    "",
    "\"Alice\" ",
    "\"Alice Smith\"",
    "Alice ",
    "Bob  Smith ",
    "\"Müller\" ",
    "\"<x>\" ",
    "sip ",
];
const ODD_DISPLAYS: &[&str] = &[
    "\"\" ",
    "\"a\\\"b\" ",
    "\"a\\b\" ",
    " ",
    "Al:ce ",
    "\"open ",
];
const SCHEMES: &[&str] = &["sip:", "sips:"];
const ODD_SCHEMES: &[&str] = &["SIP:", "tel:", "sip: ", "", "urn:x:"];
const USERS: &[&str] = &[
    "",
    "member-0123@",
    "tg-0007@",
    "+4912345@",
    "a%20b@",
    "(c)&=+$@",
];
const ODD_USERS: &[&str] = &["a%C3%A9@", "a%zz@", "a:pw@", "@", "u;x@", "a?b@", "é@"];
const URI_PARAMS: &[&str] = &["", ";transport=udp", ";lr", ";user=phone;x"];
const ODD_URI_PARAMS: &[&str] = &[";x=%41", ";x=\"q\"", "?h=v", " ;lr", ";x@y"];
const ADDR_PARAMS: &[&str] = &[
    "",
    ";tag=5f2c9e1a7b3d4c60",
    ";tag=9a8b7c6d5e4f3021;x=1",
    ";x;tag=a",
    ";tag",
    ";Tag=a",
    ";tag=a;tag=b",
    ";+g.3gpp.mcptt",
];
const ODD_ADDR_PARAMS: &[&str] = &[
    ";tag=",
    ";tag=%41",
    ";tag=\"q\"",
    ";+g.3gpp.mcptt;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mcptt\"",
    ";expires=3600, <sip:second@example.com>",
    ", <sip:second@example.com>",
    ";tag=a@b",
    " ;tag=a",
    ";tag=a ",
];

fn addr_value() -> impl Strategy<Value = String> {
    (
        pick(DISPLAYS, ODD_DISPLAYS),
        prop_oneof![3 => Just(true), 1 => Just(false)],
        pick(SCHEMES, ODD_SCHEMES),
        pick(USERS, ODD_USERS),
        pick(HOSTS, ODD_HOSTS),
        pick(PORTS, ODD_PORTS),
        pick(URI_PARAMS, ODD_URI_PARAMS),
        pick(ADDR_PARAMS, ODD_ADDR_PARAMS),
    )
        .prop_map(|(d, angle, scheme, user, host, port, up, ap)| {
            if angle {
                format!("{d}<{scheme}{user}{host}{port}{up}>{ap}")
            } else {
                format!("{d}{scheme}{user}{host}{port}{ap}")
            }
        })
}

/// Counts of what the fast path and ezk did over a run.
#[derive(Default)]
struct Tally {
    fast_some: Cell<usize>,
    fast_none: Cell<usize>,
    none_but_ezk_ok: Cell<usize>,
    ezk_err: Cell<usize>,
}

impl Tally {
    fn check<T: PartialEq + Debug>(&self, value: &str, r: &Readings<T>) {
        match &r.fast {
            Some(fast) => {
                self.fast_some.set(self.fast_some.get() + 1);
                assert_eq!(
                    r.ezk.as_ref(),
                    Ok(fast),
                    "fast path and ezk differ on {value:?}"
                );
            }
            None => {
                self.fast_none.set(self.fast_none.get() + 1);
                if r.ezk.is_ok() {
                    self.none_but_ezk_ok.set(self.none_but_ezk_ok.get() + 1);
                }
            }
        }
        if r.ezk.is_err() {
            self.ezk_err.set(self.ezk_err.get() + 1);
        }
        assert_eq!(
            r.public, r.ezk,
            "the accessor differs from ezk on {value:?}"
        );
    }

    /// Both outcomes of the fast path, and of ezk, must be frequent, or the
    /// run proved nothing.
    fn assert_exercised(&self, what: &str, cases: usize) {
        let (some, none) = (self.fast_some.get(), self.fast_none.get());
        let (declined_ok, err) = (self.none_but_ezk_ok.get(), self.ezk_err.get());
        eprintln!(
            "{what}: {cases} values, fast path Some {some}, None {none} \
             (ezk Ok {declined_ok}), ezk Err {err}"
        );
        // Thresholds at less than half the counts seen (the seed is random).
        assert!(
            some >= cases / 20,
            "{what}: fast path Some only {some} times"
        );
        assert!(
            none >= cases / 20,
            "{what}: fast path None only {none} times"
        );
        assert!(
            declined_ok >= cases / 100,
            "{what}: declined-but-Ok only {declined_ok} times"
        );
        assert!(err >= cases / 50, "{what}: ezk Err only {err} times");
    }
}

const CASES: u32 = 20_000;

/// Runs `read` on `CASES` values of `values`, edited or not.
fn differential<T: PartialEq + Debug>(
    what: &str,
    values: impl Strategy<Value = String>,
    read: impl Fn(&str) -> Readings<T>,
) {
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let tally = Tally::default();
    // Half the values as generated, half with one to three edits.
    let edits = prop_oneof![Just(Vec::new()), prop::collection::vec(edit(), 1..=3)];
    let inputs = (values, edits);
    runner
        .run(&inputs, |(value, edits)| {
            let value = apply(&value, &edits);
            tally.check(&value, &read(&value));
            Ok(())
        })
        .unwrap();
    tally.assert_exercised(what, CASES as usize);
}

#[test]
fn via_fast_path_agrees_with_ezk() {
    differential("Via", via_value(), differential::via);
}

#[test]
fn from_to_fast_path_agrees_with_ezk() {
    differential("From/To", addr_value(), differential::from_to);
}

/// A URI alone, as a Request-URI: the URI parts of `addr_value`.
fn uri_value() -> impl Strategy<Value = String> {
    (
        pick(SCHEMES, ODD_SCHEMES),
        pick(USERS, ODD_USERS),
        pick(HOSTS, ODD_HOSTS),
        pick(PORTS, ODD_PORTS),
        pick(URI_PARAMS, ODD_URI_PARAMS),
    )
        .prop_map(|(scheme, user, host, port, up)| format!("{scheme}{user}{host}{port}{up}"))
}

#[test]
fn uri_fast_path_agrees_with_ezk() {
    differential("URI", uri_value(), differential::uri);
}

#[test]
fn contact_fast_path_agrees_with_ezk() {
    let values = prop_oneof![9 => addr_value(), 1 => Just("*".to_owned())];
    differential("Contact", values, differential::contact);
}

/// Checks each of `values` against ezk, and that the fast path takes it
/// (`fast`) or leaves it to ezk.
fn expect<T: PartialEq + Debug>(values: &[&str], read: impl Fn(&str) -> Readings<T>, fast: bool) {
    let tally = Tally::default();
    for v in values {
        let r = read(v);
        assert_eq!(r.fast.is_some(), fast, "{v}");
        tally.check(v, &r);
    }
}

/// What our roles and common peers send takes the fast path (else the
/// fast path would save nothing), with ezk's value.
#[test]
fn canonical_values_take_the_fast_path() {
    let vias = [
        "SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK8c1f2e3d4a5b6978",
        "SIP/2.0/UDP 127.0.0.1:41234;branch=z9hG4bKa;received=127.0.0.1;rport=41234",
        "SIP/2.0/TCP pc33.atlanta.com;branch=z9hG4bK776asdhds;rport",
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx, SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKy",
    ];
    expect(&vias, differential::via, true);
    let from_tos = [
        "<sip:tg-0007@mcx.example>;tag=5f2c9e1a7b3d4c60",
        "<sip:member-0123@mcx.example>",
        "\"Alice\" <sip:alice@atlanta.com>;tag=1928301774",
        "Bob <sips:bob@biloxi.com:5061;transport=tls>;tag=a6c85cf",
        "sip:+4912345@192.0.2.4;tag=x",
    ];
    expect(&from_tos, differential::from_to, true);
    let contacts = [
        "<sip:mcs-1@127.0.0.1:5062>;+g.3gpp.mcptt;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mcptt\"",
        "<sip:member-0123@127.0.0.1:41234>;+g.3gpp.mcptt",
        "sip:alice@pc33.atlanta.com",
    ];
    expect(&contacts, differential::contact, true);
    // And what it must leave to ezk (read there, not here).
    let odd = [
        "SIP/2.0/UDP [::1]:5060;branch=z9hG4bKv6",
        "SIP/2.0/UDP h.example;branch=\"z9hG4bKq\"",
        "SIP/2.0/UDP 123.example;branch=z9hG4bKd",
    ];
    expect(&odd, differential::via, false);
    expect(
        &["\"a\\\"b\" <sip:a@b>;tag=1", "<sip:a@[::1]>"],
        differential::from_to,
        false,
    );
    expect(&["*"], differential::contact, false);
}
