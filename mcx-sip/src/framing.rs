//! Framing: one UDP datagram = one message ([`parse_datagram`]), and a TCP byte stream cut into
//! messages by Content-Length ([`StreamDecoder`]), RFC 3261 18.3. Limits are checked before any
//! header is parsed, so hostile input costs at most `max_message` octets of work.

use std::borrow::Cow;

use bytes::Bytes;
use bytesstr::BytesStr;

use crate::error::ParseError;
use crate::message::{
    Headers, Known, Message, Method, Request, Response, StatusCode, validate_uri_in,
};

/// Size limits applied before parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message (head + body) in octets.
    pub max_message: usize,
    /// Most header lines (after unfolding).
    pub max_headers: usize,
    /// Longest header line in octets (after unfolding).
    pub max_line: usize,
}

impl Limits {
    /// For UDP: a datagram is at most 65 535 octets.
    pub const UDP: Self = Self {
        max_message: 65_535,
        max_headers: 128,
        max_line: 8 * 1024,
    };
    /// For TCP: 1 MiB messages.
    pub const TCP: Self = Self {
        max_message: 1 << 20,
        max_headers: 128,
        max_line: 8 * 1024,
    };
}

impl Message {
    /// Parses one UDP datagram with [`Limits::UDP`]: see [`parse_datagram`].
    pub fn parse(datagram: &[u8]) -> Result<Self, ParseError> {
        parse_datagram(datagram, &Limits::UDP)
    }
}

/// Parses one datagram (RFC 3261 18.3): leading CRLFs are skipped; with Content-Length, octets
/// after the body are dropped and fewer octets are an error; without it the body runs to the end.
///
/// The message is copied once, into one buffer that its head and body
/// then share; [`parse_datagram_bytes`] takes a buffer the caller already
/// has, without that copy.
pub fn parse_datagram(datagram: &[u8], limits: &Limits) -> Result<Message, ParseError> {
    let (start, head_end, end) = frame_datagram(datagram, limits)?;
    let kept = Bytes::copy_from_slice(&datagram[start..end]);
    parse_framed(kept, head_end - start, limits)
}

/// [`parse_datagram`] of a datagram in a [`Bytes`] buffer (as a network
/// link receives it): the head and the body are slices of it, nothing is
/// copied. The message keeps `datagram`'s storage alive while it lives.
pub fn parse_datagram_bytes(datagram: Bytes, limits: &Limits) -> Result<Message, ParseError> {
    let (start, head_end, end) = frame_datagram(&datagram, limits)?;
    parse_framed(datagram.slice(start..end), head_end - start, limits)
}

/// Where the message in a datagram starts, where its head ends and where
/// it ends (its head checked and parsed later).
fn frame_datagram(datagram: &[u8], limits: &Limits) -> Result<(usize, usize, usize), ParseError> {
    if datagram.len() > limits.max_message {
        return Err(ParseError::TooLarge {
            limit: limits.max_message,
        });
    }
    let start = skip_crlf(datagram);
    let input = &datagram[start..];
    if input.is_empty() {
        return Err(ParseError::Empty);
    }
    let head_end = start + find_head_end(input).ok_or(ParseError::IncompleteHead)?;
    Ok((start, head_end, datagram.len()))
}

/// Parses `message` (head of `head_end` octets, then at least the body):
/// the body is the slice Content-Length names, or the rest.
fn parse_framed(message: Bytes, head_end: usize, limits: &Limits) -> Result<Message, ParseError> {
    let head = parse_head(message.slice(..head_end), limits)?;
    let rest = message.len() - head_end;
    let body = match head.content_length {
        Some(n) if n > rest => return Err(ParseError::BodyTruncated),
        Some(n) => message.slice(head_end..head_end + n),
        None => message.slice(head_end..),
    };
    head.into_message(body)
}

fn skip_crlf(b: &[u8]) -> usize {
    b.iter().take_while(|&&c| c == b'\r' || c == b'\n').count()
}

