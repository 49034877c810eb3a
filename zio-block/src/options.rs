//! Driver options as QEMU writes them: `key=value` pairs joined by commas
//! (`,,` is a literal comma), with dotted keys for children
//! (`file.filename=x.img`). Drivers take the keys they know; whatever is left
//! is an error that names the option.
//!
//! A child's map keeps its parent's keys as they are, with the child's
//! prefix hidden, so taking a child is a split of the sorted map, not a
//! copy of every key: deep nesting costs what the text does.

use std::collections::BTreeMap;

use crate::units::{SizeError, parse_size};

#[derive(Clone, Debug, Default)]
pub struct OptionMap {
    /// Full keys, each starting with `prefix`.
    entries: BTreeMap<String, String>,
    /// What a key starts with that the map does not show (`file.` in the
    /// child `file`).
    prefix: String,
    /// How many children down from the parsed text this map is.
    depth: usize,
}

/// Equal when they hold the same options, whatever their prefixes.
impl PartialEq for OptionMap {
    fn eq(&self, other: &OptionMap) -> bool {
        self.entries.len() == other.entries.len()
            && self
                .entries
                .iter()
                .zip(&other.entries)
                .all(|((ka, va), (kb, vb))| {
                    ka[self.prefix.len()..] == kb[other.prefix.len()..] && va == vb
                })
    }
}

