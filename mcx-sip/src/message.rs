//! SIP messages: [`Request`], [`Response`], [`Message`], header access and encoding.
//!
//! Values are kept as text exactly as received (folded lines joined with one space,
//! RFC 3261 7.3.1); typed accessors validate with ezk-sip-types on demand.

use std::fmt;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use bytesstr::BytesStr;
use ezk_sip_types::header::HeaderParse;
use ezk_sip_types::header::typed::{Contact as EzkContact, FromTo, Via as EzkVia};
use ezk_sip_types::parse::Parse;

use crate::error::{BuildError, ParseError};

/// The Via branch prefix of RFC 3261 (8.1.1.7): the "magic cookie".
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// A SIP method (RFC 3261 7.1; extension methods kept by name).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Method {
    /// INVITE (RFC 3261).
    Invite,
    /// ACK (RFC 3261).
    Ack,
    /// BYE (RFC 3261).
    Bye,
    /// CANCEL (RFC 3261).
    Cancel,
    /// OPTIONS (RFC 3261).
    Options,
    /// REGISTER (RFC 3261).
    Register,
    /// PRACK (RFC 3262).
    Prack,
    /// SUBSCRIBE (RFC 6665).
    Subscribe,
    /// NOTIFY (RFC 6665).
    Notify,
    /// PUBLISH (RFC 3903).
    Publish,
    /// INFO (RFC 6086).
    Info,
    /// REFER (RFC 3515).
    Refer,
    /// MESSAGE (RFC 3428).
    Message,
    /// UPDATE (RFC 3311).
    Update,
    /// Any other token.
    Extension(String),
}

impl Method {
    /// The method as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Invite => "INVITE",
            Self::Ack => "ACK",
            Self::Bye => "BYE",
            Self::Cancel => "CANCEL",
            Self::Options => "OPTIONS",
            Self::Register => "REGISTER",
            Self::Prack => "PRACK",
            Self::Subscribe => "SUBSCRIBE",
            Self::Notify => "NOTIFY",
            Self::Publish => "PUBLISH",
            Self::Info => "INFO",
            Self::Refer => "REFER",
            Self::Message => "MESSAGE",
            Self::Update => "UPDATE",
            Self::Extension(s) => s,
        }
    }

    /// Parses a method token (case-sensitive, RFC 3261 7.1); `None` if it is not a token.
    pub fn parse(s: &str) -> Option<Self> {
        if s.is_empty() || !s.chars().all(is_token_char) {
            return None;
        }
        Some(match s {
            "INVITE" => Self::Invite,
            "ACK" => Self::Ack,
            "BYE" => Self::Bye,
            "CANCEL" => Self::Cancel,
            "OPTIONS" => Self::Options,
            "REGISTER" => Self::Register,
            "PRACK" => Self::Prack,
            "SUBSCRIBE" => Self::Subscribe,
            "NOTIFY" => Self::Notify,
            "PUBLISH" => Self::Publish,
            "INFO" => Self::Info,
            "REFER" => Self::Refer,
            "MESSAGE" => Self::Message,
            "UPDATE" => Self::Update,
            other => Self::Extension(other.to_owned()),
        })
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// RFC 3261 25.1 `token` octets, as a table: the parser asks for every
/// octet of every name and many values (as a chain of comparisons it was
/// ~2 % of an MC server).
static TOKEN_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = token_octet(b as u8);
        b += 1;
    }
    t
};

const fn token_octet(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// RFC 3261 25.1 `token` octets.
#[inline]
pub(crate) fn is_token_byte(b: u8) -> bool {
    TOKEN_BYTES[usize::from(b)]
}

/// What an octet is, as bits of one table ([`octet_classes`]): to the
/// value checks below, and to a value spliced into a request written once
/// for many ([`crate::RequestTemplate`]).
const ILLEGAL: u8 = 1; // CR, LF, NUL: never in a header value
const SPACE: u8 = 2; // ASCII whitespace (char::is_whitespace below 0x80)
const DELIMITER: u8 = 4; // ; , < > " : not in a token-like value
const NON_ASCII: u8 = 8; // part of a multi-octet character: ask the chars
/// Not a token octet but `%` (a branch or tag every parser reads as written).
pub(crate) const NOT_PARAM: u8 = 16;
/// Not a token octet nor `@` (a Call-ID).
pub(crate) const NOT_CALL_ID: u8 = 32;
/// An ASCII control character.
pub(crate) const CONTROL: u8 = 64;

static OCTET_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let token = token_octet(c);
        t[b] = match c {
            b'\r' | b'\n' => ILLEGAL | SPACE,
            0 => ILLEGAL,
            b' ' | b'\t' | 0x0b | 0x0c => SPACE,
            b';' | b',' | b'<' | b'>' | b'"' => DELIMITER,
            0x80..=0xff => NON_ASCII,
            _ => 0,
        } | if token && c != b'%' { 0 } else { NOT_PARAM }
            | if token || c == b'@' { 0 } else { NOT_CALL_ID }
            | if c.is_ascii_control() { CONTROL } else { 0 };
        b += 1;
    }
    t
};

/// The classes of all of `s`'s octets, or-ed: one pass, no branch per
/// octet (the link and the roles check every Call-ID, tag and branch
/// they read or write, several times per message).
pub(crate) fn octet_classes(s: &str) -> u8 {
    s.bytes()
        .fold(0, |seen, b| seen | OCTET_CLASS[usize::from(b)])
}

/// True if `s` has a character that is whitespace ([`char::is_whitespace`]):
/// by octet class for ASCII text, by character otherwise.
fn has_whitespace(s: &str) -> bool {
    let seen = octet_classes(s);
    if seen & NON_ASCII == 0 {
        seen & SPACE != 0
    } else {
        s.contains(char::is_whitespace)
    }
}

/// RFC 3261 25.1 `token` characters.
pub(crate) fn is_token_char(c: char) -> bool {
    u8::try_from(c).is_ok_and(is_token_byte)
}

macro_rules! status_codes {
    ($($name:ident($code:literal) $reason:literal;)*) => {
        impl StatusCode {
            $(#[doc = concat!("`", stringify!($code), " ", $reason, "` (RFC 3261 21 and extensions).")]
            pub const $name: Self = Self($code);)*

            /// The default reason phrase, if the code is known.
            pub fn reason(self) -> Option<&'static str> {
                match self.0 {
                    $($code => Some($reason),)*
                    _ => None,
                }
            }
        }
    };
}

/// A response status code (RFC 3261 7.2), 100..=699 when parsed or built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusCode(pub u16);

status_codes! {
    TRYING(100) "Trying";
    RINGING(180) "Ringing";
    SESSION_PROGRESS(183) "Session Progress";
    OK(200) "OK";
    ACCEPTED(202) "Accepted";
    MOVED_TEMPORARILY(302) "Moved Temporarily";
    BAD_REQUEST(400) "Bad Request";
    UNAUTHORIZED(401) "Unauthorized";
    FORBIDDEN(403) "Forbidden";
    NOT_FOUND(404) "Not Found";
    METHOD_NOT_ALLOWED(405) "Method Not Allowed";
    REQUEST_TIMEOUT(408) "Request Timeout";
    UNSUPPORTED_MEDIA_TYPE(415) "Unsupported Media Type";
    UNSUPPORTED_URI_SCHEME(416) "Unsupported URI Scheme";
    BAD_EXTENSION(420) "Bad Extension";
    TEMPORARILY_UNAVAILABLE(480) "Temporarily Unavailable";
    CALL_DOES_NOT_EXIST(481) "Call/Transaction Does Not Exist";
    LOOP_DETECTED(482) "Loop Detected";
    TOO_MANY_HOPS(483) "Too Many Hops";
    BUSY_HERE(486) "Busy Here";
    REQUEST_TERMINATED(487) "Request Terminated";
    NOT_ACCEPTABLE_HERE(488) "Not Acceptable Here";
    SERVER_INTERNAL_ERROR(500) "Server Internal Error";
    NOT_IMPLEMENTED(501) "Not Implemented";
    SERVICE_UNAVAILABLE(503) "Service Unavailable";
    SERVER_TIMEOUT(504) "Server Time-out";
    VERSION_NOT_SUPPORTED(505) "Version Not Supported";
    MESSAGE_TOO_LARGE(513) "Message Too Large";
    BUSY_EVERYWHERE(600) "Busy Everywhere";
    DECLINE(603) "Decline";
}

