//! `[[prepare]]`: the declared steps that set a container up before a
//! service starts (runtime directories, a volume's owner, a volume seeded
//! from a template, config rendered from the environment), validated at
//! load. They run in a helper process at each start (see `crate::prepare`,
//! which carries them out, and the supervisor's `Preparing` state).

use std::path::PathBuf;

use toml::Spanned;

use super::checker::Checker;
use super::raw::{Bad, FromTree, from_table};
use super::users::UserDb;

/// One `[[prepare]]` table, as written.
#[derive(Debug, Default)]
pub struct RawStep {
    pub mkdir: Option<Spanned<String>>,
    pub chown: Option<Spanned<String>>,
    pub copy: Option<Spanned<RawFromTo>>,
    pub render: Option<Spanned<RawFromTo>>,
    pub mode: Option<Spanned<String>>,
    pub owner: Option<Spanned<String>>,
}

from_table!(RawStep {
    mkdir,
    chown,
    copy,
    render,
    mode,
    owner,
});

/// `{ from = "...", to = "..." }`.
#[derive(Debug, Default)]
pub struct RawFromTo {
    pub from: String,
    pub to: String,
}

/// As written, with both paths required.
#[derive(Default)]
struct MaybeFromTo {
    from: Option<String>,
    to: Option<String>,
}

from_table!(MaybeFromTo { from, to });

#[cfg(test)]
pub(super) const FROM_TO_KEYS: &[&str] = MaybeFromTo::KEYS;

impl FromTree for RawFromTo {
    fn from_tree(v: &Spanned<toml::de::DeValue<'_>>) -> Result<Self, Bad> {
        match MaybeFromTo::from_tree(v)? {
            MaybeFromTo {
                from: Some(from),
                to: Some(to),
            } => Ok(RawFromTo { from, to }),
            _ => Err(Bad {
                span: v.span(),
                message: "both `from` and `to` are needed: { from = \"...\", to = \"...\" }".into(),
            }),
        }
    }
}

/// Who a prepared path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The service's user and group (after `user_env`), or corral's own
    /// when it has none.
    Service,
    Ids {
        uid: u32,
        gid: u32,
    },
}

/// What one step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    /// A directory (and its parents); an existing one gets mode and
    /// owner, its contents untouched.
    Mkdir { path: PathBuf, mode: u32 },
    /// A tree given to the owner: not following symbolic links, not
    /// crossing into other file systems.
    Chown { path: PathBuf },
    /// `from` copied into `to` only when `to` is missing or empty.
    Copy { from: PathBuf, to: PathBuf },
    /// `${VAR}`, `${VAR:-default}` and `$$` of `from` replaced from the
    /// environment, written to `to` atomically.
    Render {
        from: PathBuf,
        to: PathBuf,
        mode: u32,
    },
}

/// A validated step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub verb: Verb,
    pub owner: Owner,
    /// The line of the step in its service file, for messages.
    pub line: usize,
}

impl Verb {
    /// `mkdir /run/app`, `render /run/app/app.conf`: the verb and the
    /// path it makes or changes, for messages.
    pub fn describe(&self) -> String {
        match self {
            Verb::Mkdir { path, .. } => format!("mkdir {}", path.display()),
            Verb::Chown { path } => format!("chown {}", path.display()),
            Verb::Copy { to, .. } => format!("copy to {}", to.display()),
            Verb::Render { to, .. } => format!("render {}", to.display()),
        }
    }

    /// The paths a step reads that should exist when the image is built.
    pub fn sources(&self) -> Option<&std::path::Path> {
        match self {
            Verb::Copy { from, .. } | Verb::Render { from, .. } => Some(from),
            Verb::Mkdir { .. } | Verb::Chown { .. } => None,
        }
    }
}

