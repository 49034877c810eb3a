//! Driver options as QEMU writes them: `key=value` pairs joined by commas
//! (`,,` is a literal comma), with dotted keys for children
//! (`file.filename=x.img`). Drivers take the keys they know; whatever is left
//! is an error that names the option.

use std::collections::BTreeMap;

use crate::units::{SizeError, parse_size};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OptionMap {
    entries: BTreeMap<String, String>,
}

impl OptionMap {
    /// Parses `driver=raw,file.filename=x.img`.
    pub fn parse(text: &str) -> Result<OptionMap, String> {
        let mut map = OptionMap::default();
        let mut rest = text;
        while !rest.is_empty() {
            let (item, next) = split_item(rest);
            rest = next;
            if item.is_empty() {
                continue;
            }
            match item.split_once('=') {
                Some(("", _)) => {
                    return Err(format!("Invalid parameter '{item}'"));
                }
                Some((k, v)) => {
                    map.entries.insert(k.to_string(), v.to_string());
                }
                None => return Err(format!("Expected '=' after parameter '{item}'")),
            }
        }
        Ok(map)
    }

    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.entries.insert(key.to_string(), value.into());
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    pub fn take(&mut self, key: &str) -> Option<String> {
        self.entries.remove(key)
    }

    /// A size option (`size=1G`); the error names the option.
    pub fn take_size(&mut self, key: &str) -> Result<Option<u64>, String> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => match parse_size(&v) {
                Ok(n) => Ok(Some(n)),
                Err(SizeError::TooLarge) => Err(format!("Parameter '{key}' is too large: {v}")),
                Err(SizeError::Invalid) => Err(format!(
                    "Parameter '{key}' expects a size (bytes, or with a k/M/G/T/P/E suffix), got '{v}'"
                )),
            },
        }
    }

    /// An on/off option.
    pub fn take_bool(&mut self, key: &str) -> Result<Option<bool>, String> {
        match self.take(key).as_deref() {
            None => Ok(None),
            Some("on" | "true" | "yes") => Ok(Some(true)),
            Some("off" | "false" | "no") => Ok(Some(false)),
            Some(v) => Err(format!(
                "Parameter '{key}' expects 'on' or 'off', got '{v}'"
            )),
        }
    }

    /// Removes and returns the options of child `name` (`name.x=1` becomes
    /// `x=1`). A plain `name=FILENAME` becomes the child's `filename`.
    pub fn take_child(&mut self, name: &str) -> OptionMap {
        let prefix = format!("{name}.");
        let keys: Vec<String> = self
            .entries
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        let mut child = OptionMap::default();
        for k in keys {
            let v = self.entries.remove(&k).unwrap_or_default();
            child.entries.insert(k[prefix.len()..].to_string(), v);
        }
        if let Some(filename) = self.entries.remove(name) {
            child.entries.entry("filename".into()).or_insert(filename);
        }
        child
    }

    /// Fails on the first option nobody took.
    pub fn finish(&self, kind: &str, driver: &str) -> Result<(), String> {
        match self.entries.keys().next() {
            Some(k) => Err(format!(
                "Block {kind} '{driver}' does not support the option '{k}'"
            )),
            None => Ok(()),
        }
    }
}

/// Splits off one `key=value` item at the first single comma.
fn split_item(s: &str) -> (String, &str) {
    let mut item = String::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == ',' {
            if let Some(&(_, ',')) = chars.peek() {
                chars.next();
                item.push(',');
                continue;
            }
            return (item, &s[i + 1..]);
        }
        item.push(c);
    }
    (item, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dotted_children_and_escaped_commas() {
        let mut m = OptionMap::parse("driver=raw,file.driver=file,file.filename=a,,b.img").unwrap();
        assert_eq!(m.take("driver").as_deref(), Some("raw"));
        let mut child = m.take_child("file");
        assert_eq!(child.take("driver").as_deref(), Some("file"));
        assert_eq!(child.take("filename").as_deref(), Some("a,b.img"));
        assert!(m.finish("format", "raw").is_ok());
    }

    #[test]
    fn plain_child_name_is_a_filename() {
        let mut m = OptionMap::parse("driver=raw,file=x.img").unwrap();
        let mut child = m.take_child("file");
        assert_eq!(child.take("filename").as_deref(), Some("x.img"));
    }

    #[test]
    fn leftovers_and_bad_items_are_errors() {
        let m = OptionMap::parse("bogus=1").unwrap();
        assert_eq!(
            m.finish("format", "raw").unwrap_err(),
            "Block format 'raw' does not support the option 'bogus'"
        );
        assert!(OptionMap::parse("novalue").is_err());
        assert!(OptionMap::parse("=1").is_err());
        let mut m = OptionMap::parse("size=1x").unwrap();
        assert!(m.take_size("size").is_err());
        let mut m = OptionMap::parse("size=1.5k").unwrap();
        assert_eq!(m.take_size("size").unwrap(), Some(1536));
    }
}
