//! A small, bounded XML tree built with quick-xml's namespace-aware
//! reader: enough for the group and index documents, with limits checked
//! before anything grows (size, depth, element count), no DOCTYPE, only
//! the five predefined entities and character references.

use quick_xml::NsReader;
use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;

use crate::error::DocError;

/// Bounds for one parse.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_len: usize,
    pub(crate) max_depth: usize,
    pub(crate) max_elements: usize,
}

/// An attribute with its resolved namespace (`None` for unprefixed).
#[derive(Debug, Clone)]
pub(crate) struct Attr {
    pub(crate) ns: Option<String>,
    pub(crate) local: String,
    pub(crate) value: String,
}

/// An element with its resolved namespace, attributes (namespace
/// declarations left out), children and direct text.
#[derive(Debug, Clone, Default)]
pub(crate) struct Element {
    pub(crate) ns: Option<String>,
    pub(crate) local: String,
    pub(crate) attrs: Vec<Attr>,
    pub(crate) children: Vec<Self>,
    pub(crate) text: String,
}

impl Element {
    /// Whether this is `{ns}local`.
    pub(crate) fn is(&self, ns: &str, local: &str) -> bool {
        self.ns.as_deref() == Some(ns) && self.local == local
    }

    /// The unprefixed attribute `name`.
    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.is_none() && a.local == name)
            .map(|a| a.value.as_str())
    }

    /// Children named `{ns}local`.
    pub(crate) fn children_named<'a>(
        &'a self,
        ns: &'a str,
        local: &'a str,
    ) -> impl Iterator<Item = &'a Self> + 'a {
        self.children.iter().filter(move |c| c.is(ns, local))
    }

    /// The only child `{ns}local`, if any.
    ///
    /// # Errors
    /// [`DocError::DuplicateElement`] if there are several.
    pub(crate) fn at_most_one<'a>(
        &'a self,
        ns: &'a str,
        local: &'static str,
    ) -> Result<Option<&'a Self>, DocError> {
        let mut it = self.children_named(ns, local);
        let first = it.next();
        if it.next().is_some() {
            return Err(DocError::DuplicateElement(local));
        }
        Ok(first)
    }

    /// Exactly one child `{ns}local`.
    ///
    /// # Errors
    /// [`DocError::MissingElement`] or [`DocError::DuplicateElement`].
    pub(crate) fn exactly_one<'a>(
        &'a self,
        ns: &'a str,
        local: &'static str,
    ) -> Result<&'a Self, DocError> {
        self.at_most_one(ns, local)?
            .ok_or(DocError::MissingElement(local))
    }
}

fn xml_err(reader: &NsReader<&[u8]>, e: impl core::fmt::Display) -> DocError {
    let mut reason = e.to_string();
    reason.truncate(200);
    DocError::Xml {
        position: reader.buffer_position(),
        reason,
    }
}

fn resolved(r: &ResolveResult<'_>) -> Result<Option<String>, DocError> {
    match r {
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Bound(ns) => Ok(Some(String::from_utf8_lossy(ns.as_ref()).into_owned())),
        ResolveResult::Unknown(p) => Err(DocError::UnknownPrefix(
            String::from_utf8_lossy(p).chars().take(64).collect(),
        )),
    }
}

fn open(reader: &NsReader<&[u8]>, e: &BytesStart<'_>) -> Result<Element, DocError> {
    let (ns, local) = reader.resolver().resolve_element(e.name());
    let local = String::from_utf8_lossy(local.as_ref()).into_owned();
    let mut el = Element {
        ns: resolved(&ns)?,
        local,
        ..Element::default()
    };
    for a in e.attributes() {
        let a = a.map_err(|err| xml_err(reader, err))?;
        let key = a.key.as_ref();
        if key == b"xmlns" || key.starts_with(b"xmlns:") {
            continue;
        }
        let (ans, alocal) = reader.resolver().resolve_attribute(a.key);
        let value = a
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|err| xml_err(reader, err))?
            .into_owned();
        el.attrs.push(Attr {
            ns: resolved(&ans)?,
            local: String::from_utf8_lossy(alocal.as_ref()).into_owned(),
            value,
        });
    }
    Ok(el)
}

