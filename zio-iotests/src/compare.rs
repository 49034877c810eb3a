//! Comparing actual with expected output: trailing whitespace at line
//! ends is ignored, and differences are shown as a unified diff.

use similar::TextDiff;

/// `text` with trailing whitespace (including `\r`) cut from every line,
/// each line ending in `\n`.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// True if the two outputs differ only in trailing whitespace on lines.
pub fn outputs_match(expected: &str, actual: &str) -> bool {
    expected
        .lines()
        .map(str::trim_end)
        .eq(actual.lines().map(str::trim_end))
}

/// A unified diff from `expected` to `actual` (both normalized first),
/// with `--- old_label` and `+++ new_label` headers; empty if they match.
pub fn unified_diff(expected: &str, actual: &str, old_label: &str, new_label: &str) -> String {
    let (expected, actual) = (normalize(expected), normalize(actual));
    if expected == actual {
        return String::new();
    }
    TextDiff::from_lines(&expected, &actual)
        .unified_diff()
        .context_radius(3)
        .header(old_label, new_label)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_whitespace_is_ignored() {
        assert!(outputs_match("a\nb\n", "a  \nb\t\r\n"));
        assert!(outputs_match("a\n", "a"));
        assert!(!outputs_match("a\n", " a\n"));
        assert!(!outputs_match("a\n", "a\n\n"));
    }

    #[test]
    fn diff_has_headers_and_changes() {
        let diff = unified_diff(
            "one\ntwo\n",
            "one\nthree\n",
            "iotests/x.out",
            "/s/x.out.bad",
        );
        assert!(
            diff.starts_with("--- iotests/x.out\n+++ /s/x.out.bad\n"),
            "{diff}"
        );
        assert!(diff.contains("\n-two\n+three\n"), "{diff}");
        assert!(unified_diff("a \n", "a\n", "x", "y").is_empty());
    }
}
