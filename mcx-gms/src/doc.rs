//! The group document (TS 24.481 clause 7.2, OMA XDM group structure)
//! with the GKTPs of TS 24.481's `urn:3gpp:ns:mcpttGKTP:1.0` schema, and
//! the group index (an RFC 4826 resource list of group IDs).
//!
//! A group document as this crate writes it:
//!
//! ```xml
//! <?xml version="1.0" encoding="UTF-8"?>
//! <group xmlns="urn:oma:xml:poc:list-service"
//!        xmlns:oxe="urn:oma:xml:xdm:extensions"
//!        xmlns:mcpttgi="urn:3gpp:ns:mcpttGroupInfo:1.0"
//!        xmlns:mgktp="urn:3gpp:ns:mcpttGKTP:1.0">
//!   <list-service uri="sip:group-a@mcx.test">
//!     <display-name>Group A</display-name>
//!     <list>
//!       <entry uri="sip:alice@mcx.test"/>
//!     </list>
//!     <oxe:supported-services>
//!       <oxe:service enabler="urn:urn-7:3gpp-service.ims.icsi.mcptt">
//!         <oxe:group-media><mcpttgi:mcptt-speech/></oxe:group-media>
//!       </oxe:service>
//!     </oxe:supported-services>
//!     <mgktp:GKTPs>
//!       <mgktp:GMK-GKTPs>
//!         <mgktp:GKTP id="sip:alice@mcx.test"
//!                     activationtime="2024-01-01T00:00:00Z">011A…</mgktp:GKTP>
//!       </mgktp:GMK-GKTPs>
//!     </mgktp:GKTPs>
//!   </list-service>
//! </group>
//! ```
//!
//! Parsing is strict about what it reads (root, namespaces, required
//! elements and attributes, at most one of each single element, URIs,
//! hexBinary, dateTime, no duplicate members, size limits, no DOCTYPE)
//! and skips extension elements it does not read (the schemas' `xs:any`
//! and `anyExt` points, other `mcpttgi` settings, OMA rules), as XML
//! extensibility requires. It never panics.

use crate::GroupDocument;
use crate::error::DocError;
use crate::xml::{self, Element, Limits};

/// OMA XDM group document namespace (`<group>`, `<list-service>`,
/// `<display-name>`, `<list>`, `<entry>`).
pub const LIST_SERVICE_NS: &str = "urn:oma:xml:poc:list-service";
/// OMA XDM extensions (`<supported-services>`, `<service>`, `<group-media>`).
pub const XDM_EXTENSIONS_NS: &str = "urn:oma:xml:xdm:extensions";
/// TS 24.481 MCPTT group information (`mcpttgi:`).
pub const MCPTT_GROUP_INFO_NS: &str = "urn:3gpp:ns:mcpttGroupInfo:1.0";
/// TS 24.481 GKTP schema (`mgktp:GKTPs`, `GMK-GKTPs`, `GKTP`).
pub const GKTP_NS: &str = "urn:3gpp:ns:mcpttGKTP:1.0";
/// RFC 4826 resource lists (the group index).
pub const RESOURCE_LISTS_NS: &str = "urn:ietf:params:xml:ns:resource-lists";
/// The MCPTT ICSI, the `enabler` of the MCPTT `<service>` (TS 24.481 7.2.8).
pub const MCPTT_ICSI: &str = "urn:urn-7:3gpp-service.ims.icsi.mcptt";
/// Media type of a group document (OMA XDM group usage).
pub const GROUP_DOCUMENT_CONTENT_TYPE: &str = "application/vnd.oma.poc.groups+xml";
/// Media type of the group index (RFC 4826).
pub const INDEX_CONTENT_TYPE: &str = "application/resource-lists+xml";

