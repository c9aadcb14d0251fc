//! The MCPTT info body (TS 24.379 F.1, `application/vnd.3gpp.mcptt-info+xml`,
//! namespace `urn:3gpp:ns:mcpttInfo:1.0`): the elements a temporary group –
//! broadcast group call uses, written in XSD sequence order.

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use crate::Error;

/// The MCPTT info namespace.
pub const NAMESPACE: &str = "urn:3gpp:ns:mcpttInfo:1.0";

/// Largest body accepted (network input bound).
const MAX_LEN: usize = 16 * 1024;

/// The `mcptt-Params` this crate writes and reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct McpttInfo {
    /// `session-type` (`prearranged` for a group call).
    pub session_type: Option<String>,
    /// `mcptt-request-uri`: the called group (temporary or constituent).
    pub request_uri: Option<String>,
    /// `mcptt-calling-user-id`: the initiator.
    pub calling_user_id: Option<String>,
    /// `mcptt-calling-group-id`: the constituent group, toward servers
    /// and members.
    pub calling_group_id: Option<String>,
    /// `broadcast-ind`.
    pub broadcast: bool,
    /// `associated-group-id`: the temporary group ID, toward MC servers
    /// and members (the temporary group indicator).
    pub associated_group_id: Option<String>,
}

/// `s` escaped for XML text and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    escape_into(&mut o, s);
    o
}

/// [`escape`] appended to `out`: the runs between the five characters
/// XML reserves are copied whole (member URIs have none).
pub(crate) fn escape_into(out: &mut String, s: &str) {
    let mut from = 0;
    for (i, b) in s.bytes().enumerate() {
        let entity = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&apos;",
            _ => continue,
        };
        // ASCII octets: `i` is a character boundary.
        out.push_str(s.get(from..i).unwrap_or_default());
        out.push_str(entity);
        from = i + 1;
    }
    out.push_str(s.get(from..).unwrap_or_default());
}

impl McpttInfo {
    /// The XML document, elements in XSD sequence order.
    pub fn to_xml(&self) -> String {
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n");
        x.push_str(&format!(
            "<mcpttinfo xmlns=\"{NAMESPACE}\">\r\n<mcptt-Params>\r\n"
        ));
        if let Some(s) = &self.session_type {
            x.push_str(&format!("<session-type>{}</session-type>\r\n", escape(s)));
        }
        let uri = |x: &mut String, name: &str, v: &Option<String>| {
            if let Some(v) = v {
                x.push_str(&format!(
                    "<{name} type=\"Normal\"><mcpttURI>{}</mcpttURI></{name}>\r\n",
                    escape(v)
                ));
            }
        };
        uri(&mut x, "mcptt-request-uri", &self.request_uri);
        uri(&mut x, "mcptt-calling-user-id", &self.calling_user_id);
        uri(&mut x, "mcptt-calling-group-id", &self.calling_group_id);
        if self.broadcast {
            x.push_str("<broadcast-ind>true</broadcast-ind>\r\n");
        }
        uri(&mut x, "associated-group-id", &self.associated_group_id);
        x.push_str("</mcptt-Params>\r\n</mcpttinfo>\r\n");
        x
    }