/// Validates every `[[prepare]]` step of a file.
pub(super) fn steps(
    c: &mut Checker<'_>,
    raw: &[Spanned<RawStep>],
    users: &UserDb,
    warnings: &mut Vec<String>,
) -> Vec<Step> {
    let mut out = Vec::new();
    for (i, spanned) in raw.iter().enumerate() {
        let n = i + 1;
        let at = format!("[[prepare]] step {n}");
        let line = c.source.line_of(spanned.span().start);
        let s = spanned.get_ref();
        let before = c.errors.len();
        let verbs = [
            s.mkdir.is_some(),
            s.chown.is_some(),
            s.copy.is_some(),
            s.render.is_some(),
        ];
        if verbs.iter().filter(|v| **v).count() != 1 {
            c.error(
                spanned,
                format!("{at} needs exactly one of mkdir, chown, copy and render"),
            );
            continue;
        }
        let mode = |c: &mut Checker<'_>, default: u32| -> u32 {
            let Some(m) = &s.mode else { return default };
            let text = m.get_ref();
            match u32::from_str_radix(text, 8) {
                Ok(v) if !text.is_empty() && v <= 0o7777 => v,
                _ => {
                    c.error(
                        m,
                        format!(
                            "{at}: mode `{}` is not an octal mode such as \"0755\"",
                            text.escape_debug()
                        ),
                    );
                    default
                }
            }
        };
        let no_mode = |c: &mut Checker<'_>, verb: &str| {
            if let Some(m) = &s.mode {
                c.error(m, format!("{at}: mode does not apply to {verb}: remove it"));
            }
        };
        let verb = if let Some(p) = &s.mkdir {
            let path = absolute(c, &at, "mkdir", p.get_ref(), p);
            Verb::Mkdir {
                path,
                mode: mode(c, 0o755),
            }
        } else if let Some(p) = &s.chown {
            no_mode(c, "chown (it changes owners only)");
            let path = absolute(c, &at, "chown", p.get_ref(), p);
            if path == std::path::Path::new("/") {
                c.error(
                    p,
                    format!("{at}: chown of / is refused: name the directory the service owns"),
                );
            }
            Verb::Chown { path }
        } else if let Some(ft) = &s.copy {
            no_mode(c, "copy (it keeps the template's modes)");
            let from = source(c, &at, "copy.from", &ft.get_ref().from, ft);
            let to = absolute(c, &at, "copy.to", &ft.get_ref().to, ft);
            Verb::Copy { from, to }
        } else if let Some(ft) = &s.render {
            let from = source(c, &at, "render.from", &ft.get_ref().from, ft);
            let to = absolute(c, &at, "render.to", &ft.get_ref().to, ft);
            Verb::Render {
                from,
                to,
                mode: mode(c, 0o644),
            }
        } else {
            continue;
        };
        let owner = match &s.owner {
            None => Owner::Service,
            Some(o) => match owner(o.get_ref(), users) {
                Ok(ids) => ids,
                Err(why) => {
                    c.error(o, format!("{at}: owner: {why}"));
                    Owner::Service
                }
            },
        };
        if c.errors.len() != before {
            continue;
        }
        if let Some(from) = verb.sources()
            && std::fs::symlink_metadata(from).is_err()
        {
            warnings.push(format!(
                "{}:{line}: {at}: {} does not exist here; the step fails unless it exists when the service starts",
                c.source.path.display(),
                from.display()
            ));
        }
        out.push(Step { verb, owner, line });
    }
    out
}

/// `text` as a path, which must be absolute (an error at `span` if not).
fn absolute<T>(c: &mut Checker<'_>, at: &str, key: &str, text: &str, span: &Spanned<T>) -> PathBuf {
    if text.contains('\0') || !text.starts_with('/') {
        c.error(
            span,
            format!(
                "{at}: {key} `{}` must be an absolute path",
                text.escape_debug()
            ),
        );
    }
    PathBuf::from(text)
}

/// A `from`: absolute, or relative to the service file's directory, so
/// templates can ship beside the service files.
fn source<T>(c: &mut Checker<'_>, at: &str, key: &str, text: &str, span: &Spanned<T>) -> PathBuf {
    if text.starts_with('/') || text.contains('\0') || text.is_empty() {
        return absolute(c, at, key, text, span);
    }
    let dir = c.source.path.parent().unwrap_or(std::path::Path::new("."));
    std::path::absolute(dir.join(text)).unwrap_or_else(|_| dir.join(text))
}

/// `root`, `user`, `user:group` or numbers, to ids.
fn owner(text: &str, db: &UserDb) -> Result<Owner, String> {
    let user = |name: &str| -> Result<(u32, u32), String> {
        if let Ok(uid) = name.parse::<u32>() {
            return Ok((uid, db.user_by_uid(uid).map_or(uid, |u| u.gid)));
        }
        db.user_by_name(name)
            .map(|u| (u.uid, u.gid))
            .ok_or_else(|| format!("unknown user `{name}`: it is not in /etc/passwd"))
    };
    let group = |name: &str| -> Result<u32, String> {
        if let Ok(gid) = name.parse::<u32>() {
            return Ok(gid);
        }
        db.group_by_name(name)
            .map(|g| g.gid)
            .ok_or_else(|| format!("unknown group `{name}`: it is not in /etc/group"))
    };
    let (uid, gid) = match text.split_once(':') {
        Some((u, g)) if !u.is_empty() && !g.is_empty() => (user(u)?.0, group(g)?),
        Some((u, "")) if !u.is_empty() => user(u)?,
        _ if text.is_empty() || text.contains(':') => {
            return Err(format!(
                "`{}` is not an owner: write \"root\", \"user\" or \"user:group\"",
                text.escape_debug()
            ));
        }
        _ => user(text)?,
    };
    if uid == u32::MAX || gid == u32::MAX {
        return Err("id 4294967295 is reserved (the kernel reads it as -1)".into());
    }
    Ok(Owner::Ids { uid, gid })
}
