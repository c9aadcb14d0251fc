//! `multipart/mixed` bodies (RFC 2046 5.1, used in SIP per RFC 5621): the MCPTT INVITE carries
//! SDP, `application/vnd.3gpp.mcptt-info+xml` and key material as parts.

use bytes::Bytes;

use crate::error::MultipartError;
use crate::message::{check_value, hex};

/// One body part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Content-Type (RFC 2046 5.1: `text/plain` when the part has none).
    pub content_type: String,
    /// Content-ID, if any.
    pub content_id: Option<String>,
    /// Content-Disposition, if any (e.g. `render;handling=optional`).
    pub content_disposition: Option<String>,
    /// Any other part headers, in order.
    pub other_headers: Vec<(String, String)>,
    /// The part body, exactly.
    pub body: Bytes,
}

impl Part {
    /// A part with a Content-Type and a body.
    pub fn new(content_type: &str, body: impl Into<Bytes>) -> Self {
        Self {
            content_type: content_type.to_owned(),
            content_id: None,
            content_disposition: None,
            other_headers: Vec::new(),
            body: body.into(),
        }
    }
    /// Sets Content-ID.
    pub fn with_content_id(mut self, id: &str) -> Self {
        self.content_id = Some(id.to_owned());
        self
    }
    /// Sets Content-Disposition.
    pub fn with_disposition(mut self, d: &str) -> Self {
        self.content_disposition = Some(d.to_owned());
        self
    }
    /// The media type without parameters, lower case (`application/sdp`).
    pub fn media_type(&self) -> String {
        media_type(&self.content_type)
    }
    fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        std::iter::once(("Content-Type", self.content_type.as_str()))
            .chain(self.content_id.as_deref().map(|v| ("Content-ID", v)))
            .chain(
                self.content_disposition
                    .as_deref()
                    .map(|v| ("Content-Disposition", v)),
            )
            .chain(
                self.other_headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str())),
            )
    }
}

fn media_type(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// A multipart body: its boundary and parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Multipart {
    /// The boundary (without the leading `--`).
    pub boundary: String,
    /// The parts, in order.
    pub parts: Vec<Part>,
}

/// RFC 2046 5.1.1 `bchars` (without the space, which we never generate and only accept inside).
fn is_bchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "'()+_,-./:=? ".contains(c)
}

fn valid_boundary(b: &str) -> bool {
    (1..=70).contains(&b.len()) && b.chars().all(is_bchar) && !b.ends_with(' ')
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    // memmem rather than a comparison at every offset: the call result an
    // MC server reports names every member, and it is searched for the
    // boundary before it is sent.
    memchr::memmem::find(hay, needle).is_some()
}

impl Multipart {
    /// An empty body with a boundary derived from 16 random octets of the caller's RNG.
    ///
    /// [`Multipart::encode`] re-derives the boundary if it ever occurs in a part, so it
    /// cannot collide.
    pub fn new(random: [u8; 16]) -> Self {
        Self {
            boundary: format!("mcx-{}", hex(&random)),
            parts: Vec::new(),
        }
    }
    /// Adds a part.
    pub fn part(mut self, part: Part) -> Self {
        self.parts.push(part);
        self
    }
    /// The first part whose media type (parameters ignored, case-insensitive) is `media_type`.
    pub fn find(&self, media_type_: &str) -> Option<&Part> {
        self.parts
            .iter()
            .find(|p| p.media_type() == media_type_.to_ascii_lowercase())
    }
    /// The Content-Type for the SIP message: `multipart/mixed;boundary=…` (call after [`Multipart::encode`]).
    pub fn content_type(&self) -> String {
        format!("multipart/mixed;boundary={}", self.boundary)
    }

    fn collides(&self) -> bool {
        let delim = format!("--{}", self.boundary);
        self.parts.iter().any(|p| {
            contains(&p.body, delim.as_bytes()) || p.headers().any(|(_, v)| v.contains(&delim))
        })
    }

    /// Serialises the parts. If the boundary occurs in any part it is extended with a counter
    /// until it does not; the boundary actually used is stored (read [`Multipart::content_type`]
    /// afterwards).
    pub fn encode(&mut self) -> Result<Vec<u8>, MultipartError> {
        if self.parts.is_empty() {
            return Err(MultipartError::NoParts);
        }
        if !valid_boundary(&self.boundary) {
            return Err(MultipartError::Boundary);
        }
        for p in &self.parts {
            for (n, v) in p.headers() {
                if check_value(v, "part header").is_err() || crate::message::check_name(n).is_err()
                {
                    return Err(MultipartError::IllegalChar);
                }
            }
        }
        let base = self.boundary.chars().take(60).collect::<String>();
        let mut n = 0u32;
        while self.collides() {
            n += 1;
            self.boundary = format!("{base}.{n}");
        }
        Ok(self.encode_with_boundary())
    }