/// Index just after the first CRLF CRLF.
fn find_head_end(b: &[u8]) -> Option<usize> {
    memchr::memmem::find(b, b"\r\n\r\n").map(|p| p + 4)
}

#[derive(Debug)]
struct Head {
    start: StartLine,
    headers: Headers,
    content_length: Option<usize>,
}

#[derive(Debug)]
enum StartLine {
    Request(Method, BytesStr),
    Response(StatusCode, BytesStr),
}

/// The first error found in a head, by kind: a control character anywhere
/// outranks a limit, which outranks a malformed line, so that each input
/// gets one and the same error whatever the order of its faults.
#[derive(Default)]
struct FirstErrors {
    limit: Option<ParseError>,
    line: Option<ParseError>,
}

/// `head` ends with CRLF CRLF. One pass over its octets finds the lines
/// (CRLF not followed by SP or HT ends one, RFC 3261 7.3.1), rejects a
/// bare CR or LF and NUL, checks the limits and splits each header line
/// into name and value, kept as spans of `head`.
fn parse_head(head: Bytes, limits: &Limits) -> Result<Head, ParseError> {
    let text = BytesStr::from_utf8_bytes(head).map_err(|_| ParseError::NonUtf8Head)?;
    let b = text.as_bytes();
    // One entry per line at most (a vectorised count of LFs: the list never grows).
    let lfs = memchr::memchr_iter(b'\n', b).count();
    let mut headers = Headers::over(text.clone(), lfs.min(limits.max_headers + 1));
    let mut start: Option<StartLine> = None;
    let mut content_length: Option<usize> = None;
    let mut errors = FirstErrors::default();
    let mut crlfs = 0; // CRLFs before `i`: the line number a control character is reported on
    let mut line_start = 0;
    let mut lines = 0; // lines found so far, the start line included
    let mut folds = false; // the line being read has a CRLF SP/HT in it
    let mut i = 0;
    // Jumps from one CR, LF or NUL to the next: the octets between need no look.
    while let Some(at) = b
        .get(i..)
        .and_then(|rest| memchr::memchr3(b'\r', b'\n', 0, rest))
    {
        i += at;
        match b[i] {
            0 => return Err(ParseError::ControlChar { line: crlfs }),
            b'\n' => return Err(ParseError::ControlChar { line: crlfs }),
            b'\r' if b.get(i + 1) != Some(&b'\n') => {
                return Err(ParseError::ControlChar { line: crlfs });
            }
            b'\r' => {
                crlfs += 1;
                let folded = matches!(b.get(i + 2), Some(b' ' | b'\t'));
                folds |= folded;
                if !folded {
                    if i == line_start {
                        // The empty line: the end of the head (it ends `head`).
                        break;
                    }
                    if errors.limit.is_none() {
                        if lines > limits.max_headers {
                            errors.limit = Some(ParseError::TooManyHeaders {
                                limit: limits.max_headers,
                            });
                        } else if i - line_start > limits.max_line {
                            errors.limit = Some(ParseError::LineTooLong { line: lines });
                        }
                    }
                    if errors.limit.is_none() && errors.line.is_none() {
                        let line = text.get(line_start..i).unwrap_or_default();
                        let r = if lines == 0 {
                            parse_start_line(text.as_ref(), line).map(|s| start = Some(s))
                        } else {
                            parse_header_line(
                                &mut headers,
                                &mut content_length,
                                (line, folds),
                                lines - 1,
                                limits,
                            )
                        };
                        if let Err(e) = r {
                            errors.line = Some(e);
                        }
                    }
                    lines += 1;
                    line_start = i + 2;
                    folds = false;
                }
                i += 2;
            }
            _ => i += 1,
        }
    }
    if let Some(e) = errors.limit.or(errors.line) {
        return Err(e);
    }
    let start = start.ok_or(ParseError::Empty)?;
    Ok(Head {
        start,
        headers,
        content_length,
    })
}