impl StatusCode {
    /// 1xx.
    pub fn is_provisional(self) -> bool {
        (100..200).contains(&self.0)
    }
    /// 2xx.
    pub fn is_success(self) -> bool {
        (200..300).contains(&self.0)
    }
    /// 200..=699.
    pub fn is_final(self) -> bool {
        (200..700).contains(&self.0)
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A header name mcx-sip knows, found once per header line (when it is
/// parsed or pushed), so that a lookup compares a tag instead of a
/// case-insensitive name with compact forms expanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Known {
    /// Any other name: compared as text, case-insensitively.
    Other,
    Via,
    From,
    To,
    CallId,
    CSeq,
    Contact,
    ContentType,
    ContentLength,
    ContentEncoding,
    MaxForwards,
    Subject,
    Supported,
    AcceptContact,
    RejectContact,
    RequestDisposition,
    Event,
    ReferTo,
    ReferredBy,
    AllowEvents,
    SessionExpires,
    Route,
    RecordRoute,
}

/// Every known name: full form and RFC 3261 7.3.3 (or RFC 3841, 3515,
/// 3892, 4028, 6665) compact form.
const KNOWN: [(Known, &str, Option<u8>); 22] = [
    (Known::Via, "Via", Some(b'v')),
    (Known::From, "From", Some(b'f')),
    (Known::To, "To", Some(b't')),
    (Known::CallId, "Call-ID", Some(b'i')),
    (Known::CSeq, "CSeq", None),
    (Known::Contact, "Contact", Some(b'm')),
    (Known::ContentType, "Content-Type", Some(b'c')),
    (Known::ContentLength, "Content-Length", Some(b'l')),
    (Known::ContentEncoding, "Content-Encoding", Some(b'e')),
    (Known::MaxForwards, "Max-Forwards", None),
    (Known::Subject, "Subject", Some(b's')),
    (Known::Supported, "Supported", Some(b'k')),
    (Known::AcceptContact, "Accept-Contact", Some(b'a')),
    (Known::RejectContact, "Reject-Contact", Some(b'j')),
    (Known::RequestDisposition, "Request-Disposition", Some(b'd')),
    (Known::Event, "Event", Some(b'o')),
    (Known::ReferTo, "Refer-To", Some(b'r')),
    (Known::ReferredBy, "Referred-By", Some(b'b')),
    (Known::AllowEvents, "Allow-Events", Some(b'u')),
    (Known::SessionExpires, "Session-Expires", Some(b'x')),
    (Known::Route, "Route", None),
    (Known::RecordRoute, "Record-Route", None),
];

impl Known {
    /// The tag of a header name as written (any case, compact forms too).
    pub(crate) fn of(name: &str) -> Self {
        let Some(first) = name.as_bytes().first().map(u8::to_ascii_lowercase) else {
            return Self::Other;
        };
        if name.len() == 1 {
            return KNOWN
                .iter()
                .find(|(_, _, compact)| *compact == Some(first))
                .map_or(Self::Other, |(k, _, _)| *k);
        }
        // Length and first letter rule out all but one or two names before any text compare.
        KNOWN
            .iter()
            .find(|(_, full, _)| {
                full.len() == name.len()
                    && full.as_bytes().first().map(u8::to_ascii_lowercase) == Some(first)
                    && full.eq_ignore_ascii_case(name)
            })
            .map_or(Self::Other, |(k, _, _)| *k)
    }

    /// The full name as RFC 3261 writes it (`None` for [`Known::Other`]).
    pub(crate) fn full_name(self) -> Option<&'static str> {
        // KNOWN lists the tags in declaration order, after Other (a test checks it).
        (self as usize)
            .checked_sub(1)
            .and_then(|i| KNOWN.get(i))
            .filter(|(k, _, _)| *k == self)
            .map(|(_, full, _)| *full)
    }
}

/// One header field as text, borrowed from its message. Header names
/// used in MCPTT are in [`crate::headers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The name as written (may be a compact form such as `v`).
    pub name: &'a str,
    /// The value, trimmed, folded lines joined with one space.
    pub value: &'a str,
}

/// Where the text of a header name or value lives.
#[derive(Debug, Clone, Copy)]
enum Text {
    /// `Headers::shared[start..end]`: the head of a received message.
    Shared(usize, usize),
    /// `Headers::own[start..end]`: written by a builder or a change.
    Own(usize, usize),
    /// A full name spelt as RFC 3261 writes it.
    Static(&'static str),
}

/// One header line: its tag and where its name and value are.
#[derive(Debug, Clone, Copy)]
struct Entry {
    known: Known,
    name: Text,
    value: Text,
}

/// The ordered header list of a message.
///
/// A received message keeps its head as one shared buffer and each
/// header as a tag and two spans into it: parsing copies no header, and a
/// clone or a response built from it shares that buffer. Headers added or
/// changed are appended to one buffer of the message's own. The typed
/// values the accessors parse (top Via, From, To, Contact) are read from
/// the shared buffer without copying and kept once parsed, so that a
/// message handed from layer to layer is parsed once however often each
/// layer asks; any change to the list drops them.
#[derive(Clone, Default)]
pub struct Headers {
    /// The head of a received message (empty for a built one).
    shared: BytesStr,
    /// Text written after parsing or building: names and values end to end.
    own: String,
    entries: Vec<Entry>,
    parsed: Parsed,
}

/// Typed header values parsed on first use (see [`Headers`]), behind one
/// shared pointer so that a message stays small until it is read and a
/// clone handed to the next layer shares what was parsed. Not part of a
/// message's value: two messages with the same headers are equal whatever
/// each has parsed.
#[derive(Clone, Default)]
pub(crate) struct Parsed(OnceLock<Arc<ParsedValues>>);

#[derive(Clone, Default)]
pub(crate) struct ParsedValues {
    via: OnceLock<Result<Via, ParseError>>,
    from: OnceLock<Result<NameAddr, ParseError>>,
    to: OnceLock<Result<NameAddr, ParseError>>,
    contact: OnceLock<Result<Option<NameAddr>, ParseError>>,
    /// The link and the roles ask a message's CSeq several times each.
    cseq: OnceLock<Result<(u32, Method), ParseError>>,
}

impl Parsed {
    fn values(&self) -> &ParsedValues {
        self.0.get_or_init(Arc::default)
    }
}

impl fmt::Debug for Parsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("..")
    }
}

