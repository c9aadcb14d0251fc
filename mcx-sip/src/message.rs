//! SIP messages: [`Request`], [`Response`], [`Message`], header access and encoding.
//!
//! Values are kept as text exactly as received (folded lines joined with one space,
//! RFC 3261 7.3.1); typed accessors validate with ezk-sip-types on demand.

use std::fmt;
use std::sync::OnceLock;

use bytes::Bytes;
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

/// RFC 3261 25.1 `token` characters.
pub(crate) fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
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

/// RFC 3261 7.3.3 compact forms (and the RFC 3841 ones) to full names.
fn expand_compact(name: &str) -> &str {
    if name.len() != 1 {
        return name;
    }
    match name.as_bytes()[0].to_ascii_lowercase() {
        b'i' => "Call-ID",
        b'm' => "Contact",
        b'e' => "Content-Encoding",
        b'l' => "Content-Length",
        b'c' => "Content-Type",
        b'f' => "From",
        b's' => "Subject",
        b'k' => "Supported",
        b't' => "To",
        b'v' => "Via",
        b'a' => "Accept-Contact",
        b'j' => "Reject-Contact",
        b'd' => "Request-Disposition",
        b'o' => "Event",
        b'r' => "Refer-To",
        b'b' => "Referred-By",
        b'u' => "Allow-Events",
        b'x' => "Session-Expires",
        _ => name,
    }
}

/// Header names compare case-insensitively, compact forms equal to full ones.
pub(crate) fn names_equal(a: &str, b: &str) -> bool {
    expand_compact(a).eq_ignore_ascii_case(expand_compact(b))
}

/// One header field, kept as text. Header names used in MCPTT are in [`crate::headers`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The name as written (may be a compact form such as `v`).
    pub name: String,
    /// The value, trimmed, folded lines joined with one space.
    pub value: String,
}

/// The ordered header list of a message.
///
/// The typed values the accessors parse (top Via, From, To, Contact) are
/// kept once parsed, so that a message handed from layer to layer is
/// parsed once however often each layer asks; any change to the list
/// drops them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub(crate) Vec<Header>, Parsed);

/// Typed header values parsed on first use (see [`Headers`]), behind one
/// pointer so that a message stays small until it is read. Not part of a
/// message's value: two messages with the same headers are equal whatever
/// each has parsed.
#[derive(Clone, Default)]
pub(crate) struct Parsed(OnceLock<Box<ParsedValues>>);

#[derive(Clone, Default)]
pub(crate) struct ParsedValues {
    via: OnceLock<Result<Via, ParseError>>,
    from: OnceLock<Result<NameAddr, ParseError>>,
    to: OnceLock<Result<NameAddr, ParseError>>,
    contact: OnceLock<Result<Option<NameAddr>, ParseError>>,
}

impl Parsed {
    fn values(&self) -> &ParsedValues {
        self.0.get_or_init(Box::default)
    }
}

impl PartialEq for Parsed {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Parsed {}

impl fmt::Debug for Parsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("..")
    }
}

impl Headers {
    /// Drops the parsed values: the list changed.
    fn changed(&mut self) {
        self.1 = Parsed::default();
    }
    /// Only the top Via changed: From, To and Contact stay parsed; the Via
    /// is `via` if given (known without parsing), else parsed on next use.
    fn via_changed(&mut self, via: Option<Via>) {
        let mut values = std::mem::take(&mut self.1)
            .0
            .into_inner()
            .unwrap_or_default();
        values.via = OnceLock::new();
        if let Some(v) = via {
            let _ = values.via.set(Ok(v));
        }
        self.1 = Parsed(OnceLock::from(values));
    }
    /// All headers in order.
    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }
    /// Raw values of every header with this name (case-insensitive, compact forms match).
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |h| names_equal(&h.name, name))
            .map(|h| h.value.as_str())
    }
    /// The first raw value of a header.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|h| names_equal(&h.name, name))
            .map(|h| h.value.as_str())
    }
    /// Appends a header after checking the name is a token and the value has no CR, LF or NUL.
    pub fn push(&mut self, name: &str, value: &str) -> Result<(), BuildError> {
        check_name(name)?;
        check_value(value, "header value")?;
        self.changed();
        self.0.push(Header {
            name: name.to_owned(),
            value: value.trim().to_owned(),
        });
        Ok(())
    }
    /// Removes every header with this name.
    pub fn remove(&mut self, name: &str) {
        self.changed();
        self.0.retain(|h| !names_equal(&h.name, name));
    }
    /// Replaces every header with this name by one value.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), BuildError> {
        check_name(name)?;
        check_value(value, "header value")?;
        let pos = self.0.iter().position(|h| names_equal(&h.name, name));
        self.remove(name);
        self.changed();
        let h = Header {
            name: name.to_owned(),
            value: value.trim().to_owned(),
        };
        match pos {
            Some(p) if p <= self.0.len() => self.0.insert(p, h),
            _ => self.0.push(h),
        }
        Ok(())
    }
    /// Number of header lines.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// True if there are no headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn push_unchecked(&mut self, name: &str, value: String) {
        self.changed();
        self.0.push(Header {
            name: name.to_owned(),
            value,
        });
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
    if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(BuildError::IllegalChar(what));
    }
    Ok(())
}