/// One header line (folds included, `folded` if it has any): `n` is its
/// index after the start line.
fn parse_header_line(
    headers: &mut Headers,
    content_length: &mut Option<usize>,
    (line, folded): (&str, bool),
    n: usize,
    limits: &Limits,
) -> Result<(), ParseError> {
    let colon =
        memchr::memchr(b':', line.as_bytes()).ok_or(ParseError::HeaderLine { line: n + 1 })?;
    let (name, value) = (
        line.get(..colon).unwrap_or_default(),
        line.get(colon + 1..).unwrap_or_default(),
    );
    // HCOLON = *( SP / HTAB ) ":" SWS
    let name = name.trim_end_matches([' ', '\t']);
    if name.is_empty() || !name.bytes().all(crate::message::is_token_byte) {
        return Err(ParseError::HeaderLine { line: n + 1 });
    }
    let known = Known::of(name);
    if known == Known::ContentLength {
        let value = unfold(value);
        if value.is_empty() || value.len() > 20 || !value.bytes().all(|c| c.is_ascii_digit()) {
            return Err(ParseError::ContentLength);
        }
        let n: usize = value.parse().map_err(|_| ParseError::ContentLength)?;
        if content_length.is_some_and(|old| old != n) {
            return Err(ParseError::ContentLength);
        }
        if n > limits.max_message {
            return Err(ParseError::TooLarge {
                limit: limits.max_message,
            });
        }
        *content_length = Some(n);
        // Content-Length is framing: the body is authoritative and encode() writes it anew.
        return Ok(());
    }
    if folded {
        headers.push_received_owned(known, name, &unfold(value));
    } else {
        headers.push_received(known, name, value.trim());
    }
    Ok(())
}

/// Joins folded lines (CRLF followed by SP/HT) with one space and trims (RFC 3261 7.3.1).
fn unfold(v: &str) -> Cow<'_, str> {
    if !v.contains("\r\n") {
        return Cow::Borrowed(v.trim());
    }
    let mut out = String::with_capacity(v.len());
    let mut parts = v.split("\r\n");
    if let Some(p) = parts.next() {
        out.push_str(p.trim());
    }
    for p in parts {
        let p = p.trim();
        if !p.is_empty() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(p);
        }
    }
    Cow::Owned(out)
}

/// The start line `line`, which lies in `src`.
fn parse_start_line(src: &Bytes, line: &str) -> Result<StartLine, ParseError> {
    let kept = |s: &str| BytesStr::from_parse(src, s);
    if let Some(rest) = line.strip_prefix("SIP/2.0 ") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 || !code.bytes().all(|c| c.is_ascii_digit()) {
            return Err(ParseError::StartLine);
        }
        let code: u16 = code.parse().map_err(|_| ParseError::StartLine)?;
        if !(100..700).contains(&code) {
            return Err(ParseError::StartLine);
        }
        return Ok(StartLine::Response(StatusCode(code), kept(reason)));
    }
    // Request-Line = Method SP Request-URI SP SIP-Version (single spaces, RFC 3261 7.1)
    let mut parts = line.split(' ');
    let (Some(m), Some(uri), Some(ver), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::StartLine);
    };
    if ver != "SIP/2.0" {
        return Err(ParseError::StartLine);
    }
    let method = Method::parse(m).ok_or(ParseError::StartLine)?;
    validate_uri_in(Some(src), uri)?;
    Ok(StartLine::Request(method, kept(uri)))
}

impl Head {
    fn into_message(self, body: Bytes) -> Result<Message, ParseError> {
        let msg = match self.start {
            StartLine::Request(method, uri) => Message::Request(Request {
                method,
                uri,
                headers: self.headers,
                body,
            }),
            StartLine::Response(status, reason) => Message::Response(Response {
                status,
                reason,
                headers: self.headers,
                body,
            }),
        };
        validate_mandatory(&msg)?;
        Ok(msg)
    }
}