/// Two header lists are equal if they hold the same names (as written)
/// and values in the same order, wherever their text is kept.
impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Headers {
    /// An empty list reading header text from `shared` (a received head),
    /// room made for `n` lines.
    pub(crate) fn over(shared: BytesStr, n: usize) -> Self {
        Self {
            shared,
            own: String::new(),
            entries: Vec::with_capacity(n),
            parsed: Parsed::default(),
        }
    }
    /// Appends a line of the received head: `name` and `value` must lie in
    /// the shared buffer (else their text is copied).
    pub(crate) fn push_received(&mut self, known: Known, name: &str, value: &str) {
        let name = self.shared_text(name);
        let value = self.shared_text(value);
        self.entries.push(Entry { known, name, value });
    }
    /// Appends a line of the received head whose value had to be rewritten
    /// (folded lines joined).
    pub(crate) fn push_received_owned(&mut self, known: Known, name: &str, value: &str) {
        let name = self.shared_text(name);
        let value = self.own_text(value);
        self.entries.push(Entry { known, name, value });
    }
    /// `s` as a span of the shared buffer if it lies there, else copied.
    fn shared_text(&mut self, s: &str) -> Text {
        let base = self.shared.as_ptr() as usize;
        let at = (s.as_ptr() as usize).wrapping_sub(base);
        if at <= self.shared.len() && s.len() <= self.shared.len() - at {
            Text::Shared(at, at + s.len())
        } else {
            self.own_text(s)
        }
    }
    fn own_text(&mut self, s: &str) -> Text {
        let start = self.own.len();
        self.own.push_str(s);
        Text::Own(start, self.own.len())
    }
    /// A name as a header line keeps it: the full form of a known name
    /// spelt as RFC 3261 writes it is not copied.
    fn name_text(&mut self, known: Known, name: &str) -> Text {
        match known.full_name() {
            Some(full) if full == name => Text::Static(full),
            _ => self.own_text(name),
        }
    }
    fn text(&self, t: Text) -> &str {
        match t {
            Text::Shared(a, b) => self.shared.get(a..b).unwrap_or_default(),
            Text::Own(a, b) => self.own.get(a..b).unwrap_or_default(),
            Text::Static(s) => s,
        }
    }
    fn header(&self, e: &Entry) -> Header<'_> {
        Header {
            name: self.text(e.name),
            value: self.text(e.value),
        }
    }
    /// Runs `f` on the value of `e` with a buffer that holds it, as ezk's
    /// parsers want: the shared head itself if it lies there (no copy),
    /// else a copy.
    fn with_source<T>(&self, e: &Entry, f: impl FnOnce(&Bytes, &str) -> T) -> T {
        match e.value {
            Text::Shared(a, b) => f(
                self.shared.as_ref(),
                self.shared.get(a..b).unwrap_or_default(),
            ),
            other => {
                let copy = BytesStr::from(self.text(other));
                f(copy.as_ref(), copy.as_str())
            }
        }
    }
    /// The first line tagged `known` (which must not be [`Known::Other`]).
    fn first(&self, known: Known) -> Option<&Entry> {
        self.entries.iter().find(|e| e.known == known)
    }
    /// The first value of a known header.
    pub(crate) fn value_of(&self, known: Known) -> Option<&str> {
        self.first(known).map(|e| self.text(e.value))
    }
    fn matcher<'a>(&'a self, name: &'a str) -> impl Fn(&Entry) -> bool + 'a {
        let known = Known::of(name);
        move |e: &Entry| match known {
            Known::Other => e.known == Known::Other && self.text(e.name).eq_ignore_ascii_case(name),
            k => e.known == k,
        }
    }
    /// Drops what was parsed from the lines tagged `known`, which changed.
    /// The typed values come only from the first Via, From, To, Contact and
    /// CSeq lines, so a change to any other line keeps them.
    fn changed(&mut self, known: Known) {
        if !matches!(
            known,
            Known::Via | Known::From | Known::To | Known::Contact | Known::CSeq
        ) {
            return;
        }
        let Some(values) = self.parsed.0.get_mut() else {
            return;
        };
        match Arc::get_mut(values) {
            Some(v) => match known {
                Known::Via => v.via = OnceLock::new(),
                Known::From => v.from = OnceLock::new(),
                Known::To => v.to = OnceLock::new(),
                Known::CSeq => v.cseq = OnceLock::new(),
                _ => v.contact = OnceLock::new(),
            },
            // Shared with a clone: start afresh rather than copy the rest.
            None => self.parsed = Parsed::default(),
        }
    }
    /// Records the From or To a builder has just written, as
    /// [`parse_from_to`] reads it back, so that it is not parsed again.
    fn written_from_to(&mut self, known: Known, value: NameAddr) {
        if self.parsed.0.get().is_none() {
            let _ = self.parsed.0.set(Arc::default());
        }
        if let Some(values) = self.parsed.0.get_mut() {
            let v = Arc::make_mut(values);
            let slot = if known == Known::From {
                &mut v.from
            } else {
                &mut v.to
            };
            *slot = OnceLock::from(Ok(value));
        }
    }
    /// Only the top Via changed: From, To and Contact stay parsed; the Via
    /// is `via` if given (known without parsing), else parsed on next use.
    fn via_changed(&mut self, via: Option<Via>) {
        let mut values = std::mem::take(&mut self.parsed)
            .0
            .into_inner()
            .map(Arc::unwrap_or_clone)
            .unwrap_or_default();
        values.via = OnceLock::new();
        if let Some(v) = via {
            let _ = values.via.set(Ok(v));
        }
        self.parsed = Parsed(OnceLock::from(Arc::new(values)));
    }
    /// Replaces the value of line `i` (text checked by the caller).
    fn replace_value(&mut self, i: usize, value: &str) {
        let t = self.own_text(value);
        if let Some(e) = self.entries.get_mut(i) {
            e.value = t;
        }
    }
    /// All headers in order.
    pub fn iter(&self) -> impl Iterator<Item = Header<'_>> {
        self.entries.iter().map(|e| self.header(e))
    }
    /// Raw values of every header with this name (case-insensitive, compact forms match).
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let matches = self.matcher(name);
        self.entries
            .iter()
            .filter(move |e| matches(e))
            .map(|e| self.text(e.value))
    }
    /// The first raw value of a header.
    pub fn get(&self, name: &str) -> Option<&str> {
        let matches = self.matcher(name);
        self.entries
            .iter()
            .find(|e| matches(e))
            .map(|e| self.text(e.value))
    }
    /// Appends a header after checking the name is a token and the value has no CR, LF or NUL.
    pub fn push(&mut self, name: &str, value: &str) -> Result<(), BuildError> {
        check_name(name)?;
        check_value(value, "header value")?;
        self.push_unchecked(Known::of(name), name, value.trim());
        Ok(())
    }
    /// Removes every header with this name.
    pub fn remove(&mut self, name: &str) {
        let known = Known::of(name);
        self.changed(known);
        let (shared, own) = (&self.shared, &self.own);
        self.entries.retain(|e| match known {
            Known::Other => {
                let n = match e.name {
                    Text::Shared(a, b) => shared.get(a..b).unwrap_or_default(),
                    Text::Own(a, b) => own.get(a..b).unwrap_or_default(),
                    Text::Static(s) => s,
                };
                e.known != Known::Other || !n.eq_ignore_ascii_case(name)
            }
            k => e.known != k,
        });
    }
    /// Replaces every header with this name by one value.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), BuildError> {
        check_name(name)?;
        check_value(value, "header value")?;
        let pos = self.entries.iter().position(self.matcher(name));
        self.remove(name);
        let known = Known::of(name);
        let e = Entry {
            known,
            name: self.name_text(known, name),
            value: self.own_text(value.trim()),
        };
        match pos {
            Some(p) if p <= self.entries.len() => self.entries.insert(p, e),
            _ => self.entries.push(e),
        }
        Ok(())
    }
    /// Makes room for `text` more octets of names and values and `lines`
    /// more header lines: a builder about to write several values then
    /// allocates once, not once per value (a cloned list has no spare room).
    pub fn reserve(&mut self, text: usize, lines: usize) {
        self.own.reserve(text);
        self.entries.reserve(lines);
    }
    /// Number of header lines.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// True if there are no headers.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Appends a line of a known name (spelt as RFC 3261 writes it) whose
    /// value `write` appends to the text buffer: checked by the caller.
    fn push_written(&mut self, known: Known, name: &'static str, write: impl FnOnce(&mut String)) {
        self.changed(known);
        let start = self.own.len();
        write(&mut self.own);
        let value = Text::Own(start, self.own.len());
        self.entries.push(Entry {
            known,
            name: Text::Static(name),
            value,
        });
    }
    /// Appends `Via: SIP/2.0/<transport> <sent_by>;branch=<branch>` as
    /// given (checked for CR, LF and NUL like [`Headers::push`]).
    pub(crate) fn push_via_line(
        &mut self,
        transport: &str,
        sent_by: &str,
        branch: &str,
    ) -> Result<(), BuildError> {
        for part in [transport, sent_by, branch] {
            check_value(part, "header value")?;
        }
        self.push_written(Known::Via, "Via", |o| {
            for part in ["SIP/2.0/", transport, " ", sent_by, ";branch=", branch] {
                o.push_str(part);
            }
            // As `push` would store it: trimmed.
            let kept = o.trim_end().len();
            o.truncate(kept);
        });
        Ok(())
    }
    /// Appends `CSeq: <n> <method>`.
    pub(crate) fn push_cseq(&mut self, n: u32, method: &Method) {
        self.push_written(Known::CSeq, "CSeq", |o| {
            o.push_str(Decimal::new(n.into()).as_str());
            o.push(' ');
            o.push_str(method.as_str());
        });
    }
    /// Appends a header whose name and value are known to be valid.
    fn push_unchecked(&mut self, known: Known, name: &str, value: &str) {
        self.changed(known);
        let name = self.name_text(known, name);
        let value = self.own_text(value);
        self.entries.push(Entry { known, name, value });
    }
    /// Octets of the header lines as [`Request::encode`] writes them
    /// (Content-Length left out).
    fn encoded_len(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.known != Known::ContentLength)
            .map(|e| self.text(e.name).len() + self.text(e.value).len() + 4)
            .sum()
    }
    /// Writes the header lines (Content-Length left out).
    fn encode(&self, out: &mut Vec<u8>) {
        for e in self
            .entries
            .iter()
            .filter(|e| e.known != Known::ContentLength)
        {
            out.extend_from_slice(self.text(e.name).as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(self.text(e.value).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

pub(crate) fn check_name(name: &str) -> Result<(), BuildError> {
    if name.is_empty() || !name.chars().all(is_token_char) {
        return Err(BuildError::BadHeaderName);
    }
    Ok(())
}

/// Rejects CR, LF and NUL: the header-injection check every builder goes through.
pub(crate) fn check_value(value: &str, what: &'static str) -> Result<(), BuildError> {
    if memchr::memchr3(b'\r', b'\n', 0, value.as_bytes()).is_some() {
        return Err(BuildError::IllegalChar(what));
    }
    Ok(())
}

pub(crate) fn check_nonempty_token(value: &str, what: &'static str) -> Result<(), BuildError> {
    let seen = octet_classes(value);
    if seen & ILLEGAL != 0 {
        return Err(BuildError::IllegalChar(what));
    }
    if value.is_empty() {
        return Err(BuildError::Empty(what));
    }
    // By class while ASCII (the usual case); Unicode whitespace needs chars.
    let malformed = if seen & NON_ASCII == 0 {
        seen & (SPACE | DELIMITER) != 0
    } else {
        value
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, ';' | ',' | '<' | '>' | '"'))
    };
    if malformed {
        return Err(BuildError::Malformed(what));
    }
    Ok(())
}

/// The parts of the top Via header that the transaction layer needs (RFC 3261 8.1.1.7, 18.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Transport token: `UDP`, `TCP`, `TLS`…
    pub transport: String,
    /// `host[:port]` as sent (IPv6 in brackets).
    pub sent_by: String,
    /// The `branch` parameter.
    pub branch: Option<String>,
    /// The `received` parameter.
    pub received: Option<String>,
    /// The `rport` parameter's value (RFC 3581), if it has one.
    pub rport: Option<String>,
}

/// A From, To or Contact value: URI, optional display name and tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name without quotes, if any.
    pub display_name: Option<String>,
    /// The URI (the part inside `<>` if angle brackets are used).
    pub uri: String,
    /// The `tag` parameter (From/To only).
    pub tag: Option<String>,
}

/// The first via-parm of a Via value `s`, which lies in `src`: the
/// canonical form read by [`fast::via`], anything else by ezk.
fn parse_via(src: &Bytes, s: &str) -> Result<Via, ParseError> {
    fast::via(s).map_or_else(|| parse_via_ezk(src, s), Ok)
}

/// [`parse_via`] by ezk alone: the reading the fast path must agree with.
fn parse_via_ezk(src: &Bytes, s: &str) -> Result<Via, ParseError> {
    let (rest, via) = EzkVia::parse(src, s).map_err(|_| ParseError::BadHeader("Via"))?;
    let rest = rest.trim_start();
    if !(rest.is_empty() || rest.starts_with(',')) {
        return Err(ParseError::BadHeader("Via"));
    }
    // sent-by is taken from the text (ezk's printer drops nothing here, but the raw form is exact).
    let after_proto = s
        .split_once('/')
        .and_then(|(_, r)| r.split_once('/'))
        .map(|(_, r)| r);
    let sent_by = after_proto
        .map(|r| {
            r.trim_start()
                .trim_start_matches(|c: char| c != ' ' && c != '\t')
        })
        .map(|r| {
            r.trim_start()
                .split(|c: char| c == ';' || c == ',' || c.is_whitespace())
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .unwrap_or_default();
    if sent_by.is_empty() {
        return Err(ParseError::BadHeader("Via"));
    }
    Ok(Via {
        transport: via.transport.to_string().to_ascii_uppercase(),
        sent_by,
        branch: via.params.get_val("branch").map(|b| b.to_string()),
        received: via.params.get_val("received").map(|b| b.to_string()),
        rport: via.params.get_val("rport").map(|b| b.to_string()),
    })
}

/// Extracts the URI and display name from a name-addr / addr-spec (the part ezk validated).
fn split_name_addr(value: &str) -> Option<(Option<String>, String)> {
    let v = value.trim();
    let mut display = None;
    let mut rest = v;
    if let Some(q) = v.strip_prefix('"') {
        // quoted display name with backslash escapes
        let mut end = None;
        let mut escaped = false;
        for (i, c) in q.char_indices() {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                end = Some(i);
                break;
            }
        }
        // An unterminated quoted string is malformed (RFC 4475 3.1.2.6).
        let e = end?;
        display = Some(q[..e].to_owned());
        rest = &q[e + 1..];
    }
    if let Some(lt) = rest.find('<') {
        let name = rest[..lt].trim();
        if display.is_none() && !name.is_empty() {
            display = Some(name.to_owned());
        }
        let inner = &rest[lt + 1..];
        let (uri, _) = inner.split_once('>')?;
        Some((display, uri.trim().to_owned()))
    } else {
        Some((
            display,
            rest.split(';').next().unwrap_or_default().trim().to_owned(),
        ))
    }
}

/// A From or To value `s`, which lies in `src`: the canonical form read
/// by [`fast::from_to`], anything else by ezk.
fn parse_from_to(src: &Bytes, s: &str, which: &'static str) -> Result<NameAddr, ParseError> {
    fast::from_to(s).map_or_else(|| parse_from_to_ezk(src, s, which), Ok)
}

/// [`parse_from_to`] by ezk alone: the reading the fast path must agree with.
fn parse_from_to_ezk(src: &Bytes, s: &str, which: &'static str) -> Result<NameAddr, ParseError> {
    let (display_name, uri) = split_name_addr(s).ok_or(ParseError::BadHeader(which))?;
    let tag = match FromTo::parse(src, s) {
        Ok((rest, ft)) if rest.trim().is_empty() => ft.tag.map(|t| t.to_string()),
        // ezk cannot read an escaped quote in a display name: fall back to our own tag scan.
        _ if uri.starts_with("sip:") || uri.starts_with("sips:") || uri.contains(':') => {
            let after = s.rsplit_once('>').map(|(_, r)| r).unwrap_or(s);
            after
                .split(';')
                .skip(1)
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("tag"))
                .map(|(_, v)| v.trim().to_owned())
        }
        _ => return Err(ParseError::BadHeader(which)),
    };
    if uri.is_empty() {
        return Err(ParseError::BadHeader(which));
    }
    Ok(NameAddr {
        display_name,
        uri,
        tag,
    })
}

