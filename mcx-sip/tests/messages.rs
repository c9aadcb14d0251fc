//! Message layer and framing: RFC 4475 torture messages, build → parse round trips,
//! injection checks, the TCP stream decoder.
#![allow(clippy::unwrap_used)]

use mcx_sip::{
    BuildError, Limits, Message, Method, ParseError, Request, Response, StatusCode, StreamDecoder,
    headers,
};

/// Writes a message given with LF line ends as CRLF and fills `{len}` with the body length.
fn crlf(head: &str, body: &str) -> Vec<u8> {
    let body = body.replace('\n', "\r\n");
    let head = head
        .replace('\n', "\r\n")
        .replace("{len}", &body.len().to_string());
    let mut v = head.into_bytes();
    v.extend_from_slice(body.as_bytes());
    v
}

const SDP: &str = "v=0\no=mhandley 29739 7272939 IN IP4 192.0.2.3\ns=-\nc=IN IP4 192.0.2.4\nt=0 0\nm=audio 49217 RTP/AVP 0 12\nm=video 3227 RTP/AVP 31\na=rtpmap:31 LPC\n";

// Valid messages, transcribed from RFC 4475 section 3.1.1 (line ends CRLF, Content-Length
// recomputed from the transcribed body).

/// RFC 4475 3.1.1.1 "A Short Tortuous INVITE" (wsinv): folding, odd whitespace, case, compact forms.
fn wsinv() -> Vec<u8> {
    crlf(
        "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0
TO :
 sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n
from   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>
  ;
  tag = 98asjd8
MaX-fOrWaRdS: 0068
Call-ID: wsinv.ndaksdj@192.0.2.1
Content-Length   : {len}
cseq: 0009
  INVITE
Via  : SIP  /   2.0
 /UDP
    192.0.2.2;branch=390skdjuw
s :
NewFangledHeader:   newfangled value
 continued newfangled value
UnknownHeaderWithUnusualValue: ;;,,;;,;
Content-Type: application/sdp
Route:
 <sip:services.example.com;lr;unknownwith=value;unknown-no-value>
v:  SIP  / 2.0  / TCP     spindle.example.com   ;
  branch  =   z9hG4bK9ikj8  ,
 SIP  /    2.0   / UDP  192.168.255.111   ; branch=
 z9hG4bK30239
m:\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =
      newvalue ;
  secondparam ; q = 0.33

",
        SDP,
    )
}