    /// Serialises with the current boundary, refusing (rather than changing it) on collision.
    pub fn encode_strict(&self) -> Result<Vec<u8>, MultipartError> {
        if self.collides() {
            return Err(MultipartError::BoundaryInBody);
        }
        let mut copy = self.clone();
        copy.encode()
    }

    fn encode_with_boundary(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for p in &self.parts {
            out.extend_from_slice(format!("--{}\r\n", self.boundary).as_bytes());
            for (n, v) in p.headers() {
                out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&p.body);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("--{}--\r\n", self.boundary).as_bytes());
        out
    }

    /// Parses a body given the message's Content-Type (which must be `multipart/*` with a boundary).
    ///
    /// Strict: CRLF line ends, an opening delimiter (a preamble before it is ignored), a close
    /// delimiter, at least one part, part headers `name: value`. The epilogue is ignored.
    pub fn parse(content_type: &str, body: &[u8]) -> Result<Self, MultipartError> {
        let boundary = boundary_param(content_type)?;
        let delim = format!("--{boundary}");
        let d = delim.as_bytes();
        // Opening delimiter: at the very start, or after CRLF (end of the preamble).
        let open = if body.starts_with(d) {
            0
        } else {
            let mut crlf_delim = b"\r\n".to_vec();
            crlf_delim.extend_from_slice(d);
            find(body, &crlf_delim, 0).ok_or(MultipartError::NoOpeningDelimiter)? + 2
        };
        let mut pos = open + d.len();
        let mut parts = Vec::new();
        let mut sep = b"\r\n".to_vec();
        sep.extend_from_slice(d);
        loop {
            // After a delimiter: "--" closes; otherwise optional LWSP padding then CRLF.
            let rest = &body[pos..];
            if rest.starts_with(b"--") {
                if parts.is_empty() {
                    return Err(MultipartError::NoParts);
                }
                break;
            }
            let pad = rest
                .iter()
                .take_while(|&&c| c == b' ' || c == b'\t')
                .count();
            if !rest[pad..].starts_with(b"\r\n") {
                return Err(MultipartError::Delimiter);
            }
            let part_start = pos + pad + 2;
            let next = find(body, &sep, part_start).ok_or(MultipartError::NoCloseDelimiter)?;
            parts.push(parse_part(&body[part_start..next], parts.len())?);
            pos = next + sep.len();
        }
        Ok(Self { boundary, parts })
    }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Extracts the `boundary` parameter of a `multipart/*` Content-Type (quoted or token).
pub fn boundary_param(content_type: &str) -> Result<String, MultipartError> {
    let mut it = content_type.split(';');
    let mt = it.next().unwrap_or_default().trim().to_ascii_lowercase();
    if !mt.starts_with("multipart/") {
        return Err(MultipartError::NotMultipart);
    }
    for p in it {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        if k.trim().eq_ignore_ascii_case("boundary") {
            let v = v.trim();
            let v = match v.strip_prefix('"') {
                Some(q) => q.strip_suffix('"').ok_or(MultipartError::Boundary)?,
                None => v,
            };
            if !valid_boundary(v) {
                return Err(MultipartError::Boundary);
            }
            return Ok(v.to_owned());
        }
    }
    Err(MultipartError::Boundary)
}

fn parse_part(raw: &[u8], index: usize) -> Result<Part, MultipartError> {
    let err = MultipartError::PartHeaders { index };
    // A part with no headers starts with CRLF directly.
    let (head, body) = if raw.starts_with(b"\r\n") {
        ("", &raw[2..])
    } else {
        let end = find(raw, b"\r\n\r\n", 0).ok_or_else(|| err.clone())?;
        let head = std::str::from_utf8(&raw[..end]).map_err(|_| err.clone())?;
        (head, &raw[end + 4..])
    };
    let mut part = Part::new("text/plain", Bytes::copy_from_slice(body));
    let mut have_ct = false;
    let mut lines: Vec<String> = Vec::new();
    for line in head.split("\r\n").filter(|_| !head.is_empty()) {
        if line.starts_with([' ', '\t']) {
            let last = lines.last_mut().ok_or_else(|| err.clone())?;
            last.push(' ');
            last.push_str(line.trim());
        } else {
            lines.push(line.to_owned());
        }
    }
    for line in lines {
        if line.bytes().any(|c| c == 0 || c == b'\r' || c == b'\n') {
            return Err(err);
        }
        let (n, v) = line.split_once(':').ok_or_else(|| err.clone())?;
        let n = n.trim_end();
        if crate::message::check_name(n).is_err() {
            return Err(err);
        }
        let v = v.trim().to_owned();
        if n.eq_ignore_ascii_case("Content-Type") {
            if have_ct || !v.contains('/') {
                return Err(err);
            }
            have_ct = true;
            part.content_type = v;
        } else if n.eq_ignore_ascii_case("Content-ID") {
            part.content_id = Some(v);
        } else if n.eq_ignore_ascii_case("Content-Disposition") {
            part.content_disposition = Some(v);
        } else {
            part.other_headers.push((n.to_owned(), v));
        }
    }
    Ok(part)
}