/// Largest group document accepted, octets.
pub const MAX_DOCUMENT_LEN: usize = 1 << 20;
/// Largest index accepted, octets.
pub const MAX_INDEX_LEN: usize = 256 * 1024;
/// Most members in a group document.
pub const MAX_MEMBERS: usize = 5_000;
/// Most GKTPs in a group document.
pub const MAX_GKTPS: usize = 5_000;
/// Most group IDs in an index.
pub const MAX_GROUPS: usize = 5_000;
/// Longest URI (group ID, member, GKTP id), octets.
pub const MAX_URI_LEN: usize = 1_024;
/// Longest display name, octets.
pub const MAX_DISPLAY_NAME_LEN: usize = 1_024;
/// Largest GKTP (decoded I_MESSAGE), octets.
pub const MAX_GKTP_LEN: usize = 8_192;

const DOC_LIMITS: Limits = Limits {
    max_len: MAX_DOCUMENT_LEN,
    max_depth: 32,
    max_elements: 4 * (MAX_MEMBERS + MAX_GKTPS) + 1_000,
};

const INDEX_LIMITS: Limits = Limits {
    max_len: MAX_INDEX_LEN,
    max_depth: 16,
    max_elements: 2 * MAX_GROUPS + 100,
};

/// One `<GKTP>`: a GMK I_MESSAGE (TS 33.180 E.2) as TS 24.481's
/// `GKTPType` carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gktp {
    /// The `id` attribute (required by the schema). This crate puts the
    /// MC service ID of the member the I_MESSAGE is encrypted to
    /// (unconfirmed reading of TS 24.481; see docs/gms.md).
    pub id: String,
    /// The `activationtime` attribute (Rel-18 schema): the GMK's
    /// activation, Unix seconds.
    pub activation_time: Option<u64>,
    /// The I_MESSAGE (the element's hexBinary content, decoded).
    pub i_message: Vec<u8>,
}

/// A group document with everything this crate reads or writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    /// `<list-service uri>`: the MCPTT group ID.
    pub group_id: String,
    /// `<display-name>` (empty if absent).
    pub display_name: String,
    /// `<list><entry uri>`: the members' MC service IDs, in order.
    pub members: Vec<String>,
    /// `<mgktp:GKTPs><mgktp:GMK-GKTPs><mgktp:GKTP>`, in order.
    pub gktps: Vec<Gktp>,
}

impl From<Document> for GroupDocument {
    fn from(d: Document) -> Self {
        Self {
            group_id: d.group_id,
            display_name: d.display_name,
            members: d.members,
            gktps: d.gktps.into_iter().map(|g| g.i_message).collect(),
        }
    }
}

/// Checks a URI: not empty, at most [`MAX_URI_LEN`] octets, a scheme
/// (`ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"`), no whitespace or
/// control characters.
///
/// # Errors
/// [`DocError::InvalidUri`] naming `element`.
pub fn check_uri(element: &'static str, uri: &str) -> Result<(), DocError> {
    let bad = |reason| Err(DocError::InvalidUri { element, reason });
    if uri.is_empty() {
        return bad("empty");
    }
    if uri.len() > MAX_URI_LEN {
        return bad("too long");
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("contains whitespace or control characters");
    }
    let Some((scheme, _)) = uri.split_once(':') else {
        return bad("no scheme");
    };
    let mut sc = scheme.chars();
    let first_ok = sc.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !first_ok || !sc.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) {
        return bad("invalid scheme");
    }
    Ok(())
}

pub(crate) fn check_text(element: &'static str, s: &str, max: usize) -> Result<(), DocError> {
    if s.len() > max {
        return Err(DocError::InvalidText {
            element,
            reason: "too long",
        });
    }
    if s.chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(DocError::InvalidText {
            element,
            reason: "contains control characters",
        });
    }
    Ok(())
}