/// RFC 3261 8.1.1: Via, From, To, Call-ID and CSeq must be present and readable.
fn validate_mandatory(msg: &Message) -> Result<(), ParseError> {
    match msg {
        // Borrowed: the values are parsed and kept, not copied only to be dropped.
        Message::Request(r) => {
            r.top_via_ref()?;
            r.from_ref()?;
            r.to_ref()?;
            r.call_id()?;
            let (_, m) = r.cseq()?;
            r.max_forwards()?;
            if m != r.method {
                return Err(ParseError::CSeqMismatch);
            }
        }
        Message::Response(r) => {
            r.top_via_ref()?;
            r.from_ref()?;
            r.to_ref()?;
            r.call_id()?;
            r.cseq()?;
        }
    }
    Ok(())
}

/// Cuts a TCP byte stream into messages (RFC 3261 18.3: Content-Length is mandatory).
///
/// Keep-alive CRLFs (RFC 5626 3.5.1) between messages are skipped. An error is sticky: the
/// stream is out of sync and the connection should be closed.
///
/// Work is linear in the octets received: the search for the end of a head resumes where the
/// previous call stopped, a head is parsed once (then the decoder waits for the body), and
/// consumed octets are not moved per message but reclaimed when they outweigh what is left.
/// A caller that drains [`StreamDecoder::next_message`] after every [`StreamDecoder::push`]
/// holds at most `max_message` octets plus the last push.
#[derive(Debug)]
pub struct StreamDecoder {
    /// Received octets; `buf[start..]` is not yet returned as a message.
    buf: Vec<u8>,
    start: usize,
    /// How far (from `start`) the search for CRLF CRLF got without finding it.
    searched: usize,
    head_end_search: HeadEndSearch,
    /// The head of the message at `start`, parsed, while its body arrives.
    pending: Option<PendingHead>,
    limits: Limits,
    error: Option<ParseError>,
    /// Octets looked at or moved (search, head parsing, compaction): the cost measure.
    work: u64,
}

/// An incremental search for CRLF CRLF: the number of its octets that ended the input so far.
#[derive(Debug, Default, Clone, Copy)]
struct HeadEndSearch(u8);

impl HeadEndSearch {
    /// Feeds `more`; the index in `more` just after CRLF CRLF if it completes there.
    fn resume(&mut self, more: &[u8]) -> Option<usize> {
        const END: &[u8; 4] = b"\r\n\r\n";
        for (i, &c) in more.iter().enumerate() {
            self.0 = if c == END[usize::from(self.0)] {
                self.0 + 1
            } else if c == b'\r' {
                // The only proper prefix of CRLF CRLF that a mismatch can restart from.
                1
            } else {
                0
            };
            if self.0 == 4 {
                return Some(i + 1);
            }
        }
        None
    }
}

#[derive(Debug)]
struct PendingHead {
    head_end: usize,
    total: usize,
    head: Head,
}