impl Eq for OptionMap {}

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

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// True if there are options for the child `name` (`name=` or `name.*`).
    pub fn has_child(&self, name: &str) -> bool {
        let key = self.full(name);
        let dotted = format!("{key}.");
        self.entries
            .keys()
            .any(|k| *k == key || k.starts_with(&dotted))
    }

    /// Sets every option of `other` here, replacing what is set already.
    pub fn merge(&mut self, other: OptionMap) {
        for (k, v) in other.entries {
            self.entries.insert(self.full(&k), v);
        }
    }

    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.entries.insert(self.full(key), value.into());
    }

    /// True when no option is left.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first option left (in key order), without the prefix.
    pub fn first_key(&self) -> Option<&str> {
        self.entries.keys().next().map(|k| &k[self.prefix.len()..])
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(&self.full(key))
    }

    pub fn take(&mut self, key: &str) -> Option<String> {
        self.entries.remove(&self.full(key))
    }

    /// How many children down from the parsed text this map is (0 for the
    /// text itself, 1 for its `file.` child, ...).
    pub fn depth(&self) -> usize {
        self.depth
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
        // The child's keys are the range [`name.`, `name/`): '/' follows '.'.
        let prefix = self.full(&format!("{name}."));
        let end = self.full(&format!("{name}/"));
        let mut entries = self.entries.split_off(&prefix);
        let mut after = entries.split_off(&end);
        self.entries.append(&mut after);
        let mut child = OptionMap {
            entries,
            prefix,
            depth: self.depth + 1,
        };
        if let Some(filename) = self.take(name) {
            let key = child.full("filename");
            child.entries.entry(key).or_insert(filename);
        }
        child
    }

    /// The options of a `json:{...}` image name (the text after `json:`),
    /// flattened as QEMU flattens them: `{"file": {"driver": "file"}}` is
    /// `file.driver=file`, array items are numbered (`k.0`, `k.1`), numbers
    /// and booleans become their text (`on`/`off`). The errors are QEMU's.
    pub fn from_json(text: &str) -> Result<OptionMap, String> {
        let value: serde_json::Value = json5::from_str(text).map_err(|e| {
            // One line: the parser's own message spans several.
            let json5::Error::Message { location, .. } = e;
            match location {
                Some(l) => format!(
                    "Could not parse the JSON options: JSON parse error at line {}, column {}",
                    l.line, l.column
                ),
                None => "Could not parse the JSON options: JSON parse error".into(),
            }
        })?;
        let serde_json::Value::Object(obj) = value else {
            return Err("Invalid JSON object given".into());
        };
        let mut opts = OptionMap::default();
        fn flatten(
            opts: &mut OptionMap,
            prefix: &str,
            v: &serde_json::Value,
        ) -> Result<(), String> {
            use serde_json::Value;
            match v {
                Value::Object(o) => {
                    for (k, v) in o {
                        flatten(opts, &format!("{prefix}{k}."), v)?;
                    }
                }
                Value::Array(a) => {
                    for (i, v) in a.iter().enumerate() {
                        flatten(opts, &format!("{prefix}{i}."), v)?;
                    }
                }
                Value::String(s) => opts.set(prefix.trim_end_matches('.'), s.clone()),
                Value::Number(n) => opts.set(prefix.trim_end_matches('.'), n.to_string()),
                Value::Bool(b) => {
                    let b = if *b { "on" } else { "off" };
                    opts.set(prefix.trim_end_matches('.'), b.to_string());
                }
                Value::Null => {
                    return Err(format!(
                        "Invalid option value for '{}'",
                        prefix.trim_end_matches('.')
                    ));
                }
            }
            Ok(())
        }
        flatten(&mut opts, "", &serde_json::Value::Object(obj))?;
        Ok(opts)
    }

    /// Fails on the first option nobody took, in QEMU's words (which say
    /// "doesn't" for a protocol driver, "does not" for the others).
    pub fn finish(&self, kind: &str, driver: &str) -> Result<(), String> {
        let verb = if kind == "protocol" {
            "doesn't"
        } else {
            "does not"
        };
        match self.entries.keys().next() {
            Some(k) => Err(format!(
                "Block {kind} '{driver}' {verb} support the option '{}'",
                &k[self.prefix.len()..]
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
    fn json_options_flatten_as_qemu_flattens_them() {
        let m = OptionMap::from_json(
            "{'driver': 'raw', \"size\": 4096, 'ro': true, 'file': {'driver': 'file', \
             'filename': 'a,b.img'}, 'list': ['x', {'y': false}]}",
        )
        .unwrap();
        let want = OptionMap::parse(
            "driver=raw,size=4096,ro=on,file.driver=file,file.filename=a,,b.img,list.0=x,list.1.y=off",
        )
        .unwrap();
        assert_eq!(m, want);
        assert_eq!(
            OptionMap::from_json("[1]").unwrap_err(),
            "Invalid JSON object given"
        );
        let e = OptionMap::from_json("{\"driver\":").unwrap_err();
        assert!(
            e.starts_with("Could not parse the JSON options: JSON parse error at line 1"),
            "{e}"
        );
        assert!(!e.contains('\n'));
        assert!(OptionMap::from_json("{'driver': null}").is_err());
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

    #[test]
    fn grandchildren_and_leftovers_name_their_own_keys() {
        let mut m =
            OptionMap::parse("driver=raw,file.driver=raw,file.file.filename=x,file.filex=1,filf=2")
                .unwrap();
        let mut c = m.take_child("file");
        assert_eq!(c.depth(), 1);
        assert_eq!(c.take("driver").as_deref(), Some("raw"));
        let mut g = c.take_child("file");
        assert_eq!(g.depth(), 2);
        assert_eq!(g, OptionMap::parse("filename=x").unwrap());
        assert_eq!(g.take("filename").as_deref(), Some("x"));
        assert!(g.finish("protocol", "file").is_ok());
        assert_eq!(
            c.finish("format", "raw").unwrap_err(),
            "Block format 'raw' does not support the option 'filex'"
        );
        m.take("driver");
        assert_eq!(m, OptionMap::parse("filf=2").unwrap());
        c.set("a", "b");
        assert_eq!(c.take("a").as_deref(), Some("b"));
    }

    /// Taking children 1000 deep costs about what the text does (each
    /// level used to copy every key below it).
    #[test]
    fn deep_nesting_is_taken_without_copying_keys() {
        let depth = 1000;
        let mut text = String::from("driver=raw");
        for d in 1..=depth {
            text.push_str(&format!(",{}driver=raw", "file.".repeat(d)));
        }
        let mut m = OptionMap::parse(&text).unwrap();
        for d in 0..depth {
            assert_eq!(m.take("driver").as_deref(), Some("raw"), "level {d}");
            m = m.take_child("file");
        }
        assert_eq!(m.depth(), depth);
        assert_eq!(m.take("driver").as_deref(), Some("raw"));
        assert!(m.finish("format", "raw").is_ok());
    }
}