impl Document {
    /// The XML document (UTF-8). GKTPs are written as upper-case
    /// hexBinary (its canonical form).
    pub fn to_xml(&self) -> Vec<u8> {
        let e = xml::escape;
        let mut x = String::with_capacity(
            512 + self.members.len() * 64
                + self
                    .gktps
                    .iter()
                    .map(|g| 2 * g.i_message.len() + 128)
                    .sum::<usize>(),
        );
        x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        x.push_str(&format!(
            "<group xmlns=\"{LIST_SERVICE_NS}\" xmlns:oxe=\"{XDM_EXTENSIONS_NS}\" \
             xmlns:mcpttgi=\"{MCPTT_GROUP_INFO_NS}\" xmlns:mgktp=\"{GKTP_NS}\">\n"
        ));
        x.push_str(&format!("  <list-service uri=\"{}\">\n", e(&self.group_id)));
        x.push_str(&format!(
            "    <display-name>{}</display-name>\n",
            e(&self.display_name)
        ));
        x.push_str("    <list>\n");
        for m in &self.members {
            x.push_str(&format!("      <entry uri=\"{}\"/>\n", e(m)));
        }
        x.push_str("    </list>\n");
        x.push_str(&format!(
            "    <oxe:supported-services>\n      <oxe:service enabler=\"{MCPTT_ICSI}\">\n        \
             <oxe:group-media><mcpttgi:mcptt-speech/></oxe:group-media>\n      </oxe:service>\n    \
             </oxe:supported-services>\n"
        ));
        if !self.gktps.is_empty() {
            x.push_str("    <mgktp:GKTPs>\n      <mgktp:GMK-GKTPs>\n");
            for g in &self.gktps {
                x.push_str(&format!("        <mgktp:GKTP id=\"{}\"", e(&g.id)));
                if let Some(t) = g.activation_time {
                    x.push_str(&format!(" activationtime=\"{}\"", format_date_time(t)));
                }
                x.push('>');
                x.push_str(&hex::encode_upper(&g.i_message));
                x.push_str("</mgktp:GKTP>\n");
            }
            x.push_str("      </mgktp:GMK-GKTPs>\n    </mgktp:GKTPs>\n");
        }
        x.push_str("  </list-service>\n</group>\n");
        x.into_bytes()
    }

    /// Parses a group document.
    ///
    /// # Errors
    /// A [`DocError`] naming what is wrong.
    pub fn parse(bytes: &[u8]) -> Result<Self, DocError> {
        let root = xml::parse(bytes, DOC_LIMITS)?;
        if !root.is(LIST_SERVICE_NS, "group") {
            return Err(unexpected_root(
                "{urn:oma:xml:poc:list-service}group",
                &root,
            ));
        }
        let ls = root.exactly_one(LIST_SERVICE_NS, "list-service")?;
        let group_id = ls
            .attr("uri")
            .ok_or(DocError::MissingAttribute {
                element: "list-service",
                attribute: "uri",
            })?
            .to_owned();
        check_uri("list-service", &group_id)?;
        let display_name = match ls.at_most_one(LIST_SERVICE_NS, "display-name")? {
            Some(d) => d.text.clone(),
            None => String::new(),
        };
        check_text("display-name", &display_name, MAX_DISPLAY_NAME_LEN)?;
        let list = ls.exactly_one(LIST_SERVICE_NS, "list")?;
        let members = read_entries(list, LIST_SERVICE_NS, MAX_MEMBERS, "members")?;
        let mut gktps = Vec::new();
        let all = ls.at_most_one(GKTP_NS, "GKTPs")?;
        let gmk = match all {
            Some(all) => all.at_most_one(GKTP_NS, "GMK-GKTPs")?,
            None => None,
        };
        if let Some(gmk) = gmk {
            for (index, g) in gmk.children_named(GKTP_NS, "GKTP").enumerate() {
                if index >= MAX_GKTPS {
                    return Err(DocError::TooMany {
                        what: "GKTPs",
                        max: MAX_GKTPS,
                    });
                }
                gktps.push(read_gktp(index, g)?);
            }
        }
        Ok(Self {
            group_id,
            display_name,
            members,
            gktps,
        })
    }
}

fn unexpected_root(expected: &'static str, root: &Element) -> DocError {
    DocError::UnexpectedRoot {
        expected,
        namespace: root
            .ns
            .clone()
            .unwrap_or_default()
            .chars()
            .take(128)
            .collect(),
        got: root.local.chars().take(64).collect(),
    }
}

