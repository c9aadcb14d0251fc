//! A small, bounded element tree built with quick-xml's namespace-aware
//! reader. The typed Annex D layer ([`super`]) reads it in schema order.
//!
//! Refused: non-UTF-8 input, DTDs (so no entity is ever expanded), entity
//! references other than the five predefined ones, unclosed elements,
//! content after the root element, and anything over the limits below.

use quick_xml::XmlVersion;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use zeroize::Zeroize;

use crate::error::XmlError;

/// Deepest nesting accepted (Annex D documents nest 5 deep).
const MAX_DEPTH: usize = 16;
/// Most elements in one document.
const MAX_ELEMENTS: usize = 512;
/// Most attributes on one element.
const MAX_ATTRIBUTES: usize = 16;
/// Longest text content of one element, in octets (an RSK in hex is 514).
pub(crate) const MAX_TEXT: usize = 8192;
/// Longest element or attribute name or namespace kept for error messages.
const MAX_NAME: usize = 256;

/// One attribute, with its namespace resolved.
#[derive(Debug)]
pub(crate) struct Attr {
    pub(crate) ns: Option<String>,
    pub(crate) name: String,
    pub(crate) value: String,
}

/// One element: resolved namespace, local name, attributes, child elements
/// and the concatenated text directly inside it.
///
/// The text may be key material (hex): it is zeroized on drop.
#[derive(Debug)]
pub(crate) struct Element {
    pub(crate) ns: Option<String>,
    pub(crate) name: String,
    pub(crate) attrs: Vec<Attr>,
    pub(crate) children: Vec<Self>,
    pub(crate) text: String,
}

impl Drop for Element {
    fn drop(&mut self) {
        self.text.zeroize();
    }
}

impl Element {
    /// The value of the attribute with this local name and namespace.
    pub(crate) fn attr(&self, ns: Option<&str>, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.name == name && a.ns.as_deref() == ns)
            .map(|a| a.value.as_str())
    }
}

/// A printable, bounded copy of a name from the document for errors.
pub(crate) fn sanitize(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(64).collect()
}

fn syntax(e: impl core::fmt::Display) -> XmlError {
    let mut msg: String = e
        .to_string()
        .chars()
        .filter(|c| !c.is_control())
        .take(160)
        .collect();
    if msg.is_empty() {
        msg.push_str("malformed XML");
    }
    XmlError::Syntax(msg)
}

fn owned_ns(ns: ResolveResult<'_>) -> Result<Option<String>, XmlError> {
    match ns {
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Bound(ns) => {
            let s = core::str::from_utf8(ns.0).map_err(|_| XmlError::NotUtf8)?;
            if s.len() > MAX_NAME {
                return Err(XmlError::Limit {
                    what: "namespace name",
                    limit: MAX_NAME,
                });
            }
            Ok(Some(s.to_owned()))
        }
        ResolveResult::Unknown(prefix) => Err(XmlError::Syntax(format!(
            "undeclared namespace prefix {}",
            sanitize(&String::from_utf8_lossy(&prefix))
        ))),
    }
}

fn name_string(bytes: &[u8]) -> Result<String, XmlError> {
    if bytes.len() > MAX_NAME {
        return Err(XmlError::Limit {
            what: "element or attribute name",
            limit: MAX_NAME,
        });
    }
    core::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| XmlError::NotUtf8)
}

fn push_text(stack: &mut [Element], text: &str) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(top) => {
            if top.text.len() + text.len() > MAX_TEXT {
                return Err(XmlError::Limit {
                    what: "element text",
                    limit: MAX_TEXT,
                });
            }
            top.text.push_str(text);
            Ok(())
        }
        // Outside the root only whitespace is allowed.
        None if text.chars().all(char::is_whitespace) => Ok(()),
        None => Err(XmlError::Syntax("text outside the root element".into())),
    }
}

