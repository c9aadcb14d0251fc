//! The call result body (`application/vnd.mcx.call-result+xml`): what an
//! MC server reports to the controlling server about its group, and what
//! the controlling server reports to the initiator about every
//! constituent group, in the body of the final response to the INVITE.
//!
//! Decision (documented in docs/core.md "The call result body"): results
//! travel in the body, never in headers, so their size is bounded only by
//! the transport's message limit (a header per member stopped calls to
//! groups of more than about 120 members at the 128-header parse limit).
//!
//! ```xml
//! <call-result xmlns="urn:mcx:params:xml:ns:call-result:1">
//!   <group id="sip:group-a@example" accepted="2" rejected="1">
//!     <member uri="sip:a1@example" ssrc="305419896"/>
//!     <member uri="sip:a2@example" outcome="refused" code="403" reason="Forbidden"/>
//!     <member uri="sip:a3@example" outcome="timeout"/>
//!   </group>
//!   <group id="sip:group-b@example" accepted="0" rejected="0"
//!          failure="timeout" detail="no final answer within 5000 ms"/>
//! </call-result>
//! ```
//!
//! `failure` is present only on a group that did not join the call:
//! `unreachable` (no answer at transport level: Timer B, a refused
//! connection), `timeout` (no final answer by the deadline), `refused` (a
//! 4xx/5xx/6xx final answer; `code`, and `member` when one member's
//! refusal decided it) or `lost` (reported in-call: the group's leg ended).
//! A member's `outcome` is `accepted` (the default, so omitted), `refused`
//! (with `code` and `reason`), `timeout`, `unreachable`, `not-registered`
//! or `pending` (no final answer yet: an MC server that answered at once); `ssrc` is an
//! accepted member's floor-control SSRC. Unknown elements and attributes
//! are ignored (forward compatible).

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use crate::Error;
use crate::info::{escape, escape_into};

/// The media type of the call result body.
pub const CALL_RESULT_CONTENT_TYPE: &str = "application/vnd.mcx.call-result+xml";
/// Its XML namespace.
pub const CALL_RESULT_NAMESPACE: &str = "urn:mcx:params:xml:ns:call-result:1";

/// Largest body parsed: the TCP message limit of `mcx_sip`.
const MAX_LEN: usize = 1 << 20;
/// Most `group` elements in one document.
const MAX_GROUPS: usize = 4096;
/// Most `member` elements in one document.
const MAX_MEMBERS: usize = 100_000;
/// Longest `detail` or `reason` kept (longer ones are cut).
const MAX_TEXT: usize = 256;

/// Why a constituent group did not join the call (or left it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureCause {
    /// No answer at transport level (Timer B, connection refused).
    Unreachable,
    /// No final answer before the deadline.
    Timeout,
    /// A final 4xx/5xx/6xx answer.
    Refused,
    /// The group's leg ended during the call (in-call report).
    Lost,
}

impl FailureCause {
    /// Its token in the body.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unreachable => "unreachable",
            Self::Timeout => "timeout",
            Self::Refused => "refused",
            Self::Lost => "lost",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "unreachable" => Self::Unreachable,
            "timeout" => Self::Timeout,
            "refused" => Self::Refused,
            "lost" => Self::Lost,
            _ => return None,
        })
    }
}

/// Why a group failed: the cause and what is known of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupFailure {
    /// The cause.
    pub cause: FailureCause,
    /// The SIP status code, where one was received or synthesized.
    pub status: Option<u16>,
    /// The member whose answer decided it, where known.
    pub member: Option<String>,
    /// A human-readable explanation.
    pub detail: String,
}

/// The acceptance of one constituent group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupResult {
    /// The constituent group.
    pub group_id: String,
    /// Members that accepted (unwrapped the TGMK and answered 200).
    pub accepted: u32,
    /// Members that refused, failed or did not answer in time.
    pub rejected: u32,
    /// Why the group is not in the call; `None` when it is.
    pub failure: Option<GroupFailure>,
}