fn parse_cseq(value: &str) -> Result<(u32, Method), ParseError> {
    let mut it = value.split_whitespace();
    let (Some(n), Some(m), None) = (it.next(), it.next(), it.next()) else {
        return Err(ParseError::BadHeader("CSeq"));
    };
    if !n.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::BadHeader("CSeq"));
    }
    // RFC 3261 8.1.1.5: less than 2**31.
    let n: u32 = n.parse().map_err(|_| ParseError::BadHeader("CSeq"))?;
    if n >= 1 << 31 {
        return Err(ParseError::BadHeader("CSeq"));
    }
    let m = Method::parse(m).ok_or(ParseError::BadHeader("CSeq"))?;
    Ok((n, m))
}

/// The first Contact value of a Contact header `s`, which lies in `src`:
/// the canonical form read by [`fast::contact`], anything else by ezk.
fn parse_contact(src: &Bytes, s: &str) -> Result<Option<NameAddr>, ParseError> {
    fast::contact(s).map_or_else(|| parse_contact_ezk(src, s), Ok)
}

/// [`parse_contact`] by ezk alone: the reading the fast path must agree with.
fn parse_contact_ezk(src: &Bytes, s: &str) -> Result<Option<NameAddr>, ParseError> {
    if s.trim() == "*" {
        return Ok(Some(NameAddr {
            display_name: None,
            uri: "*".into(),
            tag: None,
        }));
    }
    if EzkContact::parse(src, s).is_err() {
        return Err(ParseError::BadHeader("Contact"));
    }
    let (display_name, uri) = split_name_addr(s).ok_or(ParseError::BadHeader("Contact"))?;
    Ok(Some(NameAddr {
        display_name,
        uri,
        tag: None,
    }))
}

/// A strict reading of the canonical Via, From, To and Contact values that
/// peers (and our own roles) send, tried before ezk: ezk's nom parsers
/// build an error, with allocations, for every alternative they try (IPv6
/// reference, IPv4, hostname; quoted or plain values), about a quarter of
/// an MC server's allocations at 10,000 members (issue 13).
///
/// The rule that keeps it safe: a function here returns `Some` only for
/// text that ezk reads as `Ok` with the very same value, and `None`
/// whenever it is not sure (whitespace inside a value, quotes in
/// parameters, escapes, IPv6, a hostname beginning with a digit,
/// passwords, URI headers, empty names or values…). `None` hands the text
/// to ezk, so every error and every unusual form reads exactly as before.
/// tests/fast_path.rs checks the agreement on generated and mutated values.
mod fast {
    use std::net::Ipv4Addr;

    use super::{NameAddr, Via, is_token_byte};

    /// Token octets but `%` (ezk decodes escapes in parameter names and values).
    fn plain(b: u8) -> bool {
        b != b'%' && is_token_byte(b)
    }

    /// Octets at the start of `s` that pass `f`.
    fn run(s: &str, f: impl Fn(u8) -> bool) -> usize {
        s.bytes().position(|b| !f(b)).unwrap_or(s.len())
    }

    /// `host[:port]` at the start of `s`, where ezk's reading is certain; the rest.
    fn host_port(s: &str) -> Option<&str> {
        let n = run(s, |b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        let (host, rest) = s.split_at_checked(n)?;
        match host.bytes().next()? {
            // ezk tries an IPv4 address before a hostname and keeps the
            // first that reads: only a dotted quad std reads is certain.
            b'0'..=b'9' => {
                host.parse::<Ipv4Addr>().ok()?;
            }
            // Labels of letters, digits and inner `-`, one final `.` allowed.
            b if b.is_ascii_alphabetic() => {
                let labels = host.strip_suffix('.').unwrap_or(host);
                // Split as octets: a char pattern costs more than the check.
                if labels
                    .as_bytes()
                    .split(|&b| b == b'.')
                    .any(|l| l.is_empty() || l.first() == Some(&b'-') || l.last() == Some(&b'-'))
                {
                    return None;
                }
            }
            _ => return None,
        }
        let Some(port) = rest.strip_prefix(':') else {
            return Some(rest);
        };
        let (digits, rest) = port.split_at_checked(run(port, |b| b.is_ascii_digit()))?;
        digits.parse::<u16>().ok()?;
        Some(rest)
    }

    /// `;name[=value]` parameters of plain tokens at the start of `s`, each
    /// handed to `each` (names as written: ezk compares them exactly); the rest.
    fn params<'a>(
        mut s: &'a str,
        mut each: impl FnMut(&'a str, Option<&'a str>),
    ) -> Option<&'a str> {
        while let Some(p) = s.strip_prefix(';') {
            let (name, after) = p.split_at_checked(run(p, plain))?;
            if name.is_empty() {
                return None;
            }
            let (value, after) = match after.strip_prefix('=') {
                Some(v) => {
                    let (value, after) = v.split_at_checked(run(v, plain))?;
                    if value.is_empty() {
                        return None;
                    }
                    (Some(value), after)
                }
                None => (None, after),
            };
            each(name, value);
            s = after;
        }
        Some(s)
    }

    /// The first value of parameter `name` as ezk's `get_val` gives it:
    /// the first parameter of that name decides, `None` if it has no value.
    fn first<'a>(slot: &mut Option<Option<&'a str>>, value: Option<&'a str>) {
        if slot.is_none() {
            *slot = Some(value);
        }
    }

    /// Past `user@` at the start of `s` (after the scheme), or `s` itself
    /// if there is no user part. A user part is letters, digits, marks and
    /// escaped ASCII octets (which decode to the UTF-8 ezk requires);
    /// `user:password@` and an empty user are left to ezk.
    ///
    /// Without a user part, ezk's longer run of user characters (`;`, `?`,
    /// `/`, `,` too) may still reach an `@`; no reading here accepts an `@`
    /// after this point, so such text is never taken.
    fn user(s: &str) -> Option<&str> {
        let b = s.as_bytes();
        let mut i = 0;
        while let Some(&c) = b.get(i) {
            if c == b'%' {
                match (b.get(i + 1), b.get(i + 2)) {
                    (Some(b'0'..=b'7'), Some(l)) if l.is_ascii_hexdigit() => i += 3,
                    _ => return None,
                }
            } else if c.is_ascii_alphanumeric() || b"-_.!~*'()&=+$".contains(&c) {
                i += 1;
            } else {
                break;
            }
        }
        match b.get(i) {
            Some(b'@') if i > 0 => s.get(i + 1..),
            // `host:port` unless an `@` follows (a password).
            Some(b':') if s.get(i..)?.contains('@') => None,
            Some(b'@') => None,
            _ => Some(s),
        }
    }

    /// `sip:` or `sips:` (as ezk reads them, without case) then user and
    /// `host[:port]`; the rest.
    fn addr_spec(s: &str) -> Option<&str> {
        let after = s.strip_prefix("sip:").or_else(|| s.strip_prefix("sips:"))?;
        host_port(user(after)?)
    }

    /// A name-addr or addr-spec at the start of a value.
    struct Addr<'a> {
        /// As mcx-sip's `split_name_addr` gives it.
        display: Option<&'a str>,
        /// Between `<` and `>`, or the addr-spec without parameters.
        uri: &'a str,
        /// After `>`, or the parameters after an addr-spec.
        rest: &'a str,
        /// An addr-spec, without `<>`.
        bare: bool,
    }

    /// `"display" <uri>`, `display <uri>`, `<uri>` or `uri` at the start of `s`.
    fn name_addr(s: &str) -> Option<Addr<'_>> {
        let (display, bracketed) = if let Some(q) = s.strip_prefix('"') {
            // A quoted name without escapes: ezk's quoted-string reading
            // stops at a backslash's quote, and `""` is read otherwise.
            let (name, after) = q.split_once('"')?;
            if name.is_empty() || name.contains('\\') {
                return None;
            }
            (Some(name), after.trim_start_matches(' '))
        } else if s.starts_with('<') {
            (None, s)
        } else if s.starts_with("sip:") || s.starts_with("sips:") {
            // An addr-spec: its parameters are the header's.
            let rest = addr_spec(s)?;
            let uri = s.get(..s.len() - rest.len())?;
            return Some(Addr {
                display: None,
                uri,
                rest,
                bare: true,
            });
        } else {
            // Tokens and spaces up to `<`.
            let (name, after) = s.split_at_checked(run(s, |b| is_token_byte(b) || b == b' '))?;
            let name = name.trim_end_matches(' ');
            if name.is_empty() || name.starts_with(' ') {
                return None;
            }
            (Some(name), after)
        };
        let inner = bracketed.strip_prefix('<')?;
        let end = params(addr_spec(inner)?, |_, _| {})?;
        let rest = end.strip_prefix('>')?;
        Some(Addr {
            display,
            uri: inner.get(..inner.len() - end.len())?,
            rest,
            bare: false,
        })
    }

    /// A Via value's first via-parm: `SIP/2.0/<transport> <host>[:<port>]`
    /// then parameters, then the end or `,`.
    pub(super) fn via(s: &str) -> Option<Via> {
        let rest = s.strip_prefix("SIP/2.0/")?;
        let (transport, rest) = rest.split_at_checked(run(rest, |b| b.is_ascii_alphanumeric()))?;
        let host = rest.trim_start_matches(' ');
        if transport.is_empty() || host.len() == rest.len() {
            return None;
        }
        let after = host_port(host)?;
        let (mut branch, mut received, mut rport) = (None, None, None);
        let end = params(after, |name, value| match name {
            "branch" => first(&mut branch, value),
            "received" => first(&mut received, value),
            "rport" => first(&mut rport, value),
            _ => {}
        })?;
        if !(end.is_empty() || end.starts_with(',')) {
            return None;
        }
        let owned = |v: Option<Option<&str>>| v.flatten().map(str::to_owned);
        Some(Via {
            transport: transport.to_ascii_uppercase(),
            sent_by: host.get(..host.len() - after.len())?.to_owned(),
            branch: owned(branch),
            received: owned(received),
            rport: owned(rport),
        })
    }

    /// A From or To value: a name-addr or addr-spec, then parameters to the end.
    pub(super) fn from_to(s: &str) -> Option<NameAddr> {
        let a = name_addr(s)?;
        let mut tag = None;
        let end = params(a.rest, |name, value| {
            if name == "tag" {
                first(&mut tag, value);
            }
        })?;
        if !end.is_empty() {
            return None;
        }
        Some(NameAddr {
            display_name: a.display.map(str::to_owned),
            uri: a.uri.to_owned(),
            tag: tag.flatten().map(str::to_owned),
        })
    }

    /// A Contact value's first contact: after a `>` ezk and mcx-sip read
    /// nothing more (quoted feature tags and further values are fine); an
    /// addr-spec must be followed by plain parameters to the end.
    pub(super) fn contact(s: &str) -> Option<Option<NameAddr>> {
        let a = name_addr(s)?;
        if a.bare && !params(a.rest, |_, _| {})?.is_empty() {
            return None;
        }
        Some(Some(NameAddr {
            display_name: a.display.map(str::to_owned),
            uri: a.uri.to_owned(),
            tag: None,
        }))
    }

    /// A whole `sip:`/`sips:` URI (a Request-URI) read as inside a
    /// name-addr: user, `host[:port]`, plain parameters, nothing after.
    pub(super) fn sip_uri(s: &str) -> Option<()> {
        params(addr_spec(s)?, |_, _| {})?.is_empty().then_some(())
    }
}