    /// Parses a document: the root must be `mcpttinfo` in [`NAMESPACE`],
    /// with any prefix or none; elements of other namespaces (the schema's
    /// `anyExt` and `xs:any` extension points) and unknown elements are
    /// ignored; `broadcast-ind` takes every `xs:boolean` form (`true`,
    /// `false`, `1`, `0`, surrounding white space collapsed).
    ///
    /// # Errors
    /// [`Error::Info`] for malformed XML, a wrong root or namespace, an
    /// unbound prefix or a `broadcast-ind` that is not an `xs:boolean`.
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        if body.len() > MAX_LEN {
            return Err(Error::Info("body too large"));
        }
        let text = core::str::from_utf8(body).map_err(|_| Error::Info("not UTF-8"))?;
        let mut reader = NsReader::from_str(text);
        reader.config_mut().trim_text(true);
        let mut info = Self::default();
        // Each open element: its local name if in our namespace, else None.
        let mut stack: Vec<Option<String>> = Vec::new();
        let mut value = String::new();
        loop {
            match reader
                .read_event()
                .map_err(|_| Error::Info("malformed XML"))?
            {
                Event::Start(e) => {
                    let (ns, local) = reader.resolver().resolve_element(e.name());
                    let ours = match ns {
                        ResolveResult::Bound(n) => n.as_ref() == NAMESPACE.as_bytes(),
                        ResolveResult::Unbound => false,
                        ResolveResult::Unknown(_) => return Err(Error::Info("unbound prefix")),
                    };
                    let name = String::from_utf8_lossy(local.as_ref()).into_owned();
                    if stack.is_empty() {
                        if name != "mcpttinfo" {
                            return Err(Error::Info("root is not mcpttinfo"));
                        }
                        if !ours {
                            return Err(Error::Info("wrong namespace"));
                        }
                    }
                    if stack.len() > 16 {
                        return Err(Error::Info("too deeply nested"));
                    }
                    stack.push(ours.then_some(name));
                    value.clear();
                }
                Event::Text(t) => {
                    value.push_str(&t.decode().map_err(|_| Error::Info("bad text"))?);
                }
                Event::GeneralRef(r) => {
                    let name = r.decode().map_err(|_| Error::Info("bad reference"))?;
                    value.push(match name.as_ref() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        _ => return Err(Error::Info("unsupported entity reference")),
                    });
                }
                Event::End(_) => {
                    let Some(name) = stack.pop() else {
                        return Err(Error::Info("unbalanced"));
                    };
                    let v = core::mem::take(&mut value);
                    let Some(name) = name else { continue };
                    // `<x><mcpttURI>v</mcpttURI></x>` names the value by `x`.
                    let field = if name == "mcpttURI" {
                        stack.last().cloned().flatten().unwrap_or_default()
                    } else {
                        name
                    };
                    info.set(&field, v)?;
                }
                Event::Eof => break,
                _ => {}
            }
        }
        if !stack.is_empty() {
            return Err(Error::Info("unterminated document"));
        }
        Ok(info)
    }

    fn set(&mut self, field: &str, v: String) -> Result<(), Error> {
        match field {
            "session-type" => self.session_type = Some(v),
            "mcptt-request-uri" if !v.is_empty() => self.request_uri = Some(v),
            "mcptt-calling-user-id" if !v.is_empty() => self.calling_user_id = Some(v),
            "mcptt-calling-group-id" if !v.is_empty() => self.calling_group_id = Some(v),
            // XML Schema Part 2, 3.2.2: {true, false, 1, 0}, white space
            // collapsed.
            "broadcast-ind" => {
                self.broadcast = match v.trim() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(Error::Info("broadcast-ind is not an xs:boolean")),
                }
            }
            "associated-group-id" if !v.is_empty() => self.associated_group_id = Some(v),
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_xsd_order() {
        let info = McpttInfo {
            session_type: Some("prearranged".into()),
            request_uri: Some("sip:tg@mcx.test".into()),
            calling_user_id: Some("sip:d&x@mcx.test".into()),
            calling_group_id: Some("sip:a@mcx.test".into()),
            broadcast: true,
            associated_group_id: Some("sip:tg@mcx.test".into()),
        };
        let xml = info.to_xml();
        let order = [
            "session-type",
            "mcptt-request-uri",
            "mcptt-calling-user-id",
            "mcptt-calling-group-id",
            "broadcast-ind",
            "associated-group-id",
        ];
        let pos: Vec<usize> = order.iter().map(|n| xml.find(n).unwrap()).collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(McpttInfo::parse(xml.as_bytes()).unwrap(), info);
    }

    /// TS 24.379 F.1 (schema `urn:3gpp:ns:mcpttInfo:1.0`, elementFormDefault
    /// qualified): the namespace may be bound to any prefix, the schema's
    /// extension points carry elements of other namespaces, and
    /// broadcast-ind is an xs:boolean (XML Schema Part 2, 3.2.2).
    #[test]
    fn any_prefix_foreign_extensions_and_every_boolean_form() {
        let doc = |prefix: &str, b: &str| {
            let p = if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}:")
            };
            let xmlns = if prefix.is_empty() {
                "xmlns".to_owned()
            } else {
                format!("xmlns:{prefix}")
            };
            format!(
                "<?xml version=\"1.0\"?><{p}mcpttinfo {xmlns}=\"{NAMESPACE}\" xmlns:v=\"urn:vendor\">\
                 <{p}mcptt-Params><v:extra><{p}broadcast-ind>false</{p}broadcast-ind></v:extra>\
                 <{p}mcptt-calling-user-id type=\"Normal\"><{p}mcpttURI>sip:d@x</{p}mcpttURI></{p}mcptt-calling-user-id>\
                 <{p}broadcast-ind>{b}</{p}broadcast-ind>\
                 <{p}associated-group-id><{p}mcpttURI>sip:tg@x</{p}mcpttURI></{p}associated-group-id>\
                 <v:associated-group-id>sip:forged@x</v:associated-group-id>\
                 </{p}mcptt-Params></{p}mcpttinfo>"
            )
        };
        for prefix in ["", "m", "mcpttinfo"] {
            for (b, want) in [
                ("true", true),
                ("1", true),
                (" 1 ", true),
                ("false", false),
                ("0", false),
            ] {
                let i = McpttInfo::parse(doc(prefix, b).as_bytes()).unwrap();
                assert_eq!(i.broadcast, want, "{prefix:?} {b:?}");
                assert_eq!(i.calling_user_id.as_deref(), Some("sip:d@x"));
                // The vendor's element of the same local name is not ours.
                assert_eq!(i.associated_group_id.as_deref(), Some("sip:tg@x"));
            }
        }
        assert!(McpttInfo::parse(doc("m", "yes").as_bytes()).is_err());
        assert!(McpttInfo::parse(doc("m", "TRUE").as_bytes()).is_err());
        // An unbound prefix, and the right local name in another namespace.
        assert!(McpttInfo::parse(b"<m:mcpttinfo></m:mcpttinfo>").is_err());
        assert!(McpttInfo::parse(b"<mcpttinfo xmlns=\"urn:other\"></mcpttinfo>").is_err());
    }

    #[test]
    fn rejects_garbage() {
        assert!(McpttInfo::parse(b"<a>").is_err());
        assert!(McpttInfo::parse(b"<mcpttinfo xmlns=\"urn:x\"></mcpttinfo>").is_err());
        assert!(McpttInfo::parse(&[0xff, 0xfe]).is_err());
    }
}