impl GroupResult {
    /// A group that joined with these counts.
    pub fn joined(group_id: impl Into<String>, accepted: u32, rejected: u32) -> Self {
        Self {
            group_id: group_id.into(),
            accepted,
            rejected,
            failure: None,
        }
    }

    /// A group that failed.
    pub fn failed(group_id: impl Into<String>, failure: GroupFailure) -> Self {
        Self {
            group_id: group_id.into(),
            accepted: 0,
            rejected: 0,
            failure: Some(failure),
        }
    }
}

/// What happened to one member's leg.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberOutcome {
    /// 200 OK; `ssrc` is the member's floor-control SSRC for the call
    /// (from its SDP answer), if it gave one.
    Accepted {
        /// Floor-control SSRC.
        ssrc: Option<u32>,
    },
    /// A final non-2xx answer.
    Refused {
        /// Its status.
        status: u16,
        /// Its reason phrase.
        reason: String,
    },
    /// No final answer before the deadline.
    Timeout,
    /// No answer at transport level (synthesized 408/503).
    Unreachable {
        /// The synthesized status.
        status: u16,
    },
    /// Not invited: not registered with its MC server (it is invited when
    /// it registers, if the call is still going on: late entry).
    NotRegistered,
    /// Invited, no final answer yet: an MC server that answers at once
    /// ([`crate::AnswerPolicy::Unconfirmed`], `P-Answer-State: Unconfirmed`)
    /// reports its members so; each one's outcome follows in-call (INFO).
    Pending,
}

/// One member's line in a group report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberResult {
    /// The member.
    pub uri: String,
    /// What happened.
    pub outcome: MemberOutcome,
}

/// One group's entry: the summary and, from an MC server, its members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupReport {
    /// The summary.
    pub result: GroupResult,
    /// The members (all of them from an MC server; only those that did
    /// not accept from the controlling server to the initiator).
    pub members: Vec<MemberResult>,
}

/// A call result document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallResult {
    /// One entry per constituent group.
    pub groups: Vec<GroupReport>,
}