/// Parses `bytes` into its root element.
///
/// # Errors
/// A [`DocError`] naming the first problem; never panics.
pub(crate) fn parse(bytes: &[u8], limits: Limits) -> Result<Element, DocError> {
    if bytes.len() > limits.max_len {
        return Err(DocError::TooLarge {
            len: bytes.len(),
            max: limits.max_len,
        });
    }
    let text = core::str::from_utf8(bytes).map_err(|_| DocError::NotUtf8)?;
    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    loop {
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(e) => return Err(xml_err(&reader, e)),
        };
        match event {
            Event::Decl(d) => {
                if let Some(enc) = d.encoding() {
                    let enc = enc.map_err(|e| xml_err(&reader, e))?;
                    let enc = enc.as_ref();
                    if !enc.eq_ignore_ascii_case(b"utf-8") && !enc.eq_ignore_ascii_case(b"utf8") {
                        return Err(DocError::NotUtf8);
                    }
                }
            }
            Event::DocType(_) => return Err(DocError::DoctypeNotAllowed),
            Event::Start(e) | Event::Empty(e) if root.is_some() => {
                let _ = e;
                return Err(DocError::NotOneRoot);
            }
            Event::Start(e) => {
                count += 1;
                if count > limits.max_elements {
                    return Err(DocError::TooMany {
                        what: "elements",
                        max: limits.max_elements,
                    });
                }
                if stack.len() >= limits.max_depth {
                    return Err(DocError::TooDeep(limits.max_depth));
                }
                let el = open(&reader, &e)?;
                stack.push(el);
            }
            Event::Empty(e) => {
                count += 1;
                if count > limits.max_elements {
                    return Err(DocError::TooMany {
                        what: "elements",
                        max: limits.max_elements,
                    });
                }
                if stack.len() >= limits.max_depth {
                    return Err(DocError::TooDeep(limits.max_depth));
                }
                let el = open(&reader, &e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let Some(el) = stack.pop() else {
                    return Err(DocError::NotOneRoot);
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let s = t.decode().map_err(|e| xml_err(&reader, e))?;
                match stack.last_mut() {
                    Some(el) => el.text.push_str(&s),
                    None if s.trim().is_empty() => {}
                    None => return Err(DocError::NotOneRoot),
                }
            }
            Event::CData(t) => {
                let s = t.decode().map_err(|e| xml_err(&reader, e))?;
                match stack.last_mut() {
                    Some(el) => el.text.push_str(&s),
                    None => return Err(DocError::NotOneRoot),
                }
            }
            Event::GeneralRef(r) => {
                let c = if r.is_char_ref() {
                    r.resolve_char_ref()
                        .map_err(|e| xml_err(&reader, e))?
                        .ok_or_else(|| xml_err(&reader, "bad character reference"))?
                } else {
                    let name = r.decode().map_err(|e| xml_err(&reader, e))?;
                    match name.as_ref() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        other => {
                            return Err(DocError::UnknownEntity(other.chars().take(64).collect()));
                        }
                    }
                };
                match stack.last_mut() {
                    Some(el) => el.text.push(c),
                    None => return Err(DocError::NotOneRoot),
                }
            }
            Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(DocError::Xml {
            position: reader.buffer_position(),
            reason: "unclosed element".to_owned(),
        });
    }
    root.ok_or(DocError::NotOneRoot)
}

/// Escapes text and attribute values (all five predefined entities).
pub(crate) fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            // Keep CR/LF/TAB in attribute values literal after parsing.
            '\r' => o.push_str("&#13;"),
            '\n' => o.push_str("&#10;"),
            '\t' => o.push_str("&#9;"),
            c => o.push(c),
        }
    }
    o
}