/// Parses `doc` into its root element.
pub(crate) fn parse(doc: &str) -> Result<Element, XmlError> {
    let mut reader = NsReader::from_str(doc);
    reader.config_mut().enable_all_checks(true);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut elements = 0usize;
    loop {
        let (ns, event) = reader.read_resolved_event().map_err(syntax)?;
        let ns = match &event {
            Event::Start(_) | Event::Empty(_) => owned_ns(ns)?,
            _ => None,
        };
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                let empty = matches!(event, Event::Empty(_));
                if root.is_some() {
                    return Err(XmlError::Syntax("content after the root element".into()));
                }
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err(XmlError::Limit {
                        what: "number of elements",
                        limit: MAX_ELEMENTS,
                    });
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::Limit {
                        what: "element depth",
                        limit: MAX_DEPTH,
                    });
                }
                let mut attrs = Vec::new();
                for attr in start.attributes().with_checks(true) {
                    let attr = attr.map_err(syntax)?;
                    if attr.key.as_namespace_binding().is_some() {
                        continue;
                    }
                    if attrs.len() >= MAX_ATTRIBUTES {
                        return Err(XmlError::Limit {
                            what: "attributes of an element",
                            limit: MAX_ATTRIBUTES,
                        });
                    }
                    let (attr_ns, local) = reader.resolver().resolve_attribute(attr.key);
                    let attr_ns = owned_ns(attr_ns)?;
                    let value = attr
                        .normalized_value(XmlVersion::Implicit1_0)
                        .map_err(syntax)?;
                    if value.len() > MAX_TEXT {
                        return Err(XmlError::Limit {
                            what: "attribute value",
                            limit: MAX_TEXT,
                        });
                    }
                    attrs.push(Attr {
                        ns: attr_ns,
                        name: name_string(local.as_ref())?,
                        value: value.into_owned(),
                    });
                }
                let element = Element {
                    ns,
                    name: name_string(start.local_name().as_ref())?,
                    attrs,
                    children: Vec::new(),
                    text: String::new(),
                };
                if empty {
                    attach(&mut stack, &mut root, element);
                } else {
                    stack.push(element);
                }
            }
            Event::End(_) => {
                // quick-xml has checked that the end tag matches.
                let element = stack
                    .pop()
                    .ok_or_else(|| XmlError::Syntax("end tag without start tag".into()))?;
                attach(&mut stack, &mut root, element);
            }
            Event::Text(text) => {
                let text = text.decode().map_err(syntax)?;
                push_text(&mut stack, &text)?;
            }
            Event::CData(data) => {
                let data = data.decode().map_err(syntax)?;
                if stack.is_empty() {
                    return Err(XmlError::Syntax("CDATA outside the root element".into()));
                }
                push_text(&mut stack, &data)?;
            }
            Event::GeneralRef(reference) => {
                let c = match reference.resolve_char_ref().map_err(syntax)? {
                    Some(c) => c,
                    None => match reference.decode().map_err(syntax)?.as_ref() {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "apos" => '\'',
                        "quot" => '"',
                        _ => return Err(XmlError::Syntax("unknown entity reference".into())),
                    },
                };
                if stack.is_empty() {
                    return Err(XmlError::Syntax(
                        "reference outside the root element".into(),
                    ));
                }
                push_text(&mut stack, c.encode_utf8(&mut [0; 4]))?;
            }
            Event::DocType(_) => return Err(XmlError::DocType),
            Event::Decl(decl) => {
                if let Some(encoding) = decl.encoding() {
                    let encoding = encoding.map_err(syntax)?;
                    if !encoding.eq_ignore_ascii_case(b"utf-8") {
                        return Err(XmlError::NotUtf8);
                    }
                }
            }
            Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => {
                if let Some(open) = stack.last() {
                    return Err(XmlError::Truncated(sanitize(&open.name)));
                }
                return root.ok_or(XmlError::Empty);
            }
        }
    }
}

fn attach(stack: &mut [Element], root: &mut Option<Element>, element: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None => *root = Some(element),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn builds_tree_with_namespaces_and_entities() {
        let root = parse(
            r#"<?xml version="1.0" encoding="UTF-8"?>
            <a:R xmlns:a="urn:x" xmlns:x="urn:y" x:t="v&amp;w"><a:C>1&lt;2&#x41;<![CDATA[<z>]]></a:C><D/></a:R>"#,
        )
        .unwrap();
        assert_eq!(root.name, "R");
        assert_eq!(root.ns.as_deref(), Some("urn:x"));
        assert_eq!(root.attr(Some("urn:y"), "t"), Some("v&w"));
        assert_eq!(root.children[0].text, "1<2A<z>");
        assert_eq!(root.children[1].ns, None);
    }

    #[test]
    fn refuses_bad_documents() {
        assert_eq!(parse("").unwrap_err(), XmlError::Empty);
        assert_eq!(
            parse("<a><b></b>").unwrap_err(),
            XmlError::Truncated("a".into())
        );
        assert_eq!(
            parse("<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>").unwrap_err(),
            XmlError::DocType
        );
        assert!(matches!(parse("<a>&x;</a>"), Err(XmlError::Syntax(_))));
        assert!(matches!(parse("<a></b>"), Err(XmlError::Syntax(_))));
        assert!(matches!(parse("<a/><b/>"), Err(XmlError::Syntax(_))));
        assert!(matches!(parse("<p:a/>"), Err(XmlError::Syntax(_))));
        assert!(matches!(parse("<a/>text"), Err(XmlError::Syntax(_))));
        let deep = "<a>".repeat(40) + &"</a>".repeat(40);
        assert!(matches!(
            parse(&deep),
            Err(XmlError::Limit {
                what: "element depth",
                ..
            })
        ));
        let wide = format!("<a>{}</a>", "<b/>".repeat(600));
        assert!(matches!(parse(&wide), Err(XmlError::Limit { .. })));
        let long = format!("<a>{}</a>", "x".repeat(MAX_TEXT + 1));
        assert!(matches!(
            parse(&long),
            Err(XmlError::Limit {
                what: "element text",
                ..
            })
        ));
    }
}