fn read_entries(
    list: &Element,
    ns: &str,
    max: usize,
    what: &'static str,
) -> Result<Vec<String>, DocError> {
    let mut out: Vec<String> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for entry in list.children_named(ns, "entry") {
        if out.len() >= max {
            return Err(DocError::TooMany { what, max });
        }
        let uri = entry.attr("uri").ok_or(DocError::MissingAttribute {
            element: "entry",
            attribute: "uri",
        })?;
        check_uri("entry", uri)?;
        if !seen.insert(uri) {
            return Err(DocError::DuplicateUri {
                element: "entry",
                uri: uri.to_owned(),
            });
        }
        out.push(uri.to_owned());
    }
    Ok(out)
}

fn read_gktp(index: usize, g: &Element) -> Result<Gktp, DocError> {
    let id = g.attr("id").ok_or(DocError::MissingAttribute {
        element: "GKTP",
        attribute: "id",
    })?;
    if id.is_empty() {
        return Err(DocError::InvalidText {
            element: "GKTP",
            reason: "empty id",
        });
    }
    check_text("GKTP", id, MAX_URI_LEN)?;
    let activation_time = g.attr("activationtime").map(parse_date_time).transpose()?;
    // xs:hexBinary collapses surrounding whitespace.
    let hex_text = g
        .text
        .trim_matches(|c: char| matches!(c, ' ' | '\t' | '\n' | '\r'));
    if hex_text.is_empty() {
        return Err(DocError::InvalidHex {
            index,
            reason: "empty",
        });
    }
    if hex_text.len() > 2 * MAX_GKTP_LEN {
        return Err(DocError::InvalidHex {
            index,
            reason: "too long",
        });
    }
    let i_message = hex::decode(hex_text).map_err(|e| DocError::InvalidHex {
        index,
        reason: match e {
            hex::FromHexError::OddLength => "odd number of digits",
            _ => "not a hex digit",
        },
    })?;
    Ok(Gktp {
        id: id.to_owned(),
        activation_time,
        i_message,
    })
}

/// The group index: an RFC 4826 `<resource-lists>` with one
/// `<list name="groups">` of `<entry uri="group ID"/>`.
pub fn encode_index(group_ids: &[String]) -> Vec<u8> {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!(
        "<resource-lists xmlns=\"{RESOURCE_LISTS_NS}\">\n  <list name=\"groups\">\n"
    ));
    for g in group_ids {
        x.push_str(&format!("    <entry uri=\"{}\"/>\n", xml::escape(g)));
    }
    x.push_str("  </list>\n</resource-lists>\n");
    x.into_bytes()
}

