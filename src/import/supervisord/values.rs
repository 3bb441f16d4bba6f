//! supervisord's value syntax, read as supervisord reads it: `%(name)s`
//! expansion (Python's `%` operator with a mapping), commands split by
//! `shlex.split` (POSIX rules, no shell), `environment` pairs (a `shlex`
//! token stream), booleans, sizes, exit codes and signals.

/// A value an expansion can take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    Str(String),
    Int(i64),
}

/// A piece of an expanded value: text, or `%(ENV_NAME)s` left for the
/// shell to expand at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Env(String),
}

/// `s` with every `%(name)...` replaced by `lookup(name)`; with
/// `defer_env`, a plain `%(ENV_X)s` becomes `Piece::Env("X")` instead.
pub fn expand(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<Val>,
    defer_env: bool,
) -> Result<Vec<Piece>, String> {
    let mut out: Vec<Piece> = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while let Some(at) = rest.find('%') {
        text.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(r) = rest.strip_prefix('%') {
            text.push('%');
            rest = r;
            continue;
        }
        let Some(r) = rest.strip_prefix('(') else {
            return Err(format!(
                "a lone `%` in {s:?}: supervisord reads `%(name)s`; write `%%` for a percent sign"
            ));
        };
        // Python matches parentheses inside the name.
        let (mut depth, mut end) = (1, None);
        for (i, c) in r.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(end) = end else {
            return Err(format!("`%(` without `)` in {s:?}"));
        };
        let name = &r[..end];
        let (spec, after) = conversion(&r[end + 1..]).ok_or_else(|| {
            format!("`%({name})` in {s:?} has no conversion such as `s` or `d` after it")
        })?;
        rest = after;
        if defer_env
            && spec == Spec::plain('s')
            && let Some(var) = name.strip_prefix("ENV_")
        {
            if !text.is_empty() {
                out.push(Piece::Text(std::mem::take(&mut text)));
            }
            out.push(Piece::Env(var.to_string()));
            continue;
        }
        let value = lookup(name).ok_or_else(|| unknown(name))?;
        text.push_str(&spec.render(name, &value)?);
    }
    text.push_str(rest);
    if !text.is_empty() || out.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}

/// `expand` with nothing left for run time.
pub fn expand_text(s: &str, lookup: &dyn Fn(&str) -> Option<Val>) -> Result<String, String> {
    Ok(expand(s, lookup, false)?
        .into_iter()
        .map(|p| match p {
            Piece::Text(t) => t,
            Piece::Env(v) => format!("%(ENV_{v})s"),
        })
        .collect())
}

fn unknown(name: &str) -> String {
    match name.strip_prefix("ENV_") {
        Some(var) => format!(
            "%(ENV_{var})s: {var} is not set for this import (supervisord would refuse the file too): set it when importing, e.g. {var}=value corral import supervisord FILE"
        ),
        None => format!(
            "%({name})s: supervisord knows no `{name}` here (here, program_name, group_name, process_num, numprocs, host_node_name, ENV_X)"
        ),
    }
}

/// What follows `%(name)`: flags, width, precision and the conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Spec {
    left: bool,
    zero: bool,
    sign: Option<char>,
    width: usize,
    precision: Option<usize>,
    kind: char,
}

impl Spec {
    fn plain(kind: char) -> Spec {
        Spec {
            left: false,
            zero: false,
            sign: None,
            width: 0,
            precision: None,
            kind,
        }
    }