/// The fast path and ezk's reading of a typed header value side by side,
/// for the differential test (tests/fast_path.rs) and fuzz target
/// (`sip_fast_path`): not part of mcx-sip's API.
#[doc(hidden)]
pub mod differential {
    use bytesstr::BytesStr;

    use super::{NameAddr, Via, fast};
    use crate::error::ParseError;

    /// The three readings of one value.
    #[derive(Debug)]
    pub struct Readings<T> {
        /// The fast path's, `None` when it leaves the value to ezk.
        pub fast: Option<T>,
        /// ezk's alone (the reading before the fast path existed).
        pub ezk: Result<T, ParseError>,
        /// What a message's accessor gives: fast path, else ezk.
        pub public: Result<T, ParseError>,
    }

    /// Reads `s` as received text (in a buffer of its own, as ezk wants).
    fn read<T>(
        s: &str,
        fast: impl Fn(&str) -> Option<T>,
        read: impl Fn(&bytes::Bytes, &str, bool) -> Result<T, ParseError>,
    ) -> Readings<T> {
        let src = BytesStr::from(s);
        Readings {
            fast: fast(src.as_str()),
            ezk: read(src.as_ref(), src.as_str(), false),
            public: read(src.as_ref(), src.as_str(), true),
        }
    }

    /// A top Via value.
    pub fn via(s: &str) -> Readings<Via> {
        read(s, fast::via, |src, s, public| {
            if public {
                super::parse_via(src, s)
            } else {
                super::parse_via_ezk(src, s)
            }
        })
    }

    /// A From (or To) value.
    pub fn from_to(s: &str) -> Readings<NameAddr> {
        read(s, fast::from_to, |src, s, public| {
            if public {
                super::parse_from_to(src, s, "From")
            } else {
                super::parse_from_to_ezk(src, s, "From")
            }
        })
    }

    /// A Request-URI (or any URI a message carries where a URI is checked).
    pub fn uri(s: &str) -> Readings<()> {
        read(s, fast::sip_uri, |src, s, public| {
            if public {
                super::validate_uri_in(Some(src), s)
            } else {
                super::validate_uri_in_ezk(Some(src), s)
            }
        })
    }

    /// A Contact value.
    pub fn contact(s: &str) -> Readings<Option<NameAddr>> {
        read(s, fast::contact, |src, s, public| {
            if public {
                super::parse_contact(src, s)
            } else {
                super::parse_contact_ezk(src, s)
            }
        })
    }
}

/// Typed getters shared by requests and responses.
macro_rules! common_accessors {
    () => {
        /// All headers.
        pub fn headers(&self) -> &Headers {
            &self.headers
        }
        /// All headers, mutable (values are checked by [`Headers::push`]/[`Headers::set`]).
        pub fn headers_mut(&mut self) -> &mut Headers {
            &mut self.headers
        }
        /// First raw value of any header, e.g. [`crate::headers::RESOURCE_PRIORITY`].
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name)
        }
        /// The body (octets after the head, exactly Content-Length of them).
        pub fn body(&self) -> &Bytes {
            &self.body
        }
        /// The Call-ID.
        pub fn call_id(&self) -> Result<&str, ParseError> {
            let v = self
                .headers
                .value_of(Known::CallId)
                .ok_or(ParseError::MissingHeader("Call-ID"))?;
            if v.is_empty() || has_whitespace(v) {
                return Err(ParseError::BadHeader("Call-ID"));
            }
            Ok(v)
        }
        /// CSeq number and method.
        pub fn cseq(&self) -> Result<(u32, Method), ParseError> {
            self.headers.cseq()
        }
        /// The first (top-most) Via value.
        pub fn top_via(&self) -> Result<Via, ParseError> {
            self.headers.via().clone()
        }
        /// The From header.
        pub fn from(&self) -> Result<NameAddr, ParseError> {
            self.headers.from().clone()
        }
        /// The To header.
        pub fn to(&self) -> Result<NameAddr, ParseError> {
            self.headers.to().clone()
        }
        /// The first Contact value, if any.
        pub fn contact(&self) -> Result<Option<NameAddr>, ParseError> {
            self.headers.contact().clone()
        }
        /// The top Via as parsed once and kept, borrowed: what to read
        /// (or check) without copying its strings.
        pub fn top_via_ref(&self) -> Result<&Via, ParseError> {
            self.headers.via().as_ref().map_err(Clone::clone)
        }
        /// The From header as parsed once and kept, borrowed.
        pub fn from_ref(&self) -> Result<&NameAddr, ParseError> {
            self.headers.from().as_ref().map_err(Clone::clone)
        }
        /// The To header as parsed once and kept, borrowed.
        pub fn to_ref(&self) -> Result<&NameAddr, ParseError> {
            self.headers.to().as_ref().map_err(Clone::clone)
        }
        /// The first Contact value as parsed once and kept, borrowed.
        pub fn contact_ref(&self) -> Result<Option<&NameAddr>, ParseError> {
            match self.headers.contact() {
                Ok(c) => Ok(c.as_ref()),
                Err(e) => Err(e.clone()),
            }
        }
        /// The Content-Type value (with parameters), if any.
        pub fn content_type(&self) -> Option<&str> {
            self.headers.value_of(Known::ContentType)
        }
        /// Max-Forwards, if present.
        pub fn max_forwards(&self) -> Result<Option<u8>, ParseError> {
            match self.headers.value_of(Known::MaxForwards) {
                None => Ok(None),
                Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => v
                    .parse()
                    .map(Some)
                    .map_err(|_| ParseError::BadHeader("Max-Forwards")),
                Some(_) => Err(ParseError::BadHeader("Max-Forwards")),
            }
        }
        /// Replaces the body and its Content-Type (`None` removes Content-Type).
        pub fn set_body(
            &mut self,
            content_type: Option<&str>,
            body: Bytes,
        ) -> Result<(), BuildError> {
            match content_type {
                Some(ct) => self.headers.set("Content-Type", ct)?,
                None => self.headers.remove("Content-Type"),
            }
            self.body = body;
            Ok(())
        }
    };
}

impl Headers {
    /// The top Via, parsed once.
    pub(crate) fn via(&self) -> &Result<Via, ParseError> {
        self.parsed.values().via.get_or_init(|| {
            let e = self
                .first(Known::Via)
                .ok_or(ParseError::MissingHeader("Via"))?;
            self.with_source(e, parse_via)
        })
    }
    /// From, parsed once.
    pub(crate) fn from(&self) -> &Result<NameAddr, ParseError> {
        self.parsed.values().from.get_or_init(|| {
            let e = self
                .first(Known::From)
                .ok_or(ParseError::MissingHeader("From"))?;
            self.with_source(e, |src, s| parse_from_to(src, s, "From"))
        })
    }
    /// To, parsed once.
    pub(crate) fn to(&self) -> &Result<NameAddr, ParseError> {
        self.parsed.values().to.get_or_init(|| {
            let e = self
                .first(Known::To)
                .ok_or(ParseError::MissingHeader("To"))?;
            self.with_source(e, |src, s| parse_from_to(src, s, "To"))
        })
    }
    /// CSeq number and method, parsed once.
    pub(crate) fn cseq(&self) -> Result<(u32, Method), ParseError> {
        self.parsed
            .values()
            .cseq
            .get_or_init(|| {
                parse_cseq(
                    self.value_of(Known::CSeq)
                        .ok_or(ParseError::MissingHeader("CSeq"))?,
                )
            })
            .clone()
    }
    /// The first Contact, parsed once.
    pub(crate) fn contact(&self) -> &Result<Option<NameAddr>, ParseError> {
        self.parsed
            .values()
            .contact
            .get_or_init(|| match self.first(Known::Contact) {
                Some(e) => self.with_source(e, parse_contact),
                None => Ok(None),
            })
    }
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub(crate) method: Method,
    pub(crate) uri: BytesStr,
    pub(crate) headers: Headers,
    pub(crate) body: Bytes,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub(crate) status: StatusCode,
    pub(crate) reason: BytesStr,
    pub(crate) headers: Headers,
    pub(crate) body: Bytes,
}