#[test]
fn rfc4475_3_1_1_1_wsinv() {
    let Message::Request(r) = Message::parse(&wsinv()).unwrap() else {
        panic!("not a request")
    };
    assert_eq!(*r.method(), Method::Invite);
    assert_eq!(r.uri(), "sip:vivekg@chair-dnrc.example.com;unknownparam");
    assert_eq!(r.cseq().unwrap(), (9, Method::Invite));
    assert_eq!(r.max_forwards().unwrap(), Some(68));
    assert_eq!(r.call_id().unwrap(), "wsinv.ndaksdj@192.0.2.1");
    assert_eq!(r.to().unwrap().tag.as_deref(), Some("1918181833n"));
    let from = r.from().unwrap();
    assert_eq!(from.tag.as_deref(), Some("98asjd8"));
    assert_eq!(from.uri, "sip:jdrosen@example.com");
    let via = r.top_via().unwrap();
    assert_eq!(
        (via.transport.as_str(), via.sent_by.as_str()),
        ("UDP", "192.0.2.2")
    );
    assert_eq!(via.branch.as_deref(), Some("390skdjuw"));
    assert_eq!(
        r.header("NewFangledHeader"),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(
        r.headers().get_all("Via").count(),
        2,
        "Via and its compact form v"
    );
    assert_eq!(r.body().as_ref(), SDP.replace('\n', "\r\n").as_bytes());
}

/// RFC 4475 3.1.1.5 "Use of % When It Is Not an Escape" (esc02).
#[test]
fn rfc4475_3_1_1_5_esc02() {
    let m = crlf(
        "RE%47IST%45R sip:registrar.example.com SIP/2.0
To: \"%Z%45\" <sip:resource@example.com>
From: \"%Z%45\" <sip:resource@example.com>;tag=f232jadfj23
Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf
Via: SIP/2.0/TCP host.example.com;rport;branch=z9hG4bK209fna
CSeq: 29344 RE%47IST%45R
Max-Forwards: 70
Contact: <sip:alias1@host1.example.com>
C%6Fntact: <sip:alias2@host2.example.com>
Contact: <sip:alias3@host3.example.com>
l: 0

",
        "",
    );
    let Message::Request(r) = Message::parse(&m).unwrap() else {
        panic!()
    };
    assert_eq!(r.method().as_str(), "RE%47IST%45R");
    assert_eq!(
        r.headers().get_all("Contact").count(),
        2,
        "C%6Fntact is another header"
    );
    assert_eq!(
        r.header("C%6Fntact"),
        Some("<sip:alias2@host2.example.com>")
    );
}

/// RFC 4475 3.1.1.6 "Message with No LWS between Display Name and <" (lwsdisp).
#[test]
fn rfc4475_3_1_1_6_lwsdisp() {
    let m = crlf(
        "OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: caller<sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID: lwsdisp.1234abcd@funky.example.com
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw
l: 0

",
        "",
    );
    let Message::Request(r) = Message::parse(&m).unwrap() else {
        panic!()
    };
    let from = r.from().unwrap();
    assert_eq!(from.display_name.as_deref(), Some("caller"));
    assert_eq!(from.tag.as_deref(), Some("323"));
}

/// RFC 4475 3.1.1.8 "Extra Trailing Octets in a UDP Datagram" (dblreq): octets after
/// Content-Length are discarded.
#[test]
fn rfc4475_3_1_1_8_dblreq() {
    let first = "REGISTER sip:example.com SIP/2.0
To: sip:j.user@example.com
From: sip:j.user@example.com;tag=43251j3j324
Max-Forwards: 8
I: dblreq.0ha0isndaksdj99sdfafnl3lk233412
Contact: sip:j.user@host.example.com
CSeq: 8 REGISTER
Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492
Content-Length: 0

";
    let second = "INVITE sip:joe@example.com SIP/2.0
t: sip:joe@example.com
From: sip:caller@example.net;tag=141334
Max-Forwards: 8
Call-ID: dblreq.0ha0isnda977644900765@192.0.2.15
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw380234
Content-Type: application/sdp
Content-Length: {len}

";
    let mut m = crlf(first, "");
    m.extend_from_slice(&crlf(second, SDP));
    let Message::Request(r) = Message::parse(&m).unwrap() else {
        panic!()
    };
    assert_eq!(*r.method(), Method::Register);
    assert!(r.body().is_empty());
    assert_eq!(
        r.call_id().unwrap(),
        "dblreq.0ha0isndaksdj99sdfafnl3lk233412",
        "compact I: matches Call-ID"
    );
}

/// RFC 4475 3.1.1.9 "Semicolon-Separated Parameters in URI User Part" (semiuri), with a folded Accept.
#[test]
fn rfc4475_3_1_1_9_semiuri() {
    let m = crlf(
        "OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0
To: sip:j_user@example.com
From: sip:caller@example.org;tag=33242
Max-Forwards: 3
Call-ID: semiuri.0ha0isndaksdj
CSeq: 8 OPTIONS
Accept: application/sdp, application/pkcs7-mime,
        multipart/mixed, multipart/signed,
        message/sip, message/sipfrag
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw
l: 0

",
        "",
    );
    let Message::Request(r) = Message::parse(&m).unwrap() else {
        panic!()
    };
    assert_eq!(r.uri(), "sip:user;par=u%40example.net@example.com");
    assert_eq!(
        r.header("accept"),
        Some(
            "application/sdp, application/pkcs7-mime, multipart/mixed, multipart/signed, message/sip, message/sipfrag"
        )
    );
}

/// RFC 4475 3.1.1.10 "Varied and Unknown Transport Types" (transports).
#[test]
fn rfc4475_3_1_1_10_transports() {
    let m = crlf(
        "OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: <sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID:  transports.kijh4akdnaqjkwendsasfdj
Accept: application/sdp
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw
Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf
Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj
Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en
Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee
l: 0

",
        "",
    );
    let Message::Request(r) = Message::parse(&m).unwrap() else {
        panic!()
    };
    assert_eq!(r.headers().get_all("via").count(), 5);
    assert_eq!(r.top_via().unwrap().branch.as_deref(), Some("z9hG4bKkdjuw"));
}

/// RFC 4475 3.1.1.13 "Empty Reason Phrase" (noreason) and 3.1.1.12 (unusual reason phrase).
#[test]
fn rfc4475_3_1_1_12_13_reason_phrases() {
    for status_line in [
        "SIP/2.0 100 ",
        "SIP/2.0 200 = 2**3 * 5**2 \u{43d}\u{43e} \u{441}\u{442}\u{43e}",
    ] {
        let m = crlf(
            &format!(
                "{status_line}
Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe
Call-ID: noreason.asndj203insdf99223ndf
CSeq: 35 INVITE
From: <sip:user@example.com>;tag=11141343
To: <sip:user@example.edu>;tag=2229
Content-Length: 0

"
            ),
            "",
        );
        let Message::Response(r) = Message::parse(&m).unwrap() else {
            panic!()
        };
        assert!(r.status() == StatusCode::TRYING || r.status() == StatusCode::OK);
    }
}

/// A well-formed base request; each invalid case below changes one thing (RFC 4475 3.1.2).
const GOOD: &str = "OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: <sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID: base.1234abcd@example.com
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw
Content-Length: 0

";

#[test]
fn base_request_is_valid() {
    Message::parse(&crlf(GOOD, "")).unwrap();
}

fn rejected(m: &[u8]) -> ParseError {
    match Message::parse(m) {
        Err(e) => e,
        Ok(msg) => panic!("accepted: {msg:?}"),
    }
}

#[test]
fn rfc4475_3_1_2_invalid_messages_are_rejected() {
    let cases: &[(&str, &str, &str, ParseError)] = &[
        // 3.1.2.2 Content Length Larger Than Message (clerr)
        (
            "3.1.2.2",
            "Content-Length: 0",
            "Content-Length: 9999",
            ParseError::BodyTruncated,
        ),
        // 3.1.2.3 Negative Content-Length (ncl)
        (
            "3.1.2.3",
            "Content-Length: 0",
            "Content-Length: -999",
            ParseError::ContentLength,
        ),
        // 3.1.2.4 Request Scalar Fields with Overlarge Values (scalar02)
        (
            "3.1.2.4 CSeq",
            "CSeq: 60 OPTIONS",
            "CSeq: 36893488147419103232 OPTIONS",
            ParseError::BadHeader("CSeq"),
        ),
        (
            "3.1.2.4 Max-Forwards",
            "Max-Forwards: 70",
            "Max-Forwards: 300",
            ParseError::BadHeader("Max-Forwards"),
        ),
        // 3.1.2.6 Unterminated Quoted String in Display Name (quotbal)
        (
            "3.1.2.6",
            "To: sip:user@example.com",
            "To: \"Mr. J. User <sip:j.user@example.com>",
            ParseError::BadHeader("To"),
        ),
        // 3.1.2.7 <> Enclosing Request-URI (ltgtruri)
        (
            "3.1.2.7",
            "OPTIONS sip:user@example.com SIP/2.0",
            "OPTIONS <sip:user@example.com> SIP/2.0",
            ParseError::StartLine,
        ),
        // 3.1.2.8 Malformed SIP Request-URI (embedded LWS) (lwsruri)
        (
            "3.1.2.8",
            "OPTIONS sip:user@example.com SIP/2.0",
            "OPTIONS sip:user@example.com; lr SIP/2.0",
            ParseError::StartLine,
        ),
        // 3.1.2.9 Multiple SP Separating Request-Line Elements (lwsstart)
        (
            "3.1.2.9",
            "OPTIONS sip:user@example.com SIP/2.0",
            "OPTIONS  sip:user@example.com  SIP/2.0",
            ParseError::StartLine,
        ),
        // 3.1.2.10 SP Characters at End of Request-Line (trws)
        (
            "3.1.2.10",
            "OPTIONS sip:user@example.com SIP/2.0",
            "OPTIONS sip:user@example.com SIP/2.0  ",
            ParseError::StartLine,
        ),
        // 3.1.2.16 Unknown Protocol Version (badvers)
        (
            "3.1.2.16",
            "OPTIONS sip:user@example.com SIP/2.0",
            "OPTIONS sip:user@example.com SIP/7.0",
            ParseError::StartLine,
        ),
        // 3.1.2.17 Start Line and CSeq Method Mismatch (mismatch01)
        (
            "3.1.2.17",
            "CSeq: 60 OPTIONS",
            "CSeq: 60 INVITE",
            ParseError::CSeqMismatch,
        ),
    ];
    for (section, from, to, want) in cases {
        let m = crlf(&GOOD.replace(from, to), "");
        assert_eq!(&rejected(&m), want, "RFC 4475 {section}");
    }
    // 3.1.2.19 Overlarge Response Code (bigcode)
    let m = crlf(
        "SIP/2.0 4294967301 better not break the receiver
Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe
Call-ID: bigcode.asdof3uj203asdnf3429uasdhfas3ehjasdfas9i
CSeq: 353494 INVITE
From: <sip:user@example.com>;tag=39ansfi3
To: <sip:user@example.edu>;tag=902jndnke3
Content-Length: 0

",
        "",
    );
    assert_eq!(rejected(&m), ParseError::StartLine, "RFC 4475 3.1.2.19");
}

#[test]
fn framing_rejects_bad_input() {
    let good = crlf(GOOD, "");
    assert_eq!(rejected(b""), ParseError::Empty);
    assert_eq!(rejected(b"\r\n\r\n"), ParseError::Empty);
    assert_eq!(
        rejected(&good[..good.len() - 2]),
        ParseError::IncompleteHead
    );
    // LF-only head, NUL, missing colon, missing mandatory header, non-UTF-8, duplicate Content-Length
    assert_eq!(rejected(GOOD.as_bytes()), ParseError::IncompleteHead);
    let nul = crlf(&GOOD.replace("tag=323", "tag=3\u{0}23"), "");
    assert!(matches!(rejected(&nul), ParseError::ControlChar { .. }));
    let bare_lf = crlf(GOOD, "");
    let pos = bare_lf.windows(2).position(|w| w == b"\r\n").unwrap();
    let bare_lf = [&bare_lf[..pos], &bare_lf[pos + 1..]].concat();
    assert_eq!(rejected(&bare_lf), ParseError::ControlChar { line: 0 });
    assert_eq!(
        rejected(&crlf(
            &GOOD.replace("Max-Forwards: 70\n", "NoColonHere\n"),
            ""
        )),
        ParseError::HeaderLine { line: 3 }
    );
    assert_eq!(
        rejected(&crlf(
            &GOOD.replace("Call-ID: base.1234abcd@example.com\n", ""),
            ""
        )),
        ParseError::MissingHeader("Call-ID")
    );
    let mut non_utf8 = crlf(GOOD, "");
    non_utf8[60] = 0xff;
    assert_eq!(rejected(&non_utf8), ParseError::NonUtf8Head);
    let dup = crlf(
        &GOOD.replace("Content-Length: 0", "Content-Length: 0\nl: 4"),
        "abcd",
    );
    assert_eq!(rejected(&dup), ParseError::ContentLength);
    let many: String = (0..200).map(|i| format!("X-H{i}: v\n")).collect();
    let big = crlf(
        &GOOD.replace("Content-Length: 0\n", &format!("{many}Content-Length: 0\n")),
        "",
    );
    assert_eq!(rejected(&big), ParseError::TooManyHeaders { limit: 128 });
    assert_eq!(
        rejected(&vec![b'a'; 70_000]),
        ParseError::TooLarge { limit: 65_535 }
    );
}

fn invite() -> Request {
    Request::builder(Method::Invite, "sip:tempgroup@mcptt.example.org")
        .via("UDP", "192.0.2.1:5060", &mcx_sip::new_branch([1, 2, 3, 4, 5, 6, 7, 8]))
        .max_forwards(70)
        .from(Some("Dispatcher \"A\""), "sip:dispatcher@mcptt.example.org", &mcx_sip::new_tag([9; 8]))
        .to(None, "sip:tempgroup@mcptt.example.org", None)
        .call_id(&mcx_sip::new_call_id([7; 16], "192.0.2.1"))
        .cseq(1)
        .contact("<sip:dispatcher@192.0.2.1:5060>;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mcptt\"")
        .header(headers::P_PREFERRED_SERVICE, "urn:urn-7:3gpp-service.ims.icsi.mcptt")
        .header(headers::RESOURCE_PRIORITY, "mcpttp.4")
        .header(headers::ACCEPT_CONTACT, "*;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mcptt\"")
        .body("application/sdp", &b"v=0\r\n"[..])
        .build()
        .unwrap()
}

#[test]
fn build_parse_round_trip() {
    let req = invite();
    let wire = req.to_bytes();
    let Message::Request(back) = Message::parse(&wire).unwrap() else {
        panic!()
    };
    assert_eq!(back, req);
    assert_eq!(back.to_bytes(), wire, "byte-exact re-encoding");
    assert_eq!(
        back.from().unwrap().display_name.as_deref(),
        Some("Dispatcher \\\"A\\\"")
    );
    assert_eq!(back.header("resource-priority"), Some("mcpttp.4"));
    assert_eq!(
        back.contact().unwrap().unwrap().uri,
        "sip:dispatcher@192.0.2.1:5060"
    );
    assert!(
        back.top_via()
            .unwrap()
            .branch
            .unwrap()
            .starts_with(mcx_sip::MAGIC_COOKIE)
    );

    let resp = Response::for_request(&back, StatusCode::FORBIDDEN, Some("srvtag")).unwrap();
    let Message::Response(r2) = Message::parse(&resp.to_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(r2.status(), StatusCode::FORBIDDEN);
    assert_eq!(r2.reason(), "Forbidden");
    assert_eq!(r2.to().unwrap().tag.as_deref(), Some("srvtag"));
    assert_eq!(r2.cseq().unwrap(), (1, Method::Invite));
    assert_eq!(r2.top_via().unwrap(), back.top_via().unwrap());
}

#[test]
fn builders_reject_injection() {
    let b = |f: &dyn Fn(mcx_sip::RequestBuilder) -> mcx_sip::RequestBuilder| {
        f(Request::builder(Method::Options, "sip:a@example.com")
            .via("UDP", "h", "z9hG4bK1")
            .max_forwards(70)
            .from(None, "sip:a@example.com", "t")
            .to(None, "sip:b@example.com", None)
            .call_id("c")
            .cseq(1))
        .build()
    };
    assert!(b(&|x| x).is_ok());
    assert_eq!(
        b(&|x| x.header("X-A", "1\r\nEvil: 1")).unwrap_err(),
        BuildError::IllegalChar("header value")
    );
    assert_eq!(
        b(&|x| x.header("X-A", "a\0")).unwrap_err(),
        BuildError::IllegalChar("header value")
    );
    assert_eq!(
        b(&|x| x.header("Bad Name", "1")).unwrap_err(),
        BuildError::BadHeaderName
    );
    assert_eq!(
        b(&|x| x.call_id("abc\r\nEvil: 1")).unwrap_err(),
        BuildError::IllegalChar("Call-ID")
    );
    assert_eq!(
        b(&|x| x.via("UDP", "h", "z9hG4bK\n")).unwrap_err(),
        BuildError::IllegalChar("branch")
    );
    assert_eq!(
        b(&|x| x.via("UDP", "h", "nocookie")).unwrap_err(),
        BuildError::Malformed("branch")
    );
    assert!(Request::new(Method::Invite, "sip:a@b SIP/2.0\r\nX: y").is_err());
    assert!(Request::new(Method::Invite, "<sip:a@b>").is_err());
    let mut r = Response::new(StatusCode::OK).unwrap();
    assert!(r.set_reason("OK\r\nX: 1").is_err());
    let missing = Request::builder(Method::Options, "sip:a@example.com").build();
    assert_eq!(missing.unwrap_err(), BuildError::Missing("Via"));
}

#[test]
fn stream_decoder_frames_tcp() {
    let a = invite().to_bytes();
    let b = crlf(GOOD, "");
    let mut all = b"\r\n\r\n".to_vec(); // keep-alive
    all.extend_from_slice(&a);
    all.extend_from_slice(&b);
    // byte by byte
    let mut d = StreamDecoder::new(Limits::TCP);
    let mut got = Vec::new();
    for byte in &all {
        d.push(std::slice::from_ref(byte));
        while let Some(m) = d.next_message().unwrap() {
            got.push(m);
        }
    }
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].to_bytes(), a);
    assert_eq!(d.buffered(), 0);

    // Content-Length is mandatory on a stream, and errors are sticky.
    let mut d = StreamDecoder::new(Limits::TCP);
    d.push(&crlf(&GOOD.replace("Content-Length: 0\n", ""), ""));
    assert_eq!(d.next_message(), Err(ParseError::ContentLength));
    d.push(&b);
    assert_eq!(d.next_message(), Err(ParseError::ContentLength));

    // An announced body over the limit fails before it arrives.
    let mut d = StreamDecoder::new(Limits {
        max_message: 1000,
        ..Limits::TCP
    });
    d.push(&crlf(
        &GOOD.replace("Content-Length: 0", "Content-Length: 5000"),
        "",
    ));
    assert_eq!(d.next_message(), Err(ParseError::TooLarge { limit: 1000 }));
    // A head that never ends fails once it passes the limit.
    let mut d = StreamDecoder::new(Limits {
        max_message: 1000,
        ..Limits::TCP
    });
    d.push(&[b'x'; 1001]);
    assert_eq!(d.next_message(), Err(ParseError::TooLarge { limit: 1000 }));
}