/// Parses a group index: the root `<resource-lists>` (RFC 4826) with
/// exactly one `<list>`, whose `<entry uri>` are the group IDs.
///
/// # Errors
/// A [`DocError`] naming what is wrong.
pub fn parse_index(bytes: &[u8]) -> Result<Vec<String>, DocError> {
    let root = xml::parse(bytes, INDEX_LIMITS)?;
    if !root.is(RESOURCE_LISTS_NS, "resource-lists") {
        return Err(unexpected_root(
            "{urn:ietf:params:xml:ns:resource-lists}resource-lists",
            &root,
        ));
    }
    let list = root.exactly_one(RESOURCE_LISTS_NS, "list")?;
    read_entries(list, RESOURCE_LISTS_NS, MAX_GROUPS, "groups")
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Latest time [`format_date_time`] writes as a 4-digit year
/// (9999-12-31T23:59:59Z).
pub const MAX_DATE_TIME: u64 = 253_402_300_799;

/// `xs:dateTime` in UTC (`YYYY-MM-DDThh:mm:ssZ`) of Unix seconds
/// (clamped to [`MAX_DATE_TIME`]).
pub fn format_date_time(unix: u64) -> String {
    let unix = i64::try_from(unix.min(MAX_DATE_TIME)).unwrap_or(0);
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3_600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Parses an `xs:dateTime` (`YYYY-MM-DDThh:mm:ss[.s+][Z|(+|-)hh:mm]`, no
/// zone read as UTC) to Unix seconds (fractions dropped).
///
/// # Errors
/// [`DocError::InvalidDateTime`] for any other form, an invalid field or
/// a time before 1970.
pub fn parse_date_time(s: &str) -> Result<u64, DocError> {
    let bad = |reason| DocError::InvalidDateTime {
        value: s.chars().take(40).collect(),
        reason,
    };
    let b = s.as_bytes();
    if b.len() < 19 || b.len() > 40 {
        return Err(bad("wrong length"));
    }
    let num = |r: core::ops::Range<usize>| -> Result<i64, DocError> {
        let part = b.get(r).ok_or_else(|| bad("truncated"))?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return Err(bad("expected digits"));
        }
        part.iter()
            .try_fold(0i64, |acc, c| {
                acc.checked_mul(10)?.checked_add(i64::from(c - b'0'))
            })
            .ok_or_else(|| bad("number too large"))
    };
    let sep = |i: usize, c: u8| -> Result<(), DocError> {
        if b.get(i) == Some(&c) {
            Ok(())
        } else {
            Err(bad("wrong separator"))
        }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    sep(4, b'-')?;
    sep(7, b'-')?;
    sep(10, b'T')?;
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    sep(13, b':')?;
    sep(16, b':')?;
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return Err(bad("empty fraction"));
        }
    }
    let offset = match b.get(i) {
        None => 0,
        Some(b'Z') if i + 1 == b.len() => 0,
        Some(&c @ (b'+' | b'-')) if i + 6 == b.len() => {
            sep(i + 3, b':')?;
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 14 || om > 59 || (oh == 14 && om != 0) {
                return Err(bad("invalid zone offset"));
            }
            let o = oh * 3_600 + om * 60;
            if c == b'+' { o } else { -o }
        }
        Some(_) => return Err(bad("invalid zone")),
    };
    if !(1..=12).contains(&month) || day < 1 || hour > 23 || minute > 59 || second > 59 {
        return Err(bad("field out of range"));
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if day > days_in_month {
        return Err(bad("day out of range"));
    }
    let t =
        days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second - offset;
    u64::try_from(t).map_err(|_| bad("before 1970"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn date_time_round_trip_and_forms() {
        for t in [
            0,
            1,
            951_782_400,
            1_700_000_000,
            4_102_444_800,
            MAX_DATE_TIME,
        ] {
            assert_eq!(parse_date_time(&format_date_time(t)).unwrap(), t);
        }
        assert_eq!(format_date_time(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(
            parse_date_time("2000-02-29T01:00:00+01:00").unwrap(),
            951_782_400
        );
        assert_eq!(
            parse_date_time("2000-02-29T00:00:00.123").unwrap(),
            951_782_400
        );
        for bad in [
            "2001-02-29T00:00:00Z",
            "2000-13-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "2000-01-01 00:00:00Z",
            "2000-01-01T00:00:00Zx",
            "2000-01-01T00:00:00+1:00",
            "2000-01-01T24:00:00Z",
            "２000-01-01T00:00:00Z",
        ] {
            assert!(parse_date_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn document_round_trip_with_escaping() {
        let d = Document {
            group_id: "sip:g&<\"'>@x.test".into(),
            display_name: "A & B <\"team\">\tx".into(),
            members: vec!["sip:a@x.test".into(), "tel:+123".into()],
            gktps: vec![Gktp {
                id: "sip:a@x.test".into(),
                activation_time: Some(1_700_000_000),
                i_message: vec![1, 0x1a, 0xff],
            }],
        };
        assert_eq!(Document::parse(&d.to_xml()).unwrap(), d);
        let idx = vec!["sip:g1@x".to_owned(), "sip:g&2@x".to_owned()];
        assert_eq!(parse_index(&encode_index(&idx)).unwrap(), idx);
        assert_eq!(
            parse_index(&encode_index(&[])).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn uri_checks() {
        assert!(check_uri("e", "sip:a@b").is_ok());
        assert!(check_uri("e", "tel:+1").is_ok());
        for bad in ["", "nocolon", ":x", "1a:b", "sip:a b", "sip:a\u{0}"] {
            assert!(check_uri("e", bad).is_err(), "{bad:?}");
        }
    }
}
