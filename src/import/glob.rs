//! The files a supervisord `[include]` pattern names, as Python's
//! `glob.glob` finds them: `*`, `?` and `[...]` in any component, names
//! starting with `.` only when the pattern's component does, sorted.

use std::path::Path;

/// The regular files matching the absolute `pattern`, sorted.
pub fn files(pattern: &str) -> Vec<String> {
    let mut found = vec![String::new()];
    let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let mut next = Vec::new();
        for dir in &found {
            if !wild(part) {
                next.push(format!("{dir}/{part}"));
                continue;
            }
            let shown = if dir.is_empty() { "/" } else { dir.as_str() };
            let Ok(entries) = std::fs::read_dir(shown) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.') || part.starts_with('.'))
                .filter(|n| matches(part, n))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| format!("{dir}/{n}")));
        }
        if !last {
            next.retain(|p| Path::new(p).is_dir());
        }
        found = next;
    }
    found.retain(|p| Path::new(p).is_file());
    found.sort();
    found
}

fn wild(part: &str) -> bool {
    part.contains(['*', '?', '['])
}

/// fnmatch: `*` any run, `?` one character, `[abc]`, `[a-z]`, `[!x]`.
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    fn go(p: &[char], n: &[char]) -> bool {
        match (p.split_first(), n.split_first()) {
            (None, _) => n.is_empty(),
            (Some(('*', rest)), _) => {
                (0..=n.len()).any(|skip| n.get(skip..).is_some_and(|tail| go(rest, tail)))
            }
            (Some(('?', rest)), Some((_, tail))) => go(rest, tail),
            (Some(('[', rest)), Some((&c, tail))) => match class(rest) {
                Some((members, negate, len)) => {
                    in_class(&members, c) != negate && rest.get(len..).is_some_and(|r| go(r, tail))
                }
                // An unclosed `[` is a literal one.
                None => c == '[' && go(rest, tail),
            },
            (Some((&want, rest)), Some((&c, tail))) => want == c && go(rest, tail),
            (Some(_), None) => false,
        }
    }
    go(&p, &n)
}

/// The `[...]` class at the start of `p` (after the `[`): its members,
/// whether it is negated, and how many characters it took, `]` included.
fn class(p: &[char]) -> Option<(Vec<char>, bool, usize)> {
    let negate = p.first() == Some(&'!');
    let start = usize::from(negate);
    // A `]` first is a member, not the end.
    let end = start + 1 + p.get(start + 1..)?.iter().position(|&c| c == ']')?;
    Some((p.get(start..end)?.to_vec(), negate, end + 1))
}

/// Whether `c` is one of `members` (`a-z` being a range).
fn in_class(members: &[char], c: char) -> bool {
    let mut rest = members;
    while let Some((&first, tail)) = rest.split_first() {
        match tail {
            ['-', last, after @ ..] => {
                if (first..=*last).contains(&c) {
                    return true;
                }
                rest = after;
            }
            _ => {
                if first == c {
                    return true;
                }
                rest = tail;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_rules() {
        assert!(matches("*.conf", "web.conf"));
        assert!(!matches("*.conf", "web.conf.bak"));
        assert!(matches("w?b.[ch]onf", "web.conf"));
        assert!(matches("[!x]*", "web"));
        assert!(!matches("[!w]*", "web"));
        assert!(matches("[a-z][0-9]", "q7"));
        assert!(matches("a[", "a["));
        assert!(matches("[]]", "]"));
    }

    #[test]
    fn finds_files_sorted_without_dotfiles() {
        let dir = std::env::temp_dir().join(format!("corral-glob-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("conf.d/sub.conf")).unwrap();
        for f in ["b.conf", "a.conf", ".hidden.conf", "c.ini"] {
            std::fs::write(dir.join("conf.d").join(f), "").unwrap();
        }
        let d = dir.display();
        let got = files(&format!("{d}/conf.d/*.conf"));
        assert_eq!(
            got,
            [format!("{d}/conf.d/a.conf"), format!("{d}/conf.d/b.conf")]
        );
        assert_eq!(
            files(&format!("{d}/c*/c.ini")),
            [format!("{d}/conf.d/c.ini")]
        );
        assert!(files(&format!("{d}/none/*.conf")).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