impl Request {
    /// Records where the request came from in its top Via, as a server
    /// transport does (RFC 3261 18.2.1 `received`, RFC 3581 `rport`):
    /// any `received` or `rport` the sender wrote is replaced, so that the
    /// pair names the transport source, not a claim.
    ///
    /// # Errors
    /// [`BuildError`] if the request has no Via or `host` is not a token.
    pub fn stamp_received(&mut self, host: &str, port: u16) -> Result<(), BuildError> {
        if host.is_empty() || !host.chars().all(|c| is_token_char(c) || c == ':') {
            return Err(BuildError::Malformed("received host"));
        }
        let pos = self
            .headers
            .entries
            .iter()
            .position(|e| e.known == Known::Via)
            .ok_or(BuildError::Malformed("no Via to stamp"))?;
        let value = self.headers.text(self.headers.entries[pos].value);
        // Only the first via-parm of the first Via line.
        let (first, rest) = match value.find(',') {
            Some(i) => (&value[..i], &value[i..]),
            None => (value, ""),
        };
        let mut parts = first.split(';');
        let mut out = String::with_capacity(value.len() + host.len() + 22);
        out.push_str(parts.next().unwrap_or_default().trim_end());
        for p in parts {
            let name = p.split('=').next().unwrap_or_default().trim();
            if !name.eq_ignore_ascii_case("received") && !name.eq_ignore_ascii_case("rport") {
                out.push(';');
                out.push_str(p.trim());
            }
        }
        // An IPv6 address goes in brackets only in sent-by, not here.
        out.push_str(";received=");
        out.push_str(host);
        out.push_str(";rport=");
        out.push_str(Decimal::new(port.into()).as_str());
        out.push_str(rest);
        self.headers.replace_value(pos, &out);
        self.headers.via_changed(None);
        Ok(())
    }

    /// The top Via's `branch` parameter as written, read from the text
    /// without parsing the Via: what a sending link keeps when it replaces
    /// the Via with [`Request::set_top_via`]. `None` without a Via or a
    /// branch.
    pub fn top_via_branch(&self) -> Option<&str> {
        let first = self.headers.value_of(Known::Via)?.split(',').next()?;
        first
            .split(';')
            .skip(1)
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("branch"))
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Replaces the top via-parm by `SIP/2.0/<transport> <sent_by>;branch=<branch>`
    /// (RFC 3261 18.1.1: a sending transport names itself), keeping any
    /// further via-parms and Via lines. The new top Via is known as it is
    /// written: [`Request::top_via`] does not parse it again.
    ///
    /// # Errors
    /// [`BuildError`] if the request has no Via or a part is not a token
    /// (empty, or with whitespace, `;`, `,`, `<`, `>`, `"`).
    pub fn set_top_via(
        &mut self,
        transport: &str,
        sent_by: &str,
        branch: &str,
    ) -> Result<(), BuildError> {
        self.write_top_via(transport, sent_by, branch.to_owned())
    }

    /// [`Request::set_top_via`] keeping the top Via's own branch: what a
    /// transport does to the Via its user wrote (no copy of the branch
    /// for the caller to hand back).
    ///
    /// # Errors
    /// As [`Request::set_top_via`]; [`BuildError::Malformed`] if the top
    /// Via has no branch.
    pub fn set_top_via_sent_by(
        &mut self,
        transport: &str,
        sent_by: &str,
    ) -> Result<(), BuildError> {
        let branch = self
            .top_via_branch()
            .ok_or(BuildError::Malformed("no Via branch"))?
            .to_owned();
        self.write_top_via(transport, sent_by, branch)
    }

    /// Writes the top via-parm straight into the message's own text (no
    /// intermediate value) and records it as the parsed top Via.
    fn write_top_via(
        &mut self,
        transport: &str,
        sent_by: &str,
        branch: String,
    ) -> Result<(), BuildError> {
        // Checked in the order the parts are written.
        check_nonempty_token(transport, "Via transport")?;
        check_nonempty_token(sent_by, "Via sent-by")?;
        check_nonempty_token(&branch, "Via branch")?;
        let pos = self
            .headers
            .entries
            .iter()
            .position(|e| e.known == Known::Via)
            .ok_or(BuildError::Malformed("no Via to replace"))?;
        let transport = if transport.bytes().any(|b| b.is_ascii_lowercase()) {
            transport.to_ascii_uppercase()
        } else {
            transport.to_owned()
        };
        // Further via-parms of the same line (rare) are kept: copied out
        // before the own buffer, which may hold the old value, grows.
        let rest = self
            .headers
            .text(self.headers.entries[pos].value)
            .split_once(',')
            .map(|(_, rest)| rest.trim().to_owned());
        let own = &mut self.headers.own;
        let start = own.len();
        for part in ["SIP/2.0/", &transport, " ", sent_by, ";branch=", &branch] {
            own.push_str(part);
        }
        if let Some(rest) = &rest {
            own.push_str(", ");
            own.push_str(rest);
        }
        let end = own.len();
        self.headers.entries[pos].value = Text::Own(start, end);
        self.headers.via_changed(Some(Via {
            transport,
            sent_by: sent_by.to_owned(),
            branch: Some(branch),
            received: None,
            rport: None,
        }));
        Ok(())
    }

    /// The transport source a receiving link recorded with
    /// [`Request::stamp_received`]: `received:rport` (IPv6 in brackets).
    pub fn source(&self) -> Option<String> {
        let via = self.headers.via().as_ref().ok()?;
        let (host, port) = (via.received.as_ref()?, via.rport.as_ref()?);
        Some(if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        })
    }
    /// A request with no headers; add them with [`Request::headers_mut`] or use [`Request::builder`].
    pub fn new(method: Method, uri: &str) -> Result<Self, BuildError> {
        check_request_uri(uri)?;
        Ok(Self {
            method,
            uri: BytesStr::from(uri),
            headers: Headers::default(),
            body: Bytes::new(),
        })
    }
    /// Starts a [`RequestBuilder`].
    pub fn builder(method: Method, uri: &str) -> RequestBuilder {
        RequestBuilder::new(method, uri)
    }
    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }
    /// The Request-URI as text.
    pub fn uri(&self) -> &str {
        &self.uri
    }
    common_accessors!();

    /// Octets of the request line, CRLF included.
    fn start_len(&self) -> usize {
        self.method.as_str().len() + 1 + self.uri.len() + " SIP/2.0\r\n".len()
    }
    /// Serialises; Content-Length is always written and computed from the body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.start_len() + rest_len(&self.headers, &self.body));
        for part in [self.method.as_str(), " ", &self.uri, " SIP/2.0\r\n"] {
            out.extend_from_slice(part.as_bytes());
        }
        encode_rest(&self.headers, &self.body, out);
    }
    /// [`Request::encode`] into a new vector, allocated once at its size.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut v);
        v
    }
}

impl Response {
    /// A response with the default reason phrase and no headers.
    pub fn new(status: StatusCode) -> Result<Self, BuildError> {
        if !(100..700).contains(&status.0) {
            return Err(BuildError::Malformed("status code"));
        }
        Ok(Self {
            status,
            reason: BytesStr::from_static(status.reason().unwrap_or("Unknown")),
            headers: Headers::default(),
            body: Bytes::new(),
        })
    }
    /// A response to `req` (RFC 3261 8.2.6.2): copies every Via, From, To, Call-ID and CSeq;
    /// adds `to_tag` to To if To has none (not for 100 Trying, which needs none).
    ///
    /// The copied lines are not validated again: they were when `req` was
    /// parsed or built. Lines of a received request share its head; the
    /// top Via and From it has parsed are the response's too.
    pub fn for_request(
        req: &Request,
        status: StatusCode,
        to_tag: Option<&str>,
    ) -> Result<Self, BuildError> {
        let mut r = Self::new(status)?;
        if let Some(tag) = to_tag {
            check_nonempty_token(tag, "tag")?;
        }
        let from = &req.headers;
        let h = &mut r.headers;
        h.shared = from.shared.clone();
        h.entries.reserve(6);
        let mut to_changed = false;
        for e in &from.entries {
            if !matches!(
                e.known,
                Known::Via | Known::From | Known::To | Known::CallId | Known::CSeq
            ) {
                continue;
            }
            let name = Text::Static(e.known.full_name().unwrap_or_default());
            match e.known {
                Known::Via | Known::From | Known::CallId | Known::CSeq => {
                    let value = match e.value {
                        Text::Own(..) => h.own_text(from.text(e.value)),
                        shared_or_static => shared_or_static,
                    };
                    h.entries.push(Entry {
                        known: e.known,
                        name,
                        value,
                    });
                }
                Known::To => {
                    let value = from.text(e.value);
                    let has_tag = match from.to() {
                        Ok(to) => to.tag.is_some(),
                        Err(_) => false,
                    };
                    let value = match to_tag {
                        Some(tag) if !has_tag => {
                            to_changed = true;
                            let start = h.own.len();
                            h.own.reserve(value.len() + 5 + tag.len());
                            h.own.push_str(value);
                            h.own.push_str(";tag=");
                            h.own.push_str(tag);
                            Text::Own(start, h.own.len())
                        }
                        _ => match e.value {
                            Text::Own(..) => h.own_text(value),
                            shared_or_static => shared_or_static,
                        },
                    };
                    h.entries.push(Entry {
                        known: Known::To,
                        name,
                        value,
                    });
                }
                _ => {}
            }
        }
        // The same Via and From lines: what the request parsed holds here.
        if let Some(parsed) = from.parsed.0.get() {
            let values = ParsedValues {
                via: parsed.via.clone(),
                from: parsed.from.clone(),
                to: if to_changed {
                    OnceLock::new()
                } else {
                    parsed.to.clone()
                },
                contact: OnceLock::new(),
                cseq: parsed.cseq.clone(),
            };
            h.parsed = Parsed(OnceLock::from(Arc::new(values)));
        }
        Ok(r)
    }
    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }
    /// The reason phrase.
    pub fn reason(&self) -> &str {
        &self.reason
    }
    /// Replaces the reason phrase.
    pub fn set_reason(&mut self, reason: &str) -> Result<(), BuildError> {
        check_value(reason, "reason phrase")?;
        self.reason = BytesStr::from(reason);
        Ok(())
    }
    common_accessors!();

    /// Octets of the status line, CRLF included.
    fn start_len(&self) -> usize {
        "SIP/2.0 NNN ".len() + self.reason.len() + 2
    }
    /// Serialises; Content-Length is always written and computed from the body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.start_len() + rest_len(&self.headers, &self.body));
        out.extend_from_slice(b"SIP/2.0 ");
        out.extend_from_slice(Decimal::new(self.status.0.into()).as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.reason.as_bytes());
        out.extend_from_slice(b"\r\n");
        encode_rest(&self.headers, &self.body, out);
    }
    /// [`Response::encode`] into a new vector, allocated once at its size.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut v);
        v
    }
}