    fn render(&self, name: &str, value: &Val) -> Result<String, String> {
        let body = match (self.kind, value) {
            ('s', Val::Str(s)) => match self.precision {
                Some(p) => s.chars().take(p).collect(),
                None => s.clone(),
            },
            ('s', Val::Int(n)) => n.to_string(),
            ('d' | 'i' | 'u', Val::Int(n)) => {
                let digits = n.unsigned_abs().to_string();
                let digits = format!("{digits:0>w$}", w = self.precision.unwrap_or(0));
                let sign = if *n < 0 {
                    "-".to_string()
                } else {
                    self.sign.map(String::from).unwrap_or_default()
                };
                if self.zero && !self.left && sign.len() + digits.len() < self.width {
                    let pad = self.width - sign.len();
                    return Ok(format!("{sign}{digits:0>pad$}"));
                }
                format!("{sign}{digits}")
            }
            ('d' | 'i' | 'u', Val::Str(_)) => {
                return Err(format!(
                    "%({name}){}: `{name}` is text, not a number: use %({name})s",
                    self.kind
                ));
            }
            (k, _) => {
                return Err(format!(
                    "%({name}){k}: corral import reads the conversions s, d and i only"
                ));
            }
        };
        let w = self.width;
        Ok(if self.left {
            format!("{body:<w$}")
        } else {
            format!("{body:>w$}")
        })
    }
}

/// The spec at the start of `s` and what follows it.
fn conversion(s: &str) -> Option<(Spec, &str)> {
    let mut spec = Spec::plain('s');
    let mut chars = s.char_indices().peekable();
    while let Some(&(_, c)) = chars.peek() {
        match c {
            '-' => spec.left = true,
            '0' => spec.zero = true,
            '+' => spec.sign = Some('+'),
            ' ' => spec.sign = spec.sign.or(Some(' ')),
            '#' => {}
            _ => break,
        }
        chars.next();
    }
    let number = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
        let mut n: Option<usize> = None;
        while let Some(&(_, c)) = chars.peek() {
            let Some(d) = c.to_digit(10) else { break };
            n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize));
            chars.next();
        }
        n
    };
    spec.width = number(&mut chars).unwrap_or(0).min(4096);
    if chars.peek().is_some_and(|&(_, c)| c == '.') {
        chars.next();
        spec.precision = Some(number(&mut chars).unwrap_or(0).min(4096));
    }
    while chars
        .peek()
        .is_some_and(|&(_, c)| matches!(c, 'h' | 'l' | 'L'))
    {
        chars.next();
    }
    let (at, kind) = chars.next()?;
    spec.kind = kind;
    Some((spec, &s[at + kind.len_utf8()..]))
}

/// A piece of a command word: text, or an environment variable's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Lit(String),
    /// `quoted`: it stood inside quotes, so its value stays one word.
    Var {
        name: String,
        quoted: bool,
    },
}

/// One word of a split command.
pub type Word = Vec<Seg>;

/// What `shlex.split` makes of the command: words, each of text and
/// run-time variables.
pub fn split_command(pieces: &[Piece]) -> Result<Vec<Word>, String> {
    let mut items = Vec::new();
    for p in pieces {
        match p {
            Piece::Text(t) => items.extend(t.chars().map(Item::Ch)),
            Piece::Env(v) => items.push(Item::Var(v.clone())),
        }
    }
    Lexer::new(true, "").run(&items)
}

/// A command's words as plain strings, when no variable is left in them.
pub fn plain_words(words: &[Word]) -> Option<Vec<String>> {
    words
        .iter()
        .map(|w| {
            w.iter()
                .map(|s| match s {
                    Seg::Lit(t) => Some(t.as_str()),
                    Seg::Var { .. } => None,
                })
                .collect::<Option<String>>()
        })
        .collect()
}

/// The words as a POSIX shell command line that expands the variables at
/// run time: literal text single-quoted, a variable that stood in quotes
/// double-quoted, one that did not left to field splitting (as
/// supervisord split the value with the rest). `${X?}` fails the start
/// when X is unset, as supervisord refuses to expand an unknown name.
pub fn shell_words(words: &[Word]) -> String {
    let mut out = Vec::new();
    for w in words {
        let mut s = String::new();
        for seg in w {
            match seg {
                Seg::Lit(t) if !t.is_empty() => s.push_str(&shell_quote(t)),
                Seg::Lit(_) => {}
                Seg::Var { name, quoted: true } => s.push_str(&format!("\"${{{name}?}}\"")),
                Seg::Var {
                    name,
                    quoted: false,
                } => s.push_str(&format!("${{{name}?}}")),
            }
        }
        if s.is_empty() {
            s.push_str("''");
        }
        out.push(s);
    }
    out.join(" ")
}