/// A free text (a reason phrase, a detail) as kept and written: at most
/// [`MAX_TEXT`] characters, control characters (illegal in XML 1.0) as spaces.
fn cut(s: &str) -> String {
    s.chars()
        .take(MAX_TEXT)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `n` in decimal appended to `out` (as `write!(out, "{n}")` writes it).
fn push_decimal(out: &mut String, mut n: u32) {
    let mut buf = [0u8; 10];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b"0123456789"[(n % 10) as usize];
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Decimal digits are ASCII: always text.
    out.push_str(std::str::from_utf8(&buf[at..]).unwrap_or_default());
}

impl CallResult {
    /// The XML document.
    pub fn to_xml(&self) -> String {
        use std::fmt::Write as _;
        let mut x = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<call-result xmlns=\"{CALL_RESULT_NAMESPACE}\">\r\n"
        );
        for g in &self.groups {
            let r = &g.result;
            let _ = write!(
                x,
                "<group id=\"{}\" accepted=\"{}\" rejected=\"{}\"",
                escape(&r.group_id),
                r.accepted,
                r.rejected
            );
            if let Some(f) = &r.failure {
                let _ = write!(x, " failure=\"{}\"", f.cause.as_str());
                if let Some(c) = f.status {
                    let _ = write!(x, " code=\"{c}\"");
                }
                if let Some(m) = &f.member {
                    let _ = write!(x, " member=\"{}\"", escape(m));
                }
                let _ = write!(x, " detail=\"{}\"", escape(&cut(&f.detail)));
            }
            if g.members.is_empty() {
                x.push_str("/>\r\n");
                continue;
            }
            x.push_str(">\r\n");
            // A line per member, each written in place: no formatting and
            // no copy of its URI (a fan-out reports thousands).
            for m in &g.members {
                x.push_str("<member uri=\"");
                escape_into(&mut x, &m.uri);
                x.push('"');
                match &m.outcome {
                    // "accepted" is the default outcome: big groups are
                    // mostly accepting members, and UDP carries 64 KiB.
                    MemberOutcome::Accepted { ssrc } => {
                        if let Some(s) = ssrc {
                            x.push_str(" ssrc=\"");
                            push_decimal(&mut x, *s);
                            x.push('"');
                        }
                    }
                    MemberOutcome::Refused { status, reason } => {
                        let _ = write!(
                            x,
                            " outcome=\"refused\" code=\"{status}\" reason=\"{}\"",
                            escape(&cut(reason))
                        );
                    }
                    MemberOutcome::Timeout => x.push_str(" outcome=\"timeout\""),
                    MemberOutcome::Unreachable { status } => {
                        let _ = write!(x, " outcome=\"unreachable\" code=\"{status}\"");
                    }
                    MemberOutcome::NotRegistered => x.push_str(" outcome=\"not-registered\""),
                    MemberOutcome::Pending => x.push_str(" outcome=\"pending\""),
                }
                x.push_str("/>\r\n");
            }
            x.push_str("</group>\r\n");
        }
        x.push_str("</call-result>\r\n");
        x
    }

    /// Parses a document (root `call-result` in [`CALL_RESULT_NAMESPACE`]).
    ///
    /// # Errors
    /// [`Error::CallResult`] naming what was wrong.
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        if body.len() > MAX_LEN {
            return Err(Error::CallResult("body too large"));
        }
        let text = core::str::from_utf8(body).map_err(|_| Error::CallResult("not UTF-8"))?;
        let mut reader = Reader::from_str(text);
        reader.config_mut().trim_text(true);
        let mut out = Self::default();
        let mut depth = 0usize;
        let mut members = 0usize;
        loop {
            let ev = reader
                .read_event()
                .map_err(|_| Error::CallResult("malformed XML"))?;
            let (e, empty) = match &ev {
                Event::Start(e) => (Some(e), false),
                Event::Empty(e) => (Some(e), true),
                Event::End(_) => {
                    depth = depth.saturating_sub(1);
                    (None, false)
                }
                Event::Eof => break,
                _ => (None, false),
            };
            let Some(e) = e else { continue };
            let name = e.local_name();
            match (depth, name.as_ref()) {
                (0, b"call-result") => {
                    // The namespace of the root's own prefix, whatever it is.
                    let key = match e.name().prefix() {
                        Some(p) => format!("xmlns:{}", String::from_utf8_lossy(p.as_ref())),
                        None => "xmlns".to_owned(),
                    };
                    let ns = attr(e, &key)?;
                    if ns.as_deref() != Some(CALL_RESULT_NAMESPACE) {
                        return Err(Error::CallResult("wrong namespace"));
                    }
                }
                (0, _) => return Err(Error::CallResult("root is not call-result")),
                (1, b"group") => {
                    if out.groups.len() >= MAX_GROUPS {
                        return Err(Error::CallResult("too many groups"));
                    }
                    out.groups.push(GroupReport {
                        result: parse_group(e)?,
                        members: Vec::new(),
                    });
                }
                (2, b"member") => {
                    members += 1;
                    if members > MAX_MEMBERS {
                        return Err(Error::CallResult("too many members"));
                    }
                    let m = parse_member(e)?;
                    if let Some(g) = out.groups.last_mut() {
                        g.members.push(m);
                    }
                }
                _ if depth > 8 => return Err(Error::CallResult("too deeply nested")),
                _ => {} // unknown: ignored
            }
            if !empty {
                depth += 1;
            }
        }
        Ok(out)
    }
}

fn attr(e: &BytesStart<'_>, name: &str) -> Result<Option<String>, Error> {
    for a in e.attributes() {
        let a = a.map_err(|_| Error::CallResult("malformed attribute"))?;
        if a.key.as_ref() == name.as_bytes() {
            let v = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|_| Error::CallResult("malformed attribute value"))?;
            return Ok(Some(v.into_owned()));
        }
    }
    Ok(None)
}

fn number<T: core::str::FromStr>(
    e: &BytesStart<'_>,
    name: &str,
    what: &'static str,
) -> Result<Option<T>, Error> {
    attr(e, name)?
        .map(|v| v.parse().map_err(|_| Error::CallResult(what)))
        .transpose()
}