/// A number in decimal, written without allocating.
pub(crate) struct Decimal {
    digits: [u8; 20],
    start: usize,
}

impl Decimal {
    pub(crate) fn new(mut n: u64) -> Self {
        let mut digits = [b'0'; 20];
        let mut start = digits.len();
        while start > 0 {
            start -= 1;
            digits[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        Self { digits, start }
    }
    fn as_bytes(&self) -> &[u8] {
        self.digits.get(self.start..).unwrap_or_default()
    }
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

/// Decimal digits of `n`.
fn decimal_len(n: usize) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// Octets of the header lines, Content-Length, the empty line and the body.
fn rest_len(headers: &Headers, body: &Bytes) -> usize {
    headers.encoded_len() + "Content-Length: \r\n\r\n".len() + decimal_len(body.len()) + body.len()
}

fn encode_rest(headers: &Headers, body: &Bytes, out: &mut Vec<u8>) {
    headers.encode(out);
    out.extend_from_slice(b"Content-Length: ");
    out.extend_from_slice(Decimal::new(body.len() as u64).as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

pub(crate) fn check_request_uri(uri: &str) -> Result<(), BuildError> {
    check_value(uri, "Request-URI")?;
    if uri.is_empty() || has_whitespace(uri) {
        return Err(BuildError::Malformed("Request-URI"));
    }
    validate_uri(uri).map_err(|_| BuildError::Malformed("Request-URI"))
}

/// RFC 3261 19.1 for sip:/sips: (via ezk), `scheme ":" rest` for any other absoluteURI.
pub(crate) fn validate_uri(uri: &str) -> Result<(), ParseError> {
    validate_uri_in(None, uri)
}

/// [`validate_uri`] of a `uri` that lies in `src`, if given: a canonical
/// SIP URI by the fast path (as in From, To and Contact: only what ezk
/// accepts too), anything else by ezk, reading it there instead of a copy.
/// (The ACK and BYE of every member's dialog are built to such a URI.)
pub(crate) fn validate_uri_in(src: Option<&Bytes>, uri: &str) -> Result<(), ParseError> {
    if fast::sip_uri(uri).is_some() {
        return Ok(());
    }
    validate_uri_in_ezk(src, uri)
}

/// [`validate_uri_in`] without the fast path: the reading it must agree with.
fn validate_uri_in_ezk(src: Option<&Bytes>, uri: &str) -> Result<(), ParseError> {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err(ParseError::StartLine);
    };
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok || rest.is_empty() {
        return Err(ParseError::StartLine);
    }
    if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        match src {
            Some(src) => match ezk_sip_types::uri::SipUri::parse(src)(uri) {
                Ok(("", _)) => {}
                _ => return Err(ParseError::StartLine),
            },
            None => {
                ezk_sip_types::uri::SipUri::from_str_checked(uri)?;
            }
        }
    }
    Ok(())
}

/// Either kind of message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

impl Message {
    /// Headers of either kind.
    pub fn headers(&self) -> &Headers {
        match self {
            Self::Request(r) => &r.headers,
            Self::Response(r) => &r.headers,
        }
    }
    /// The body of either kind.
    pub fn body(&self) -> &Bytes {
        match self {
            Self::Request(r) => &r.body,
            Self::Response(r) => &r.body,
        }
    }
    /// Serialises either kind.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Request(r) => r.encode(out),
            Self::Response(r) => r.encode(out),
        }
    }
    /// [`Message::encode`] into a new vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut v);
        v
    }
}

impl From<Request> for Message {
    fn from(r: Request) -> Self {
        Self::Request(r)
    }
}
impl From<Response> for Message {
    fn from(r: Response) -> Self {
        Self::Response(r)
    }
}

/// Hex of caller-supplied random octets: the RNG is injected (STYLE.md section 5).
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 * bytes.len() + 24);
    push_hex(&mut out, bytes);
    out
}

/// Appends lower-case hex of `bytes`: written to a buffer on the stack and
/// appended at once (a `push` per digit cost more than the digits: every
/// member's INVITE and ACK draw a branch, a tag and a Call-ID).
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 64];
    for chunk in bytes.chunks(buf.len() / 2) {
        for (pair, &b) in buf.chunks_exact_mut(2).zip(chunk) {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 0xf)];
        }
        // Hex digits are ASCII: always text.
        out.push_str(core::str::from_utf8(&buf[..2 * chunk.len()]).unwrap_or_default());
    }
}

/// A new branch: the magic cookie plus 64 random bits from the caller's RNG.
pub fn new_branch(random: [u8; 8]) -> String {
    let mut branch = String::with_capacity(MAGIC_COOKIE.len() + 16);
    branch.push_str(MAGIC_COOKIE);
    push_hex(&mut branch, &random);
    branch
}

/// A new From/To tag from 64 random bits.
pub fn new_tag(random: [u8; 8]) -> String {
    hex(&random)
}

/// A new Call-ID (`hex@host`) from 128 random bits.
pub fn new_call_id(random: [u8; 16], host: &str) -> String {
    let mut id = hex(&random);
    id.push('@');
    id.push_str(host);
    id
}

/// Builds a request with the mandatory headers in RFC 3261 order; the first error is kept
/// and returned by [`RequestBuilder::build`].
#[derive(Debug)]
pub struct RequestBuilder {
    req: Result<Request, BuildError>,
}

impl RequestBuilder {
    fn new(method: Method, uri: &str) -> Self {
        let mut req = Request::new(method, uri);
        if let Ok(r) = &mut req {
            // Room for the usual dozen lines: the text is appended to one buffer.
            r.headers.own.reserve(512);
            r.headers.entries.reserve(16);
        }
        Self { req }
    }
    fn with(mut self, f: impl FnOnce(&mut Request) -> Result<(), BuildError>) -> Self {
        if let Ok(r) = &mut self.req {
            if let Err(e) = f(r) {
                self.req = Err(e);
            }
        }
        self
    }
    /// Adds a Via: `SIP/2.0/<transport> <sent_by>;branch=<branch>` (branch must carry the magic cookie).
    pub fn via(self, transport: &str, sent_by: &str, branch: &str) -> Self {
        self.with(|r| {
            check_nonempty_token(transport, "Via transport")?;
            check_nonempty_token(sent_by, "Via sent-by")?;
            check_nonempty_token(branch, "branch")?;
            if !branch.starts_with(MAGIC_COOKIE) {
                return Err(BuildError::Malformed("branch"));
            }
            r.headers.push_written(Known::Via, "Via", |o| {
                o.push_str("SIP/2.0/");
                o.extend(transport.chars().map(|c| c.to_ascii_uppercase()));
                for part in [" ", sent_by, ";branch=", branch] {
                    o.push_str(part);
                }
            });
            Ok(())
        })
    }
    /// Max-Forwards (RFC 3261 8.1.1.6 recommends 70).
    pub fn max_forwards(self, n: u8) -> Self {
        self.with(|r| {
            r.headers
                .push_written(Known::MaxForwards, "Max-Forwards", |o| {
                    o.push_str(Decimal::new(n.into()).as_str());
                });
            Ok(())
        })
    }
    /// Checks a From or To before it is written by [`RequestBuilder::write_addr`].
    fn check_addr(
        name: &'static str,
        display: Option<&str>,
        uri: &str,
        tag: Option<&str>,
    ) -> Result<(), BuildError> {
        check_value(uri, name)?;
        validate_uri(uri).map_err(|_| BuildError::Malformed(name))?;
        if uri.contains(['<', '>', ' ']) {
            return Err(BuildError::Malformed(name));
        }
        if let Some(d) = display {
            check_value(d, "display name")?;
        }
        if let Some(t) = tag {
            check_nonempty_token(t, "tag")?;
        }
        Ok(())
    }
    /// `"display" <uri>;tag=tag` (display name quoted, RFC 3261 25.1 quoted-pair escapes).
    fn write_addr(v: &mut String, display: Option<&str>, uri: &str, tag: Option<&str>) {
        if let Some(d) = display {
            v.push('"');
            for c in d.chars() {
                if c == '"' || c == '\\' {
                    v.push('\\');
                }
                v.push(c);
            }
            v.push_str("\" ");
        }
        v.push('<');
        v.push_str(uri);
        v.push('>');
        if let Some(t) = tag {
            v.push_str(";tag=");
            v.push_str(t);
        }
    }
    /// From, with a display name and a tag.
    pub fn from(self, display: Option<&str>, uri: &str, tag: &str) -> Self {
        self.with(|r| Self::push_addr(r, Known::From, display, uri, Some(tag)))
    }
    /// To, with a tag only inside a dialog.
    pub fn to(self, display: Option<&str>, uri: &str, tag: Option<&str>) -> Self {
        self.with(|r| Self::push_addr(r, Known::To, display, uri, tag))
    }
    /// Checks and appends a From or To. The common form (no display name,
    /// a tag of letters, digits, `-`, `.`) is known as written, so its typed
    /// value is recorded instead of parsed when it is first read; any other
    /// form is parsed then (ezk's reading of quoted names and escapes in tags
    /// is not repeated here).
    fn push_addr(
        r: &mut Request,
        known: Known,
        display: Option<&str>,
        uri: &str,
        tag: Option<&str>,
    ) -> Result<(), BuildError> {
        let name = if known == Known::From { "From" } else { "To" };
        Self::check_addr(name, display, uri, tag)?;
        r.headers.push_written(known, name, |o| {
            Self::write_addr(o, display, uri, tag);
        });
        let plain_tag = tag.is_none_or(|t| {
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
        });
        let first = r.headers.first(known).map(|e| e.value);
        let written = r.headers.entries.last().map(|e| e.value);
        // Only if this line is the first of its name (it is what from()/to() read).
        let is_first =
            matches!((first, written), (Some(Text::Own(a, _)), Some(Text::Own(b, _))) if a == b);
        if display.is_none() && plain_tag && is_first && !uri.contains(char::is_whitespace) {
            r.headers.written_from_to(
                known,
                NameAddr {
                    display_name: None,
                    uri: uri.to_owned(),
                    tag: tag.map(str::to_owned),
                },
            );
        }
        Ok(())
    }
    /// Call-ID.
    pub fn call_id(self, id: &str) -> Self {
        self.with(|r| {
            check_nonempty_token(id, "Call-ID")?;
            r.headers
                .push_written(Known::CallId, "Call-ID", |o| o.push_str(id));
            Ok(())
        })
    }
    /// CSeq with the request's own method.
    pub fn cseq(self, n: u32) -> Self {
        self.with(|r| {
            if n >= 1 << 31 {
                return Err(BuildError::Malformed("CSeq"));
            }
            r.headers.push_cseq(n, &r.method);
            Ok(())
        })
    }
    /// Contact: a full header value such as `<sip:a@b>;+g.3gpp.icsi-ref="…"`.
    pub fn contact(self, value: &str) -> Self {
        self.header("Contact", value)
    }
    /// Any header, checked for CR/LF/NUL.
    pub fn header(self, name: &str, value: &str) -> Self {
        self.with(|r| r.headers.push(name, value))
    }
    /// Body and its Content-Type.
    pub fn body(self, content_type: &str, body: impl Into<Bytes>) -> Self {
        let body = body.into();
        self.with(|r| r.set_body(Some(content_type), body))
    }
    /// Finishes; checks Via, From, To, Call-ID, CSeq and Max-Forwards are present (RFC 3261 8.1.1).
    pub fn build(self) -> Result<Request, BuildError> {
        let r = self.req?;
        for name in ["Via", "From", "To", "Call-ID", "CSeq", "Max-Forwards"] {
            if r.headers.get(name).is_none() {
                return Err(BuildError::Missing(match name {
                    "Via" => "Via",
                    "From" => "From",
                    "To" => "To",
                    "Call-ID" => "Call-ID",
                    "CSeq" => "CSeq",
                    _ => "Max-Forwards",
                }));
            }
        }
        Ok(r)
    }
}