/// `text` single-quoted for a POSIX shell, unless it needs no quotes.
pub fn shell_quote(text: &str) -> String {
    let safe = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@%".contains(c));
    if safe {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// `KEY="value",KEY2=value2` as supervisord's `dict_of_key_value_pairs`
/// reads it (a `shlex` token stream with `/.+-():` as word characters,
/// every fourth token skipped as the comma): pairs in order, a later key
/// replacing an earlier one in place.
pub fn environment(s: &str) -> Result<Vec<(String, String)>, String> {
    let items: Vec<Item> = s.chars().map(Item::Ch).collect();
    let tokens = Lexer::new(false, "#").run(&items)?;
    let tokens: Vec<String> = tokens
        .into_iter()
        .map(|w| {
            w.into_iter()
                .map(|s| match s {
                    Seg::Lit(t) => t,
                    Seg::Var { .. } => String::new(),
                })
                .collect()
        })
        .collect();
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        match tokens.get(i..i + 3) {
            Some([k, eq, v]) if eq == "=" => {
                match pairs.iter_mut().find(|(have, _)| have == k) {
                    Some(pair) => pair.1 = v.clone(),
                    None => pairs.push((k.clone(), v.clone())),
                }
                i += 4;
            }
            _ => {
                return Err(format!(
                    "environment: {s:?} is not KEY=value pairs as supervisord reads them: write KEY=\"value\",KEY2=\"value2\" (quote a value with spaces or characters other than letters, digits and /.+-():_)"
                ));
            }
        }
    }
    Ok(pairs)
}

#[derive(Debug, Clone)]
enum Item {
    Ch(char),
    Var(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Space,
    Word,
    Quote(char),
    /// After a backslash; the state to return to.
    Escape(Option<char>),
}

/// Python's `shlex` in POSIX mode: `split` is `whitespace_split` (the
/// command), else words of word characters and one-character
/// punctuation tokens (`environment`).
struct Lexer {
    split: bool,
    commenters: &'static str,
}

impl Lexer {
    fn new(split: bool, commenters: &'static str) -> Lexer {
        Lexer { split, commenters }
    }

    fn word_char(&self, c: char) -> bool {
        c.is_ascii_alphanumeric()
            || c == '_'
            || "/.+-():".contains(c)
            // shlex's POSIX word characters include Latin-1's letters.
            || (('\u{c0}'..='\u{ff}').contains(&c) && c != '\u{d7}' && c != '\u{f7}')
    }

    fn run(&self, items: &[Item]) -> Result<Vec<Word>, String> {
        let mut words: Vec<Word> = Vec::new();
        let mut word: Word = Vec::new();
        let mut quoted = false;
        let mut state = State::Space;
        let mut i = 0;
        let emit = |words: &mut Vec<Word>, word: &mut Word, quoted: &mut bool| {
            if !word.is_empty() || *quoted {
                words.push(std::mem::take(word));
            }
            *quoted = false;
        };
        while let Some(item) = items.get(i) {
            i += 1;
            let c = match item {
                Item::Var(name) => {
                    let (q, next) = match state {
                        State::Quote(q) => (true, State::Quote(q)),
                        State::Escape(Some(q)) => (true, State::Quote(q)),
                        _ => (false, State::Word),
                    };
                    word.push(Seg::Var {
                        name: name.clone(),
                        quoted: q,
                    });
                    state = next;
                    continue;
                }
                Item::Ch(c) => *c,
            };
            match state {
                State::Space | State::Word => {
                    if " \t\r\n".contains(c) {
                        emit(&mut words, &mut word, &mut quoted);
                        state = State::Space;
                    } else if self.commenters.contains(c) {
                        emit(&mut words, &mut word, &mut quoted);
                        while let Some(Item::Ch(n)) = items.get(i) {
                            i += 1;
                            if *n == '\n' {
                                break;
                            }
                        }
                        state = State::Space;
                    } else if c == '\\' {
                        state = State::Escape(None);
                    } else if c == '"' || c == '\'' {
                        quoted = true;
                        state = State::Quote(c);
                    } else if self.split || self.word_char(c) {
                        push_char(&mut word, c);
                        state = State::Word;
                    } else {
                        // Punctuation: a token of its own.
                        emit(&mut words, &mut word, &mut quoted);
                        words.push(vec![Seg::Lit(c.to_string())]);
                        state = State::Space;
                    }
                }
                State::Quote(q) => {
                    if c == q {
                        state = State::Word;
                    } else if c == '\\' && q == '"' {
                        state = State::Escape(Some(q));
                    } else {
                        push_char(&mut word, c);
                    }
                }
                State::Escape(back) => {
                    // In double quotes only `"` and `\` are escaped; the
                    // backslash stays before anything else.
                    if back.is_some() && c != '"' && c != '\\' {
                        push_char(&mut word, '\\');
                    }
                    push_char(&mut word, c);
                    state = match back {
                        Some(q) => State::Quote(q),
                        None => State::Word,
                    };
                }
            }
        }
        match state {
            State::Quote(_) => Err("no closing quotation".into()),
            State::Escape(_) => Err("a backslash at the end, escaping nothing".into()),
            _ => {
                emit(&mut words, &mut word, &mut quoted);
                Ok(words)
            }
        }
    }
}

fn push_char(word: &mut Word, c: char) {
    match word.last_mut() {
        Some(Seg::Lit(t)) => t.push(c),
        _ => word.push(Seg::Lit(c.to_string())),
    }
}

/// supervisord's booleans.
pub fn boolean(s: &str) -> Result<bool, String> {
    match s.to_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Ok(true),
        "no" | "false" | "off" | "0" => Ok(false),
        _ => Err(format!(
            "{s:?} is not a boolean: supervisord reads true/false, yes/no, on/off, 1/0"
        )),
    }
}

/// A whole number, as Python's `int()` reads one.
pub fn integer(s: &str) -> Result<i64, String> {
    s.trim()
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number"))
}

/// supervisord's sizes: bytes, or `KB`, `MB`, `GB` (powers of 1024).
pub fn byte_size(s: &str) -> Result<u64, String> {
    let lower = s.trim().to_lowercase();
    let (digits, unit) = match lower.len().checked_sub(2).map(|at| lower.split_at(at)) {
        Some((d, "kb")) => (d, 1 << 10),
        Some((d, "mb")) => (d, 1 << 20),
        Some((d, "gb")) => (d, 1 << 30),
        _ => (lower.as_str(), 1),
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("{s:?} is not a size: write bytes, or e.g. 50MB"))
}

/// `exitcodes`: a comma-separated list of codes 0 to 255.
pub fn exit_codes(s: &str) -> Result<Vec<i32>, String> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|c| match integer(c) {
            Ok(n @ 0..=255) => Ok(n as i32),
            _ => Err(format!(
                "exitcodes {s:?}: {c:?} is not an exit code (0 to 255)"
            )),
        })
        .collect()
}