fn parse_group(e: &BytesStart<'_>) -> Result<GroupResult, Error> {
    let group_id = attr(e, "id")?.ok_or(Error::CallResult("group without id"))?;
    let accepted = number(e, "accepted", "group accepted is not a number")?
        .ok_or(Error::CallResult("group without accepted"))?;
    let rejected = number(e, "rejected", "group rejected is not a number")?
        .ok_or(Error::CallResult("group without rejected"))?;
    let failure = match attr(e, "failure")? {
        None => None,
        Some(f) => Some(GroupFailure {
            cause: FailureCause::parse(&f).ok_or(Error::CallResult("unknown failure cause"))?,
            status: number(e, "code", "group code is not a status code")?,
            member: attr(e, "member")?,
            detail: cut(&attr(e, "detail")?.unwrap_or_default()),
        }),
    };
    Ok(GroupResult {
        group_id,
        accepted,
        rejected,
        failure,
    })
}

fn parse_member(e: &BytesStart<'_>) -> Result<MemberResult, Error> {
    let uri = attr(e, "uri")?.ok_or(Error::CallResult("member without uri"))?;
    let code = number::<u16>(e, "code", "member code is not a status code")?;
    let outcome = match attr(e, "outcome")?.as_deref() {
        None | Some("accepted") => MemberOutcome::Accepted {
            ssrc: number(e, "ssrc", "member ssrc is not a number")?,
        },
        Some("refused") => MemberOutcome::Refused {
            status: code.ok_or(Error::CallResult("refused member without code"))?,
            reason: cut(&attr(e, "reason")?.unwrap_or_default()),
        },
        Some("timeout") => MemberOutcome::Timeout,
        Some("unreachable") => MemberOutcome::Unreachable {
            status: code.unwrap_or(408),
        },
        Some("not-registered") => MemberOutcome::NotRegistered,
        Some("pending") => MemberOutcome::Pending,
        Some(_) => return Err(Error::CallResult("member with an unknown outcome")),
    };
    Ok(MemberResult { uri, outcome })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> CallResult {
        CallResult {
            groups: vec![
                GroupReport {
                    result: GroupResult::joined("sip:a@x", 1, 2),
                    members: vec![
                        MemberResult {
                            uri: "sip:a1@x".into(),
                            outcome: MemberOutcome::Accepted { ssrc: Some(7) },
                        },
                        MemberResult {
                            uri: "sip:a2@x".into(),
                            outcome: MemberOutcome::Refused {
                                status: 403,
                                reason: "Forbidden - \"x\" & <y>".into(),
                            },
                        },
                        MemberResult {
                            uri: "sip:a3@x".into(),
                            outcome: MemberOutcome::Timeout,
                        },
                        MemberResult {
                            uri: "sip:a4@x".into(),
                            outcome: MemberOutcome::Pending,
                        },
                    ],
                },
                GroupReport {
                    result: GroupResult::failed(
                        "sip:b@x",
                        GroupFailure {
                            cause: FailureCause::Unreachable,
                            status: Some(408),
                            member: None,
                            detail: "no answer from sip:mcs-b@x".into(),
                        },
                    ),
                    members: vec![],
                },
            ],
        }
    }

    /// The document as it was written with `format!` and [`escape`]
    /// for each member: `to_xml`'s in-place writing must not change it.
    fn members_by_format(g: &GroupReport) -> String {
        use std::fmt::Write as _;
        let mut x = String::new();
        for m in &g.members {
            let _ = write!(x, "<member uri=\"{}\"", escape(&m.uri));
            if let MemberOutcome::Accepted { ssrc: Some(s) } = &m.outcome {
                let _ = write!(x, " ssrc=\"{s}\"");
            }
            x.push_str(if matches!(m.outcome, MemberOutcome::Accepted { .. }) {
                "/>\r\n"
            } else {
                ""
            });
        }
        x
    }

    #[test]
    fn member_lines_are_written_as_format_writes_them() {
        let members: Vec<MemberResult> = [
            ("sip:a@x", Some(0)),
            ("sip:b@x", Some(7)),
            ("sip:c@x;p=\"<&>'\"", Some(u32::MAX)),
            ("<&>\"'", None),
            ("", Some(1_000_000_000)),
            ("sip:é&ü@x", Some(4_294_967_290)),
        ]
        .into_iter()
        .map(|(uri, ssrc)| MemberResult {
            uri: uri.into(),
            outcome: MemberOutcome::Accepted { ssrc },
        })
        .collect();
        let g = GroupReport {
            result: GroupResult::joined("g", 6, 0),
            members,
        };
        let x = CallResult {
            groups: vec![g.clone()],
        }
        .to_xml();
        let want = members_by_format(&g);
        assert!(x.contains(&want), "{x}\n{want}");
        assert_eq!(CallResult::parse(x.as_bytes()).unwrap().groups[0], g);
        assert_eq!(escape("a<b>&\"'c"), "a&lt;b&gt;&amp;&quot;&apos;c");
    }

    #[test]
    fn round_trip_with_escapes() {
        let r = sample();
        let x = r.to_xml();
        assert!(x.contains("failure=\"unreachable\" code=\"408\""));
        assert_eq!(CallResult::parse(x.as_bytes()).unwrap(), r);
    }

    #[test]
    fn prefixed_namespace_and_unknown_elements_are_accepted() {
        let x = format!(
            "<r:call-result xmlns:r=\"{CALL_RESULT_NAMESPACE}\"><r:group id=\"g\" accepted=\"1\" rejected=\"0\" extra=\"1\"><r:future/></r:group></r:call-result>"
        );
        let r = CallResult::parse(x.as_bytes()).unwrap();
        assert_eq!(r.groups[0].result, GroupResult::joined("g", 1, 0));
    }

    #[test]
    fn malformed_documents_name_what_is_wrong() {
        let cases: &[(&str, &str)] = &[
            ("<x/>", "root is not call-result"),
            ("<call-result xmlns=\"urn:other\"/>", "wrong namespace"),
            (
                "<call-result xmlns=\"urn:mcx:params:xml:ns:call-result:1\"><group accepted=\"1\" rejected=\"0\"/></call-result>",
                "group without id",
            ),
            (
                "<call-result xmlns=\"urn:mcx:params:xml:ns:call-result:1\"><group id=\"g\" accepted=\"-1\" rejected=\"0\"/></call-result>",
                "group accepted is not a number",
            ),
            (
                "<call-result xmlns=\"urn:mcx:params:xml:ns:call-result:1\"><group id=\"g\" accepted=\"1\" rejected=\"0\" failure=\"meh\"/></call-result>",
                "unknown failure cause",
            ),
            (
                "<call-result xmlns=\"urn:mcx:params:xml:ns:call-result:1\"><group id=\"g\" accepted=\"1\" rejected=\"0\"><member uri=\"u\" outcome=\"maybe\"/></group></call-result>",
                "member with an unknown outcome",
            ),
            ("<call-result", "malformed XML"),
        ];
        for (doc, want) in cases {
            match CallResult::parse(doc.as_bytes()) {
                Err(Error::CallResult(got)) => assert_eq!(got, *want, "{doc}"),
                other => panic!("{doc}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_thousand_members_fit_and_parse() {
        let members: Vec<MemberResult> = (0..1000)
            .map(|i| MemberResult {
                uri: format!("sip:member-{i:04}@mcx.example"),
                outcome: MemberOutcome::Accepted {
                    ssrc: Some(4_000_000_000 + i),
                },
            })
            .collect();
        let r = CallResult {
            groups: vec![GroupReport {
                result: GroupResult::joined("sip:big@mcx.example", 1000, 0),
                members,
            }],
        };
        let x = r.to_xml();
        // Fits a UDP datagram with the SDP and headers beside it.
        assert!(x.len() < 64_000, "{}", x.len());
        assert_eq!(CallResult::parse(x.as_bytes()).unwrap(), r);
    }
}