fn check_nonempty_token(value: &str, what: &'static str) -> Result<(), BuildError> {
    check_value(value, what)?;
    if value.is_empty() {
        return Err(BuildError::Empty(what));
    }
    if value
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, ';' | ',' | '<' | '>' | '"'))
    {
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

fn parse_via(value: &str) -> Result<Via, ParseError> {
    let src = Bytes::copy_from_slice(value.as_bytes());
    let s = std::str::from_utf8(&src).map_err(|_| ParseError::BadHeader("Via"))?;
    let (rest, via) = EzkVia::parse(&src, s).map_err(|_| ParseError::BadHeader("Via"))?;
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

fn parse_from_to(value: &str, which: &'static str) -> Result<NameAddr, ParseError> {
    let src = Bytes::copy_from_slice(value.as_bytes());
    let s = std::str::from_utf8(&src).map_err(|_| ParseError::BadHeader(which))?;
    let (display_name, uri) = split_name_addr(s).ok_or(ParseError::BadHeader(which))?;
    let tag = match FromTo::parse(&src, s) {
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

/// The first Contact value of a message (`value`: the raw header), if any.
fn parse_contact(value: Option<&str>) -> Result<Option<NameAddr>, ParseError> {
    let Some(v) = value else {
        return Ok(None);
    };
    if v.trim() == "*" {
        return Ok(Some(NameAddr {
            display_name: None,
            uri: "*".into(),
            tag: None,
        }));
    }
    let src = Bytes::copy_from_slice(v.as_bytes());
    let s = std::str::from_utf8(&src).map_err(|_| ParseError::BadHeader("Contact"))?;
    if EzkContact::parse(&src, s).is_err() {
        return Err(ParseError::BadHeader("Contact"));
    }
    let (display_name, uri) = split_name_addr(s).ok_or(ParseError::BadHeader("Contact"))?;
    Ok(Some(NameAddr {
        display_name,
        uri,
        tag: None,
    }))
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
                .get("Call-ID")
                .ok_or(ParseError::MissingHeader("Call-ID"))?;
            if v.is_empty() || v.contains(char::is_whitespace) {
                return Err(ParseError::BadHeader("Call-ID"));
            }
            Ok(v)
        }
        /// CSeq number and method.
        pub fn cseq(&self) -> Result<(u32, Method), ParseError> {
            parse_cseq(
                self.headers
                    .get("CSeq")
                    .ok_or(ParseError::MissingHeader("CSeq"))?,
            )
        }
        /// The first (top-most) Via value.
        pub fn top_via(&self) -> Result<Via, ParseError> {
            self.headers
                .1
                .values()
                .via
                .get_or_init(|| {
                    let v = self
                        .headers
                        .get("Via")
                        .ok_or(ParseError::MissingHeader("Via"))?;
                    parse_via(v)
                })
                .clone()
        }
        /// The From header.
        pub fn from(&self) -> Result<NameAddr, ParseError> {
            self.headers
                .1
                .values()
                .from
                .get_or_init(|| {
                    parse_from_to(
                        self.headers
                            .get("From")
                            .ok_or(ParseError::MissingHeader("From"))?,
                        "From",
                    )
                })
                .clone()
        }
        /// The To header.
        pub fn to(&self) -> Result<NameAddr, ParseError> {
            self.headers
                .1
                .values()
                .to
                .get_or_init(|| {
                    parse_from_to(
                        self.headers
                            .get("To")
                            .ok_or(ParseError::MissingHeader("To"))?,
                        "To",
                    )
                })
                .clone()
        }
        /// The first Contact value, if any.
        pub fn contact(&self) -> Result<Option<NameAddr>, ParseError> {
            self.headers
                .1
                .values()
                .contact
                .get_or_init(|| parse_contact(self.headers.get("Contact")))
                .clone()
        }
        /// The Content-Type value (with parameters), if any.
        pub fn content_type(&self) -> Option<&str> {
            self.headers.get("Content-Type")
        }
        /// Max-Forwards, if present.
        pub fn max_forwards(&self) -> Result<Option<u8>, ParseError> {
            match self.headers.get("Max-Forwards") {
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

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub(crate) method: Method,
    pub(crate) uri: String,
    pub(crate) headers: Headers,
    pub(crate) body: Bytes,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub(crate) status: StatusCode,
    pub(crate) reason: String,
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
            .0
            .iter()
            .position(|h| names_equal(&h.name, "Via"))
            .ok_or(BuildError::Malformed("no Via to stamp"))?;
        let value = &self.headers.0[pos].value;
        // Only the first via-parm of the first Via line.
        let (first, rest) = match value.find(',') {
            Some(i) => (&value[..i], &value[i..]),
            None => (value.as_str(), ""),
        };
        let mut parts = first.split(';');
        let mut out = parts.next().unwrap_or_default().trim_end().to_owned();
        for p in parts {
            let name = p.split('=').next().unwrap_or_default().trim();
            if !name.eq_ignore_ascii_case("received") && !name.eq_ignore_ascii_case("rport") {
                out.push(';');
                out.push_str(p.trim());
            }
        }
        // An IPv6 address goes in brackets only in sent-by, not here.
        out.push_str(&format!(";received={host};rport={port}"));
        out.push_str(rest);
        self.headers.0[pos].value = out;
        self.headers.via_changed(None);
        Ok(())
    }

    /// The top Via's `branch` parameter as written, read from the text
    /// without parsing the Via: what a sending link keeps when it replaces
    /// the Via with [`Request::set_top_via`]. `None` without a Via or a
    /// branch.
    pub fn top_via_branch(&self) -> Option<&str> {
        let first = self.headers.get("Via")?.split(',').next()?;
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
        check_nonempty_token(transport, "Via transport")?;
        check_nonempty_token(sent_by, "Via sent-by")?;
        check_nonempty_token(branch, "Via branch")?;
        let pos = self
            .headers
            .0
            .iter()
            .position(|h| names_equal(&h.name, "Via"))
            .ok_or(BuildError::Malformed("no Via to replace"))?;
        let transport = transport.to_ascii_uppercase();
        let mut value = format!("SIP/2.0/{transport} {sent_by};branch={branch}");
        if let Some((_, rest)) = self.headers.0[pos].value.split_once(',') {
            value.push_str(", ");
            value.push_str(rest.trim());
        }
        self.headers.0[pos].value = value;
        self.headers.via_changed(Some(Via {
            transport,
            sent_by: sent_by.to_owned(),
            branch: Some(branch.to_owned()),
            received: None,
            rport: None,
        }));
        Ok(())
    }

    /// The transport source a receiving link recorded with
    /// [`Request::stamp_received`]: `received:rport` (IPv6 in brackets).
    pub fn source(&self) -> Option<String> {
        let via = self.top_via().ok()?;
        let (host, port) = (via.received?, via.rport?);
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
            uri: uri.to_owned(),
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

    /// Serialises; Content-Length is always written and computed from the body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("{} {} SIP/2.0\r\n", self.method, self.uri).as_bytes());
        encode_rest(&self.headers, &self.body, out);
    }
    /// [`Request::encode`] into a new vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(512 + self.body.len());
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
            reason: status.reason().unwrap_or("Unknown").to_owned(),
            headers: Headers::default(),
            body: Bytes::new(),
        })
    }
    /// A response to `req` (RFC 3261 8.2.6.2): copies every Via, From, To, Call-ID and CSeq;
    /// adds `to_tag` to To if To has none (not for 100 Trying, which needs none).
    pub fn for_request(
        req: &Request,
        status: StatusCode,
        to_tag: Option<&str>,
    ) -> Result<Self, BuildError> {
        let mut r = Self::new(status)?;
        for h in req.headers.iter() {
            if ["Via", "From", "Call-ID", "CSeq"]
                .iter()
                .any(|n| names_equal(&h.name, n))
            {
                r.headers
                    .push_unchecked(expand_compact(&h.name), h.value.clone());
            } else if names_equal(&h.name, "To") {
                let mut value = h.value.clone();
                if let Some(tag) = to_tag {
                    check_nonempty_token(tag, "tag")?;
                    let has_tag = parse_from_to(&value, "To")
                        .map(|t| t.tag.is_some())
                        .unwrap_or(false);
                    if !has_tag {
                        value.push_str(";tag=");
                        value.push_str(tag);
                    }
                }
                r.headers.push_unchecked("To", value);
            }
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
        reason.clone_into(&mut self.reason);
        Ok(())
    }
    common_accessors!();

    /// Serialises; Content-Length is always written and computed from the body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("SIP/2.0 {} {}\r\n", self.status.0, self.reason).as_bytes());
        encode_rest(&self.headers, &self.body, out);
    }
    /// [`Response::encode`] into a new vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(512 + self.body.len());
        self.encode(&mut v);
        v
    }
}

