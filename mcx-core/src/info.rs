//! The MCPTT info body (TS 24.379 F.1, `application/vnd.3gpp.mcptt-info+xml`,
//! namespace `urn:3gpp:ns:mcpttInfo:1.0`): the elements a temporary group –
//! broadcast group call uses, written in XSD sequence order.

use quick_xml::Reader;
use quick_xml::events::Event;

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
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c => o.push(c),
        }
    }
    o
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

    /// Parses a document; unknown elements are ignored, the root must be
    /// `mcpttinfo` in [`NAMESPACE`].
    ///
    /// # Errors
    /// [`Error::Info`] for malformed XML, a wrong root or namespace.
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        if body.len() > MAX_LEN {
            return Err(Error::Info("body too large"));
        }
        let text = core::str::from_utf8(body).map_err(|_| Error::Info("not UTF-8"))?;
        let mut reader = Reader::from_str(text);
        reader.config_mut().trim_text(true);
        let mut info = Self::default();
        let mut stack: Vec<String> = Vec::new();
        let mut value = String::new();
        loop {
            match reader
                .read_event()
                .map_err(|_| Error::Info("malformed XML"))?
            {
                Event::Start(e) => {
                    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    if stack.is_empty() {
                        if name != "mcpttinfo" {
                            return Err(Error::Info("root is not mcpttinfo"));
                        }
                        let ns_ok = e.attributes().flatten().any(|a| {
                            a.key.as_ref() == b"xmlns" && a.value.as_ref() == NAMESPACE.as_bytes()
                        });
                        if !ns_ok {
                            return Err(Error::Info("wrong namespace"));
                        }
                    }
                    if stack.len() > 16 {
                        return Err(Error::Info("too deeply nested"));
                    }
                    stack.push(name);
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
                    // `<x><mcpttURI>v</mcpttURI></x>` names the value by `x`.
                    let field = if name == "mcpttURI" {
                        stack.last().cloned().unwrap_or_default()
                    } else {
                        name
                    };
                    let v = core::mem::take(&mut value);
                    match field.as_str() {
                        "session-type" => info.session_type = Some(v),
                        "mcptt-request-uri" if !v.is_empty() => info.request_uri = Some(v),
                        "mcptt-calling-user-id" if !v.is_empty() => {
                            info.calling_user_id = Some(v);
                        }
                        "mcptt-calling-group-id" if !v.is_empty() => {
                            info.calling_group_id = Some(v);
                        }
                        "broadcast-ind" => info.broadcast = v == "true",
                        "associated-group-id" if !v.is_empty() => {
                            info.associated_group_id = Some(v);
                        }
                        _ => {}
                    }
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

    #[test]
    fn rejects_garbage() {
        assert!(McpttInfo::parse(b"<a>").is_err());
        assert!(McpttInfo::parse(b"<mcpttinfo xmlns=\"urn:x\"></mcpttinfo>").is_err());
        assert!(McpttInfo::parse(&[0xff, 0xfe]).is_err());
    }
}