impl StreamDecoder {
    /// A decoder with the given limits (normally [`Limits::TCP`]).
    pub fn new(limits: Limits) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            searched: 0,
            head_end_search: HeadEndSearch::default(),
            pending: None,
            limits,
            error: None,
            work: 0,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.error.is_some() || bytes.is_empty() {
            return;
        }
        // Reclaim consumed octets once they are at least as many as those left: each octet is
        // then moved at most once per octet consumed before it (amortised linear).
        if self.start > 0 && self.start >= self.buf.len() - self.start {
            self.compact();
        }
        let need = self.buf.len().saturating_add(bytes.len());
        if need > self.buf.capacity() {
            if self.start > 0 {
                self.compact();
            }
            let need = self.buf.len().saturating_add(bytes.len());
            // Doubling, but never past one maximal message plus this push while the caller
            // drains, so a connection's buffer stays bounded by the limit and not by 2x it.
            let cap_limit = self.limits.max_message.saturating_add(bytes.len());
            let target = if need <= cap_limit {
                self.buf
                    .capacity()
                    .saturating_mul(2)
                    .min(cap_limit)
                    .max(need)
            } else {
                need.max(self.buf.capacity().saturating_mul(2))
            };
            self.buf.reserve_exact(target - self.buf.len());
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Octets buffered and not yet returned as a message.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// True if, when [`StreamDecoder::next_message`] last returned, part of a message (more
    /// than keep-alive CRLFs) had arrived but not all of it: a driver times the rest from then.
    pub fn in_message(&self) -> bool {
        self.pending.is_some() || self.searched > 0
    }

    /// Octets the decoder has looked at or moved so far (searching for the end of heads,
    /// parsing heads, compacting the buffer): a cost measure for tests, linear in the octets
    /// pushed.
    #[doc(hidden)]
    pub fn work(&self) -> u64 {
        self.work
    }

    /// The next complete message, `Ok(None)` if more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>, ParseError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let r = self.try_next();
        if let Err(e) = &r {
            self.error = Some(e.clone());
            self.buf = Vec::new();
            self.start = 0;
            self.searched = 0;
            self.head_end_search = HeadEndSearch::default();
            self.pending = None;
        }
        r
    }

    fn compact(&mut self) {
        self.work += (self.buf.len() - self.start) as u64;
        self.buf.drain(..self.start);
        self.start = 0;
    }

    fn too_large(&self) -> ParseError {
        ParseError::TooLarge {
            limit: self.limits.max_message,
        }
    }

    fn try_next(&mut self) -> Result<Option<Message>, ParseError> {
        if self.pending.is_none() {
            if self.searched == 0 {
                // Keep-alive CRLFs before a message; skipped once, as they arrive.
                let skip = skip_crlf(&self.buf[self.start..]);
                self.work += skip as u64;
                self.start += skip;
            }
            let input = &self.buf[self.start..];
            // Only octets not searched before are looked at; how much of CRLF CRLF ended the
            // previous search is remembered, so a match straddling two reads is found.
            let from = self.searched;
            let found = self
                .head_end_search
                .resume(&input[from..])
                .map(|p| from + p);
            self.work += (found.unwrap_or(input.len()) - from) as u64;
            let Some(head_end) = found else {
                self.searched = input.len();
                if input.len() > self.limits.max_message {
                    return Err(self.too_large());
                }
                return Ok(None);
            };
            self.searched = 0;
            self.head_end_search = HeadEndSearch::default();
            if head_end > self.limits.max_message {
                return Err(self.too_large());
            }
            // The head is kept by the message as one buffer: copied out of the stream once.
            let head = parse_head(Bytes::copy_from_slice(&input[..head_end]), &self.limits)?;
            self.work += head_end as u64;
            let len = head.content_length.ok_or(ParseError::ContentLength)?;
            let total = head_end.checked_add(len).ok_or(ParseError::ContentLength)?;
            if total > self.limits.max_message {
                return Err(self.too_large());
            }
            self.pending = Some(PendingHead {
                head_end,
                total,
                head,
            });
        }
        let Some(p) = &self.pending else {
            return Ok(None);
        };
        if self.buffered() < p.total {
            return Ok(None);
        }
        let Some(PendingHead {
            head_end,
            total,
            head,
        }) = self.pending.take()
        else {
            return Ok(None);
        };
        let at = self.start;
        // Only the body is copied, once; the rest of the buffer stays where it is.
        let body = Bytes::copy_from_slice(&self.buf[at + head_end..at + total]);
        self.start += total;
        if self.start == self.buf.len() {
            // Nothing left: reuse the allocation from its beginning, for free.
            self.buf.clear();
            self.start = 0;
        }
        head.into_message(body).map(Some)
    }
}