/// A signal as supervisord reads it (a number, or a name with or without
/// SIG), as corral's name for it.
pub fn signal(s: &str) -> Result<String, String> {
    let t = s.trim();
    let name = match t.parse::<i32>() {
        Ok(n) => nix::sys::signal::Signal::try_from(n)
            .map(|sig| sig.as_str().to_string())
            .map_err(|_| format!("stopsignal {s:?}: no signal has that number"))?,
        Err(_) => {
            let upper = t.to_uppercase();
            if upper.starts_with("SIG") {
                upper
            } else {
                format!("SIG{upper}")
            }
        }
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|sig| sig.as_str().to_string())
        .map_err(|_| format!("stopsignal {s:?} is not a signal name such as TERM, QUIT, INT"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(name: &str) -> Option<Val> {
        match name {
            "program_name" => Some(Val::Str("web".into())),
            "process_num" => Some(Val::Int(3)),
            "ENV_HOME" => Some(Val::Str("/root".into())),
            _ => None,
        }
    }

    #[test]
    fn expands_like_pythons_percent_operator() {
        let e = |s: &str| expand_text(s, &vals);
        assert_eq!(e("%(program_name)s_%(process_num)02d").unwrap(), "web_03");
        assert_eq!(
            e("%(process_num)d|%(process_num)3d|%(process_num)-3d|").unwrap(),
            "3|  3|3  |"
        );
        assert_eq!(
            e("100%% %(process_num)s %(ENV_HOME)s").unwrap(),
            "100% 3 /root"
        );
        assert_eq!(e("%(program_name).2s").unwrap(), "we");
        assert!(e("%(nope)s").unwrap_err().contains("knows no `nope`"));
        assert!(e("%(ENV_NOPE)s").unwrap_err().contains("NOPE is not set"));
        assert!(e("50%").unwrap_err().contains("%%"));
        assert!(e("%(program_name)d").unwrap_err().contains("not a number"));
        // Deferred: only plain %(ENV_X)s.
        assert_eq!(
            expand("a %(ENV_PORT)s b", &vals, true).unwrap(),
            [
                Piece::Text("a ".into()),
                Piece::Env("PORT".into()),
                Piece::Text(" b".into())
            ]
        );
    }

    #[test]
    fn splits_commands_as_shlex_split() {
        let split =
            |s: &str| plain_words(&split_command(&[Piece::Text(s.into())]).unwrap()).unwrap();
        assert_eq!(
            split(r#"/bin/sh -c "echo \"hi\" \$x \y" 'it''s' a\ b "" e"f"g"#),
            [
                "/bin/sh",
                "-c",
                r#"echo "hi" \$x \y"#,
                "its",
                "a b",
                "",
                "efg"
            ]
        );
        assert_eq!(split("a\n  b\tc"), ["a", "b", "c"]);
        assert!(split_command(&[Piece::Text("'open".into())]).is_err());
        assert!(split_command(&[Piece::Text("trail\\".into())]).is_err());
    }

    #[test]
    fn deferred_variables_keep_their_quoting_in_the_shell_line() {
        let pieces = [
            Piece::Text("/app --port=".into()),
            Piece::Env("PORT".into()),
            Piece::Text(" \"--name=".into()),
            Piece::Env("NAME".into()),
            Piece::Text("\" it\\'s".into()),
        ];
        let words = split_command(&pieces).unwrap();
        assert_eq!(plain_words(&words), None);
        assert_eq!(
            shell_words(&words),
            r#"/app --port=${PORT?} --name="${NAME?}" 'it'\''s'"#
        );
    }

    #[test]
    fn environment_pairs_as_supervisord_reads_them() {
        assert_eq!(
            environment(r#"A="1,2",B=/x:y,C='q r',D="",A=3"#).unwrap(),
            [
                ("A".to_string(), "3".to_string()),
                ("B".into(), "/x:y".into()),
                ("C".into(), "q r".into()),
                ("D".into(), "".into())
            ]
        );
        assert_eq!(environment("").unwrap(), []);
        assert_eq!(
            environment("K=v\n  ,L=w").unwrap(),
            [("K".to_string(), "v".to_string()), ("L".into(), "w".into())]
        );
        assert!(environment("A=1 B=2").is_err());
        assert!(environment("P=/bin:$PATH").is_err());
    }

    #[test]
    fn scalars() {
        assert_eq!(byte_size("50MB"), Ok(50 << 20));
        assert_eq!(byte_size("1024"), Ok(1024));
        assert_eq!(byte_size("0"), Ok(0));
        assert!(byte_size("5 MiB").is_err());
        assert_eq!(exit_codes("0, 2"), Ok(vec![0, 2]));
        assert!(exit_codes("0,256").is_err());
        assert_eq!(signal("term").unwrap(), "SIGTERM");
        assert_eq!(signal("SIGQUIT").unwrap(), "SIGQUIT");
        assert_eq!(signal("1").unwrap(), "SIGHUP");
        assert!(signal("BOGUS").is_err());
        assert_eq!(boolean("Yes"), Ok(true));
        assert!(boolean("maybe").is_err());
    }
}