fn encode_rest(headers: &Headers, body: &Bytes, out: &mut Vec<u8>) {
    for h in headers
        .iter()
        .filter(|h| !names_equal(&h.name, "Content-Length"))
    {
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
}

fn check_request_uri(uri: &str) -> Result<(), BuildError> {
    check_value(uri, "Request-URI")?;
    if uri.is_empty() || uri.contains(char::is_whitespace) {
        return Err(BuildError::Malformed("Request-URI"));
    }
    validate_uri(uri).map_err(|_| BuildError::Malformed("Request-URI"))
}

/// RFC 3261 19.1 for sip:/sips: (via ezk), `scheme ":" rest` for any other absoluteURI.
pub(crate) fn validate_uri(uri: &str) -> Result<(), ParseError> {
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
        ezk_sip_types::uri::SipUri::from_str_checked(uri)?;
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
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new branch: the magic cookie plus 64 random bits from the caller's RNG.
pub fn new_branch(random: [u8; 8]) -> String {
    format!("{MAGIC_COOKIE}{}", hex(&random))
}

/// A new From/To tag from 64 random bits.
pub fn new_tag(random: [u8; 8]) -> String {
    hex(&random)
}

/// A new Call-ID (`hex@host`) from 128 random bits.
pub fn new_call_id(random: [u8; 16], host: &str) -> String {
    format!("{}@{host}", hex(&random))
}

/// Builds a request with the mandatory headers in RFC 3261 order; the first error is kept
/// and returned by [`RequestBuilder::build`].
#[derive(Debug)]
pub struct RequestBuilder {
    req: Result<Request, BuildError>,
}

impl RequestBuilder {
    fn new(method: Method, uri: &str) -> Self {
        Self {
            req: Request::new(method, uri),
        }
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
        let (t, s, b) = (transport.to_owned(), sent_by.to_owned(), branch.to_owned());
        self.with(move |r| {
            check_nonempty_token(&t, "Via transport")?;
            check_nonempty_token(&s, "Via sent-by")?;
            check_nonempty_token(&b, "branch")?;
            if !b.starts_with(MAGIC_COOKIE) {
                return Err(BuildError::Malformed("branch"));
            }
            r.headers.push(
                "Via",
                &format!("SIP/2.0/{} {s};branch={b}", t.to_ascii_uppercase()),
            )
        })
    }
    /// Max-Forwards (RFC 3261 8.1.1.6 recommends 70).
    pub fn max_forwards(self, n: u8) -> Self {
        self.with(move |r| r.headers.push("Max-Forwards", &n.to_string()))
    }
    fn addr(
        name: &'static str,
        display: Option<&str>,
        uri: &str,
        tag: Option<&str>,
    ) -> Result<String, BuildError> {
        check_value(uri, name)?;
        validate_uri(uri).map_err(|_| BuildError::Malformed(name))?;
        if uri.contains(['<', '>', ' ']) {
            return Err(BuildError::Malformed(name));
        }
        let mut v = String::new();
        if let Some(d) = display {
            check_value(d, "display name")?;
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
            check_nonempty_token(t, "tag")?;
            v.push_str(";tag=");
            v.push_str(t);
        }
        Ok(v)
    }
    /// From, with a display name and a tag.
    pub fn from(self, display: Option<&str>, uri: &str, tag: &str) -> Self {
        let v = Self::addr("From", display, uri, Some(tag));
        self.with(move |r| r.headers.push("From", &v?))
    }
    /// To, with a tag only inside a dialog.
    pub fn to(self, display: Option<&str>, uri: &str, tag: Option<&str>) -> Self {
        let v = Self::addr("To", display, uri, tag);
        self.with(move |r| r.headers.push("To", &v?))
    }
    /// Call-ID.
    pub fn call_id(self, id: &str) -> Self {
        let id = id.to_owned();
        self.with(move |r| {
            check_nonempty_token(&id, "Call-ID")?;
            r.headers.push("Call-ID", &id)
        })
    }
    /// CSeq with the request's own method.
    pub fn cseq(self, n: u32) -> Self {
        self.with(move |r| {
            if n >= 1 << 31 {
                return Err(BuildError::Malformed("CSeq"));
            }
            let v = format!("{n} {}", r.method);
            r.headers.push("CSeq", &v)
        })
    }
    /// Contact: a full header value such as `<sip:a@b>;+g.3gpp.icsi-ref="…"`.
    pub fn contact(self, value: &str) -> Self {
        self.header("Contact", value)
    }
    /// Any header, checked for CR/LF/NUL.
    pub fn header(self, name: &str, value: &str) -> Self {
        let (n, v) = (name.to_owned(), value.to_owned());
        self.with(move |r| r.headers.push(&n, &v))
    }
    /// Body and its Content-Type.
    pub fn body(self, content_type: &str, body: impl Into<Bytes>) -> Self {
        let (ct, b) = (content_type.to_owned(), body.into());
        self.with(move |r| r.set_body(Some(&ct), b))
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