/// Helper so the validation above reads as one call (ezk's `FromStr` is nom-verbose).
trait FromStrChecked: Sized {
    fn from_str_checked(s: &str) -> Result<Self, ParseError>;
}
impl FromStrChecked for ezk_sip_types::uri::SipUri {
    fn from_str_checked(s: &str) -> Result<Self, ParseError> {
        <Self as Parse>::parse_str(s).map_err(|_| ParseError::StartLine)
    }
}

#[cfg(test)]
mod tests {
    use super::{
        CONTROL, KNOWN, Known, NOT_CALL_ID, NOT_PARAM, OCTET_CLASS, has_whitespace, is_token_byte,
        octet_classes,
    };

    /// The splice classes are the per-octet rules they replace: a token
    /// octet but `%`; a token octet or `@`; an ASCII control.
    #[test]
    fn splice_classes_are_the_octet_rules() {
        for b in 0..=255u8 {
            let class = OCTET_CLASS[usize::from(b)];
            let param = is_token_byte(b) && b != b'%';
            assert_eq!(class & NOT_PARAM == 0, param, "{b}");
            assert_eq!(
                class & NOT_CALL_ID == 0,
                is_token_byte(b) || b == b'@',
                "{b}"
            );
            assert_eq!(class & CONTROL != 0, b.is_ascii_control(), "{b}");
        }
        assert_eq!(octet_classes(""), 0);
        assert_eq!(octet_classes("z9hG4bK-1.a"), 0);
        assert_eq!(octet_classes("a%b") & NOT_PARAM, NOT_PARAM);
        assert_eq!(octet_classes("c@h"), NOT_PARAM);
        assert_eq!(octet_classes("<sip:a@b>\r") & CONTROL, CONTROL);
    }

    /// The ASCII shortcut agrees with `char::is_whitespace` on every ASCII
    /// character, and non-ASCII text still goes by character.
    #[test]
    fn whitespace_is_found_as_char_is_whitespace_finds_it() {
        for b in 0..128u8 {
            let s = format!("a{}b", char::from(b));
            assert_eq!(
                has_whitespace(&s),
                char::from(b).is_whitespace(),
                "{b:#04x}"
            );
        }
        assert!(has_whitespace("a\u{2003}b"), "em space");
        assert!(has_whitespace("a\u{a0}b"), "no-break space");
        assert!(!has_whitespace("a\u{e9}b"));
    }

    /// The table is RFC 3261 25.1's `token`: alphanum / "-" / "." / "!" /
    /// "%" / "*" / "_" / "+" / "`" / "'" / "~", and nothing else.
    #[test]
    fn token_bytes_are_rfc_3261_tokens() {
        let rfc: &[u8] =
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~";
        for b in 0..=255u8 {
            assert_eq!(is_token_byte(b), rfc.contains(&b), "octet {b:#04x}");
        }
    }

    /// `Known::full_name` indexes KNOWN by tag: it must list the tags in
    /// declaration order; and every full and compact form maps back.
    #[test]
    fn known_names_map_both_ways() {
        for (k, full, compact) in KNOWN {
            assert_eq!(k.full_name(), Some(full));
            assert_eq!(Known::of(full), k);
            assert_eq!(Known::of(&full.to_ascii_lowercase()), k);
            assert_eq!(Known::of(&full.to_ascii_uppercase()), k);
            if let Some(c) = compact {
                assert_eq!(Known::of(&char::from(c).to_string()), k);
                assert_eq!(
                    Known::of(&char::from(c.to_ascii_uppercase()).to_string()),
                    k
                );
            }
        }
        assert_eq!(Known::Other.full_name(), None);
        assert_eq!(Known::of("Via-X"), Known::Other);
        assert_eq!(Known::of("y"), Known::Other);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod octet_class_tests {
    use super::*;
    use proptest::prelude::*;

    /// The checks as they were written before the octet classes.
    fn token_reference(value: &str) -> Result<(), BuildError> {
        if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return Err(BuildError::IllegalChar("x"));
        }
        if value.is_empty() {
            return Err(BuildError::Empty("x"));
        }
        if value
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, ';' | ',' | '<' | '>' | '"'))
        {
            return Err(BuildError::Malformed("x"));
        }
        Ok(())
    }

    const EDGES: &[&str] = &[
        "",
        "a",
        "z9hG4bK1f",
        " ",
        "\t",
        "\x0b",
        "\x0c",
        "a\rb",
        "a\nb",
        "a\0b",
        "a;b",
        "a,b",
        "<a>",
        "\"a\"",
        "caf\u{e9}",
        "a\u{a0}b",
        "a\u{2003}b",
        "\u{e9};",
        "\u{e9}\r",
    ];

    #[test]
    fn octet_classes_agree_with_the_character_checks_on_edges() {
        for v in EDGES {
            assert_eq!(check_nonempty_token(v, "x"), token_reference(v), "{v:?}");
            assert_eq!(has_whitespace(v), v.contains(char::is_whitespace), "{v:?}");
        }
    }

    #[test]
    fn hex_is_two_lower_case_digits_per_octet() {
        let all: Vec<u8> = (0..=255).collect();
        let expected: String = all.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex(&all), expected);
        assert_eq!(hex(&[]), "");
        assert_eq!(
            new_branch([0xab; 8]),
            format!("{MAGIC_COOKIE}abababababababab")
        );
    }

    proptest! {
        #[test]
        fn octet_classes_agree_with_the_character_checks(v in "\\PC{0,12}|[ -~\t\r\n\u{a0}\u{2003}]{0,12}") {
            prop_assert_eq!(check_nonempty_token(&v, "x"), token_reference(&v));
            prop_assert_eq!(has_whitespace(&v), v.contains(char::is_whitespace));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod cseq_cache_tests {
    use super::*;

    fn invite() -> Request {
        let text = "INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP a:5060;branch=z9hG4bK1\r\n\
                    From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c1\r\nCSeq: 7 INVITE\r\n\
                    Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
        match Message::parse(text.as_bytes()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => unreachable!(),
        }
    }

    /// The CSeq is parsed once and kept, and what is kept follows every
    /// change to the CSeq line.
    #[test]
    fn a_kept_cseq_follows_changes() {
        let mut r = invite();
        assert_eq!(r.cseq().unwrap(), (7, Method::Invite));
        r.headers_mut().set("CSeq", "8 INVITE").unwrap();
        assert_eq!(r.cseq().unwrap(), (8, Method::Invite));
        r.headers_mut().remove("CSeq");
        assert_eq!(r.cseq(), Err(ParseError::MissingHeader("CSeq")));
        r.headers_mut().push("CSeq", "9 BYE").unwrap();
        assert_eq!(r.cseq().unwrap(), (9, Method::Bye));
        let resp = Response::for_request(&r, StatusCode::OK, Some("t")).unwrap();
        assert_eq!(resp.cseq().unwrap(), (9, Method::Bye));
    }
}
