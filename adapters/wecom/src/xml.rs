//! WeCom's XML: one root element of flat fields, text in CDATA or plain, and a few list
//! fields (`MemChangeList`) of `<Item>` children. Read tolerantly: unknown fields are kept
//! and ignored, a list may also come as comma-separated text.

use quick_xml::Reader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;

/// The fields of a WeCom XML document.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fields {
    values: Vec<(String, String)>,
    lists: Vec<(String, Vec<String>)>,
}

/// Why an XML document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed XML: {0}")]
pub struct XmlError(String);

/// Nested deeper than a field's children: not WeCom's layout.
const MAX_DEPTH: usize = 3;

impl Fields {
    /// Reads a document.
    pub fn parse(xml: &str) -> Result<Fields, XmlError> {
        let mut reader = Reader::from_str(xml);
        let mut fields = Fields::default();
        let mut path: Vec<String> = Vec::new();
        let mut text = String::new();
        let mut saw_root = false;
        loop {
            let event = reader
                .read_event()
                .map_err(|e| XmlError(format!("{e} at byte {}", reader.error_position())))?;
            match event {
                Event::Start(start) => {
                    if path.is_empty() && saw_root {
                        return Err(XmlError("more than one root element".to_owned()));
                    }
                    saw_root = true;
                    if path.len() >= MAX_DEPTH {
                        return Err(XmlError("nested too deep".to_owned()));
                    }
                    let name = start.local_name().into_inner().to_owned();
                    path.push(name);
                    text.clear();
                }
                Event::End(_) => {
                    match path.len() {
                        2 => fields
                            .values
                            .push((path[1].clone(), text.trim().to_owned())),
                        3 => {
                            let list = path[1].clone();
                            match fields.lists.iter_mut().find(|(n, _)| *n == list) {
                                Some((_, items)) => items.push(text.trim().to_owned()),
                                None => fields.lists.push((list, vec![text.trim().to_owned()])),
                            }
                        }
                        _ => {}
                    }
                    path.pop();
                    text.clear();
                }
                Event::Empty(_) if path.is_empty() => {
                    return Err(XmlError("the root element is empty".to_owned()));
                }
                Event::Text(t) => text.push_str(&t.xml10_content()),
                Event::CData(c) => text.push_str(&c.xml10_content()),
                Event::GeneralRef(r) => {
                    if let Some(c) = r.resolve_char_ref().map_err(|e| XmlError(e.to_string()))? {
                        text.push(c);
                    } else {
                        let name = r.xml10_content();
                        let value = resolve_predefined_entity(&name)
                            .ok_or_else(|| XmlError(format!("unknown entity &{name};")))?;
                        text.push_str(value);
                    }
                }
                Event::Eof => break,
                _ => {}
            }
        }
        if !saw_root {
            return Err(XmlError("no root element".to_owned()));
        }
        if !path.is_empty() {
            return Err(XmlError(format!("<{}> is not closed", path.join("/"))));
        }
        Ok(fields)
    }

    /// A field's text, when present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A field's text, when present and not empty.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// A numeric field.
    pub fn number(&self, name: &str) -> Option<i64> {
        self.text(name).and_then(|v| v.parse().ok())
    }

    /// A list field: its `<Item>` children, or its text split at commas.
    pub fn list(&self, name: &str) -> Vec<String> {
        if let Some((_, items)) = self.lists.iter().find(|(n, _)| n == name) {
            return items.iter().filter(|i| !i.is_empty()).cloned().collect();
        }
        self.get(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|i| !i.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdata_plain_text_entities_and_item_lists() {
        let fields = Fields::parse(
            "<xml>\n  <ToUserName><![CDATA[ww55ca070cb9b7eb22]]></ToUserName>\n  <CreateTime>1403610513</CreateTime>\n\
             <Content>a &lt;b&gt; &#x4F60;&#22909;</Content>\n\
             <MemChangeList><Item>Jack</Item><Item>Rose</Item></MemChangeList>\n</xml>",
        )
        .unwrap();
        assert_eq!(fields.get("ToUserName"), Some("ww55ca070cb9b7eb22"));
        assert_eq!(fields.number("CreateTime"), Some(1_403_610_513));
        assert_eq!(fields.get("Content"), Some("a <b> 你好"));
        assert_eq!(fields.list("MemChangeList"), ["Jack", "Rose"]);
        assert_eq!(fields.get("Missing"), None);
    }

    #[test]
    fn a_list_may_be_comma_separated_text() {
        let fields =
            Fields::parse("<xml><MemChangeList><![CDATA[wmA, wmB]]></MemChangeList></xml>")
                .unwrap();
        assert_eq!(fields.list("MemChangeList"), ["wmA", "wmB"]);
    }

    #[test]
    fn malformed_documents_are_refused_with_a_reason() {
        for bad in [
            "",
            "not xml",
            "<xml><A>1</A>",
            "<xml><A>1</B></xml>",
            "<xml/>",
            "<xml></xml><xml></xml>",
            "<xml><A>&bogus;</A></xml>",
            "<xml><a><b><c><d>1</d></c></b></a></xml>",
        ] {
            let err = Fields::parse(bad).unwrap_err();
            assert!(err.to_string().starts_with("malformed XML"), "{bad}: {err}");
        }
    }
}
