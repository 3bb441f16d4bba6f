//! An INI file as Python's ConfigParser reads it with supervisord's
//! settings, so an import sees exactly the values supervisord saw:
//! `key = value` or `key: value` (the first `=` or `:` splits), keys
//! lowercased, `#` and `;` comments on a line of their own or, inline, after
//! whitespace (even inside quotes: ConfigParser does not know quotes),
//! continuation lines indented deeper than their key, joined with newlines.

/// One `[name]` section as written; a name given twice gives two sections
/// (the caller merges them, later keys winning, as ConfigParser does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub line: usize,
    pub entries: Vec<Entry>,
}

/// One `key = value`, the value's lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// Every section of `text`, or every line ConfigParser would refuse, as
/// `(line, what is wrong)`.
pub fn parse(text: &str) -> Result<Vec<Section>, Vec<(usize, String)>> {
    let mut sections: Vec<Section> = Vec::new();
    let mut errors = Vec::new();
    // The indentation of the current key's line: a deeper line continues
    // its value. `None` after a section header or a bad line.
    let mut key_indent: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let value = strip_comment(raw).trim();
        if value.is_empty() {
            // A blank line inside a value is kept (trailing ones are
            // trimmed at the end); a comment line is not.
            if raw.trim().is_empty()
                && key_indent.is_some()
                && let Some(e) = sections.last_mut().and_then(|s| s.entries.last_mut())
            {
                e.value.push('\n');
            }
            continue;
        }
        let indent = raw.len() - raw.trim_start().len();
        if let (Some(level), Some(e)) = (
            key_indent,
            sections.last_mut().and_then(|s| s.entries.last_mut()),
        ) && indent > level
        {
            e.value.push('\n');
            e.value.push_str(value);
            continue;
        }
        if let Some(name) = header(value) {
            sections.push(Section {
                name: name.to_string(),
                line,
                entries: Vec::new(),
            });
            key_indent = None;
            continue;
        }
        let Some(section) = sections.last_mut() else {
            errors.push((
                line,
                "a line before any [section] header: supervisord files start with one, e.g. [program:web]"
                    .to_string(),
            ));
            continue;
        };
        match value.find(['=', ':']) {
            Some(at) if !value[..at].trim().is_empty() => {
                section.entries.push(Entry {
                    key: value[..at].trim_end().to_lowercase(),
                    value: value[at + 1..].trim().to_string(),
                    line,
                });
                key_indent = Some(indent);
            }
            _ => {
                errors.push((line, format!("not `key = value` or a [section]: {value:?}")));
                key_indent = None;
            }
        }
    }
    for e in sections.iter_mut().flat_map(|s| s.entries.iter_mut()) {
        let kept = e.value.trim_end().len();
        e.value.truncate(kept);
    }
    if errors.is_empty() {
        Ok(sections)
    } else {
        Err(errors)
    }
}

/// `raw` less its comment: all of it when its first non-blank character is
/// `#` or `;`, else from the first `#` or `;` that starts the line or
/// follows whitespace.
fn strip_comment(raw: &str) -> &str {
    if raw.trim_start().starts_with(['#', ';']) {
        return "";
    }
    let mut prev_space = true;
    for (at, c) in raw.char_indices() {
        if (c == '#' || c == ';') && prev_space {
            return &raw[..at];
        }
        prev_space = c.is_whitespace();
    }
    raw
}

/// The name of a `[name]` line (up to its last `]`, as ConfigParser's
/// greedy pattern takes it).
pub fn header(value: &str) -> Option<&str> {
    let inner = value.strip_prefix('[')?;
    let end = inner.rfind(']')?;
    (end > 0).then(|| &inner[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Vec<(String, String)> {
        let s = parse(text).unwrap();
        s.into_iter()
            .flat_map(|s| s.entries)
            .map(|e| (e.key, e.value))
            .collect()
    }

    #[test]
    fn reads_values_as_configparser_does() {
        let text = "; top\n[program:web]\nCommand = /bin/app -x ; a comment\n\
                    directory: /srv ; c\nenvironment=A=\"1;2\",B=\"x #y\"\n\
                    user=www#data\n  # indented comment\nempty=\n";
        assert_eq!(
            one(text),
            [
                ("command".into(), "/bin/app -x".into()),
                ("directory".into(), "/srv".into()),
                // `;` after a non-space is kept; ` #` cuts even inside quotes.
                ("environment".into(), "A=\"1;2\",B=\"x".into()),
                ("user".into(), "www#data".into()),
                ("empty".into(), String::new()),
            ]
        );
    }

    #[test]
    fn continuation_lines_join_with_newlines() {
        let text = "[program:x]\ncommand = /bin/sh -c \"\n    echo a\n\n    echo b\"\n\nnext = 1\n";
        assert_eq!(
            one(text),
            [
                ("command".into(), "/bin/sh -c \"\necho a\n\necho b\"".into()),
                ("next".into(), "1".into()),
            ]
        );
    }

    #[test]
    fn sections_keep_their_lines_and_bad_lines_are_named() {
        let s = parse("[a]\nx=1\n[b:c] \ny : 2\n").unwrap();
        assert_eq!(
            (s[0].name.as_str(), s[0].line, s[1].name.as_str(), s[1].line),
            ("a", 1, "b:c", 3)
        );
        assert_eq!(s[1].entries[0].line, 4);
        let e = parse("x=1\n[a]\njust words\n=3\n").unwrap_err();
        assert_eq!(e.iter().map(|(l, _)| *l).collect::<Vec<_>>(), [1, 3, 4]);
        assert!(e[0].1.contains("before any [section]"), "{e:?}");
    }
}
