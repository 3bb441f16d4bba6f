//! `corral __prepare`: carries out a service's `[[prepare]]` steps in a
//! helper process of its own (started by the runtime before each start of
//! the service, as root or corral's own user, with the service's
//! environment), so the event loop never waits on a file system. Notes go
//! to stdout (the container log, marked `service/prepare`); the reason of
//! a failure is the last line on stderr, which becomes the start's error.
//!
//! Steps run as root on trees the service's user may own, so nothing here
//! follows a symbolic link an unprivileged user could have planted: paths
//! are walked a component at a time from `/` with `O_NOFOLLOW` (a link is
//! followed only when root owns it, as `/var/run -> /run`), and trees are
//! changed through directory descriptors (`fstatat`, `fchownat`,
//! `openat`), so swapping a directory for a link mid-walk leads nowhere.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, openat, readlinkat, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat, mkdirat};
use nix::unistd::{Gid, Uid, fchown, fchownat, symlinkat};

use crate::config::prepare::{Step, Verb};
use crate::json::{self, FromJson, Json, Object, ToJson, json_object};

/// The environment variable that carries the steps to the helper.
pub const PAYLOAD_VAR: &str = "CORRAL_PREPARE";

/// Largest template rendered.
const MAX_TEMPLATE: u64 = 1024 * 1024;

/// Directory levels a chown or copy descends at most.
const MAX_DEPTH: usize = 256;

/// Symbolic links (owned by root) followed in one path at most.
const MAX_LINKS: usize = 40;

/// What the runtime hands the helper: the steps with their owners
/// resolved to ids.
#[derive(Debug, PartialEq)]
pub struct Payload {
    /// The service file, for messages (`web.toml:12`).
    pub file: String,
    pub steps: Vec<(Step, (u32, u32))>,
}

json_object!(Payload { file, steps });

/// A step with its owner's ids: `{"verb": "mkdir", "path": ..., "mode":
/// ..., "line": N, "uid": U, "gid": G}`. Paths come from service files,
/// which are UTF-8.
impl ToJson for (Step, (u32, u32)) {
    fn write_json(&self, out: &mut Vec<u8>) {
        let (step, (uid, gid)) = self;
        let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
        let mut o = Object::new(out);
        match &step.verb {
            Verb::Mkdir { path: p, mode } => o
                .field("verb", "mkdir")
                .field("path", &path(p))
                .field("mode", mode),
            Verb::Chown { path: p } => o.field("verb", "chown").field("path", &path(p)),
            Verb::Copy { from, to } => o
                .field("verb", "copy")
                .field("from", &path(from))
                .field("to", &path(to)),
            Verb::Render { from, to, mode } => o
                .field("verb", "render")
                .field("from", &path(from))
                .field("to", &path(to))
                .field("mode", mode),
        };
        o.field("line", &step.line)
            .field("uid", uid)
            .field("gid", gid)
            .end();
    }
}

impl FromJson for (Step, (u32, u32)) {
    fn from_json(v: &Json<'_>) -> Result<Self, String> {
        let s = v.fields()?;
        let path = |key: &str| s.get::<String>(key).map(std::path::PathBuf::from);
        let verb: String = s.get("verb")?;
        let verb = match verb.as_str() {
            "mkdir" => Verb::Mkdir {
                path: path("path")?,
                mode: s.get("mode")?,
            },
            "chown" => Verb::Chown {
                path: path("path")?,
            },
            "copy" => Verb::Copy {
                from: path("from")?,
                to: path("to")?,
            },
            "render" => Verb::Render {
                from: path("from")?,
                to: path("to")?,
                mode: s.get("mode")?,
            },
            other => return Err(format!("unknown step `{other}`")),
        };
        let (uid, gid) = (s.get("uid")?, s.get("gid")?);
        let step = Step {
            verb,
            owner: crate::config::prepare::Owner::Ids { uid, gid },
            line: s.get("line")?,
        };
        Ok((step, (uid, gid)))
    }
}

/// The helper's main: every step in order, stopping at the first failure.
pub fn main() -> i32 {
    let payload: Payload = match std::env::var(PAYLOAD_VAR)
        .map_err(|e| e.to_string())
        .and_then(|p| json::from_str(&p))
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("corral __prepare is run by corral itself ({PAYLOAD_VAR}: {e})");
            return 2;
        }
    };
    for (i, (step, (uid, gid))) in payload.steps.iter().enumerate() {
        let what = step.verb.describe();
        match run(&step.verb, *uid, *gid) {
            Ok(Some(note)) => println!("{what}: {note}"),
            Ok(None) => {}
            Err(why) => {
                let _ = io::stdout().flush();
                eprintln!(
                    "prepare step {} ({what}, {}:{}): {why}",
                    i + 1,
                    payload.file,
                    step.line
                );
                return 1;
            }
        }
    }
    0
}

/// One step; what it did, when worth saying.
fn run(verb: &Verb, uid: u32, gid: u32) -> Result<Option<String>, String> {
    let owner = (Uid::from_raw(uid), Gid::from_raw(gid));
    match verb {
        Verb::Mkdir { path, mode } => mkdir(path, *mode, owner),
        Verb::Chown { path } => chown(path, owner),
        Verb::Copy { from, to } => copy(from, to, owner),
        Verb::Render { from, to, mode } => render(from, to, *mode, owner),
    }
}

type Owner = (Uid, Gid);

fn errno(e: Errno) -> String {
    io::Error::from(e).to_string()
}

/// The directory that holds `path` and its last component.
fn split(path: &Path) -> Result<(PathBuf, OsString), String> {
    match (path.parent(), path.file_name()) {
        (Some(p), Some(n)) => Ok((p.to_path_buf(), n.to_os_string())),
        _ => Err("names no file".into()),
    }
}

/// Opens directory `path`, a component at a time, never through a link
/// that is not root's. With `create`, missing directories are made (mode
/// 0755, root's) on the way.
fn open_dir(path: &Path, create: bool) -> Result<OwnedFd, String> {
    let mut todo: Vec<OsString> = Vec::new();
    push_components(&mut todo, path);
    let mut dir = openat(AT_FDCWD, "/", dir_flags(), Mode::empty()).map_err(errno)?;
    let mut here = PathBuf::from("/");
    let mut links = 0;
    while let Some(name) = todo.pop() {
        if name == ".." {
            here.pop();
            dir = open_abs(&here)?;
            continue;
        }
        match openat(&dir, name.as_os_str(), dir_flags(), Mode::empty()) {
            Ok(next) => {
                here.push(&name);
                dir = next;
            }
            Err(Errno::ENOENT) if create => {
                match mkdirat(&dir, name.as_os_str(), Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => {
                        return Err(format!(
                            "cannot make {}: {}",
                            here.join(&name).display(),
                            errno(e)
                        ));
                    }
                }
                todo.push(name);
            }
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                let st =
                    fstatat(&dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW).map_err(errno)?;
                let at = here.join(&name);
                if !is(&st, SFlag::S_IFLNK) {
                    return Err(format!("{} is not a directory", at.display()));
                }
                if st.st_uid != 0 {
                    return Err(format!(
                        "{} is a symbolic link owned by uid {}; corral follows only root's here",
                        at.display(),
                        st.st_uid
                    ));
                }
                links += 1;
                if links > MAX_LINKS {
                    return Err(format!("{}: too many symbolic links", path.display()));
                }
                let target = readlinkat(&dir, name.as_os_str()).map_err(errno)?;
                let target = Path::new(&target);
                if target.is_absolute() {
                    here = PathBuf::from("/");
                    dir = open_abs(&here)?;
                }
                push_components(&mut todo, target);
            }
            Err(e) => return Err(format!("{}: {}", here.join(&name).display(), errno(e))),
        }
    }
    Ok(dir)
}

/// Pushes the normal components of `p` so that they pop in order.
fn push_components(todo: &mut Vec<OsString>, p: &Path) {
    let parts: Vec<OsString> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    todo.extend(parts.into_iter().rev());
}

/// Reads a regular file of at most `limit` bytes that others may control
/// (a secret or environment file in a volume), as root: no link is followed
/// unless root owns it (Kubernetes secret mounts are root's links), no
/// directory on the way is entered through one, a FIFO never blocks.
pub fn read_untrusted(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileTypeExt;
    let fail = |why: String| io::Error::new(io::ErrorKind::InvalidInput, why);
    let mut path = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        let (parent, name) = split(&path).map_err(fail)?;
        let dir = open_dir(&parent, false).map_err(fail)?;
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        match openat(&dir, name.as_os_str(), flags, Mode::empty()) {
            Ok(fd) => {
                let file = std::fs::File::from(fd);
                let meta = file.metadata()?;
                if !meta.file_type().is_file() || meta.file_type().is_fifo() {
                    return Err(fail("is not a regular file".into()));
                }
                if meta.len() > limit {
                    return Err(fail(format!("is larger than {limit} bytes")));
                }
                let mut bytes = Vec::new();
                file.take(limit + 1).read_to_end(&mut bytes)?;
                return Ok(bytes);
            }
            Err(Errno::ELOOP) => {
                let st = fstatat(&dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                    .map_err(io::Error::from)?;
                if st.st_uid != 0 {
                    return Err(fail(format!(
                        "is a symbolic link owned by uid {}; corral follows only root's here",
                        st.st_uid
                    )));
                }
                let target =
                    PathBuf::from(readlinkat(&dir, name.as_os_str()).map_err(io::Error::from)?);
                path = if target.is_absolute() {
                    target
                } else {
                    parent.join(target)
                };
            }
            Err(e) => return Err(io::Error::from(e)),
        }
    }
    Err(fail("too many symbolic links".into()))
}

/// Why a directory entry could not be opened as a directory.
enum NotDir {
    Missing,
    Link,
    Other,
    Failed(String),
}

/// Opens entry `name` of `dir` as a directory, never through a link.
fn child_dir(dir: &OwnedFd, name: &OsStr) -> Result<OwnedFd, NotDir> {
    match openat(dir, name, dir_flags(), Mode::empty()) {
        Ok(fd) => Ok(fd),
        Err(Errno::ENOENT) => Err(NotDir::Missing),
        // O_NOFOLLOW with O_DIRECTORY reports a link as ELOOP or ENOTDIR.
        Err(Errno::ELOOP | Errno::ENOTDIR) => {
            match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) if is(&st, SFlag::S_IFLNK) => Err(NotDir::Link),
                Ok(_) => Err(NotDir::Other),
                Err(e) => Err(NotDir::Failed(errno(e))),
            }
        }
        Err(e) => Err(NotDir::Failed(errno(e))),
    }
}

const LINK: &str = "is a symbolic link; corral does not follow it";

fn open_abs(p: &Path) -> Result<OwnedFd, String> {
    // Only ever a prefix already walked safely.
    openat(AT_FDCWD, p, dir_flags(), Mode::empty()).map_err(errno)
}

fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

fn is(st: &FileStat, kind: SFlag) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == kind
}

/// Mode and owner of `fd` as asked; whether anything changed.
fn settle(fd: impl AsFd, mode: Option<u32>, (uid, gid): Owner) -> Result<bool, String> {
    let st = fstat(&fd).map_err(errno)?;
    let mut changed = false;
    if st.st_uid != uid.as_raw() || st.st_gid != gid.as_raw() {
        fchown(&fd, Some(uid), Some(gid)).map_err(errno)?;
        changed = true;
    }
    // After the chown, which may clear setuid and setgid bits.
    if let Some(m) = mode
        && (st.st_mode & 0o7777 != m || changed)
    {
        fchmod(&fd, Mode::from_bits_truncate(m)).map_err(errno)?;
        changed |= st.st_mode & 0o7777 != m;
    }
    Ok(changed)
}

fn mkdir(path: &Path, mode: u32, owner: Owner) -> Result<Option<String>, String> {
    let (parent, name) = split(path)?;
    let dir = open_dir(&parent, true)?;
    let created = match mkdirat(&dir, name.as_os_str(), Mode::from_bits_truncate(0o700)) {
        Ok(()) => true,
        Err(Errno::EEXIST) => false,
        Err(e) => return Err(errno(e)),
    };
    let fd = match child_dir(&dir, &name) {
        Ok(fd) => fd,
        Err(NotDir::Link) => return Err(LINK.into()),
        Err(NotDir::Other) => return Err("exists and is not a directory".into()),
        Err(NotDir::Missing) => return Err("vanished while being made".into()),
        Err(NotDir::Failed(e)) => return Err(e),
    };
    let changed = settle(&fd, Some(mode), owner)?;
    Ok(match (created, changed) {
        (true, _) => Some(format!("created ({:04o}, {}:{})", mode, owner.0, owner.1)),
        (false, true) => Some(format!(
            "mode and owner set ({:04o}, {}:{})",
            mode, owner.0, owner.1
        )),
        (false, false) => None,
    })
}

/// What a walk of a tree did.
#[derive(Default)]
struct Tally {
    seen: u64,
    changed: u64,
    other_fs: u64,
}

fn chown(path: &Path, owner: Owner) -> Result<Option<String>, String> {
    let (parent, name) = split(path)?;
    let dir = open_dir(&parent, false)?;
    let top = match child_dir(&dir, &name) {
        Ok(fd) => fd,
        Err(NotDir::Link) => return Err(LINK.into()),
        // A single file: its owner.
        Err(NotDir::Other) => {
            return chown_entry(&dir, &name, owner).map(|c| c.then(|| "owner set".to_string()));
        }
        Err(NotDir::Missing) => return Err("does not exist".into()),
        Err(NotDir::Failed(e)) => return Err(e),
    };
    let dev = fstat(&top).map_err(errno)?.st_dev;
    let mut tally = Tally::default();
    if settle(&top, None, owner)? {
        tally.changed += 1;
    }
    tally.seen += 1;
    walk_chown(&top, dev, owner, &mut tally, 0)?;
    let mounts = if tally.other_fs > 0 {
        format!(
            "; {} mount point(s) of other file systems left alone",
            tally.other_fs
        )
    } else {
        String::new()
    };
    Ok((tally.changed > 0 || tally.other_fs > 0).then(|| {
        format!(
            "{} of {} entries given to {}:{}{mounts}",
            tally.changed, tally.seen, owner.0, owner.1
        )
    }))
}

/// The owner of entry `name` of `dir`, not following a link.
fn chown_entry(dir: &OwnedFd, name: &OsStr, (uid, gid): Owner) -> Result<bool, String> {
    let st = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(errno)?;
    if st.st_uid == uid.as_raw() && st.st_gid == gid.as_raw() {
        return Ok(false);
    }
    fchownat(
        dir,
        name,
        Some(uid),
        Some(gid),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(errno)?;
    Ok(true)
}

fn entries(dir: &OwnedFd) -> Result<Vec<OsString>, String> {
    let dup = dir.try_clone().map_err(|e| e.to_string())?;
    let mut d = nix::dir::Dir::from_fd(dup).map_err(errno)?;
    let mut names = Vec::new();
    for e in d.iter() {
        let e = e.map_err(errno)?;
        let name = OsStr::from_bytes(e.file_name().to_bytes());
        if name != "." && name != ".." {
            names.push(name.to_os_string());
        }
    }
    Ok(names)
}

fn walk_chown(
    dir: &OwnedFd,
    dev: u64,
    owner: Owner,
    tally: &mut Tally,
    depth: usize,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("deeper than {MAX_DEPTH} levels"));
    }
    for name in entries(dir)? {
        let st = fstatat(dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW).map_err(errno)?;
        if st.st_dev != dev {
            tally.other_fs += 1;
            continue;
        }
        tally.seen += 1;
        if chown_entry(dir, &name, owner)? {
            tally.changed += 1;
        }
        if is(&st, SFlag::S_IFDIR) {
            // O_NOFOLLOW: a directory swapped for a link since the stat
            // is not entered.
            match child_dir(dir, &name) {
                Ok(sub) => walk_chown(&sub, dev, owner, tally, depth + 1)?,
                Err(NotDir::Link | NotDir::Other | NotDir::Missing) => {}
                Err(NotDir::Failed(e)) => return Err(e),
            }
        }
    }
    Ok(())
}

fn copy(from: &Path, to: &Path, owner: Owner) -> Result<Option<String>, String> {
    let src = std::fs::symlink_metadata(from).map_err(|e| format!("{}: {e}", from.display()))?;
    if !src.is_dir() {
        return Err(format!("{} is not a directory", from.display()));
    }
    let (parent, name) = split(to)?;
    let dir = open_dir(&parent, true)?;
    match mkdirat(&dir, name.as_os_str(), Mode::from_bits_truncate(0o700)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(errno(e)),
    }
    let dst = match child_dir(&dir, &name) {
        Ok(fd) => fd,
        Err(NotDir::Link) => return Err(format!("{} {LINK}", to.display())),
        Err(NotDir::Other) => {
            return Err(format!("{} exists and is not a directory", to.display()));
        }
        Err(NotDir::Missing) => return Err(format!("{} vanished while being made", to.display())),
        Err(NotDir::Failed(e)) => return Err(e),
    };
    if !entries(&dst)?.is_empty() {
        return Ok(Some(format!("skipped: {} is not empty", to.display())));
    }
    use std::os::unix::fs::PermissionsExt;
    let mut count = 0u64;
    copy_children(from, &dst, owner, &mut count, 0).map_err(|why| {
        format!(
            "{why}; {} now holds a partial copy ({count} entries): empty it to seed it again",
            to.display()
        )
    })?;
    settle(&dst, Some(src.permissions().mode() & 0o7777), owner)?;
    Ok(Some(format!("copied {count} entries")))
}

fn copy_children(
    from: &Path,
    dst: &OwnedFd,
    owner: Owner,
    count: &mut u64,
    depth: usize,
) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    if depth > MAX_DEPTH {
        return Err(format!("deeper than {MAX_DEPTH} levels"));
    }
    let list = std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))?;
    for entry in list {
        let entry = entry.map_err(|e| format!("{}: {e}", from.display()))?;
        let src = entry.path();
        let name = entry.file_name();
        let meta =
            std::fs::symlink_metadata(&src).map_err(|e| format!("{}: {e}", src.display()))?;
        let mode = meta.permissions().mode() & 0o7777;
        let kind = meta.file_type();
        if kind.is_symlink() {
            let target = std::fs::read_link(&src).map_err(|e| format!("{}: {e}", src.display()))?;
            symlinkat(&target, dst, name.as_os_str())
                .map_err(|e| format!("{}: {}", src.display(), errno(e)))?;
            fchownat(
                dst,
                name.as_os_str(),
                Some(owner.0),
                Some(owner.1),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(errno)?;
        } else if kind.is_dir() {
            mkdirat(dst, name.as_os_str(), Mode::from_bits_truncate(0o700))
                .map_err(|e| format!("{}: {}", src.display(), errno(e)))?;
            let sub = openat(dst, name.as_os_str(), dir_flags(), Mode::empty()).map_err(errno)?;
            copy_children(&src, &sub, owner, count, depth + 1)?;
            settle(&sub, Some(mode), owner)?;
        } else if kind.is_file() {
            let mut input =
                std::fs::File::open(&src).map_err(|e| format!("{}: {e}", src.display()))?;
            let out = openat(
                dst,
                name.as_os_str(),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
            .map_err(|e| format!("{}: {}", src.display(), errno(e)))?;
            let mut out = std::fs::File::from(out);
            io::copy(&mut input, &mut out).map_err(|e| format!("{}: {e}", src.display()))?;
            // setuid and setgid bits are not carried to a new owner.
            settle(&out, Some(mode & 0o1777), owner)?;
        } else {
            // A FIFO, socket or device in a template: not data to seed.
            continue;
        }
        *count += 1;
    }
    Ok(())
}

fn render(from: &Path, to: &Path, mode: u32, owner: Owner) -> Result<Option<String>, String> {
    let bytes = crate::files::read_regular(from, MAX_TEMPLATE, crate::files::Links::Follow)
        .map_err(|e| format!("{}: {e}", from.display()))?;
    let template =
        String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8 text", from.display()))?;
    let text = substitute(&template, |k| std::env::var(k).ok())
        .map_err(|(line, why)| format!("{}:{line}: {why}", from.display()))?;
    let (parent, name) = split(to)?;
    let dir = open_dir(&parent, true)?;
    let mut tmp = OsString::from(".");
    tmp.push(&name);
    tmp.push(format!(".corral-{}", std::process::id()));
    let fd = openat(
        &dir,
        tmp.as_os_str(),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(errno)?;
    let mut file = std::fs::File::from(fd);
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| e.to_string())
        .and_then(|()| settle(&file, Some(mode), owner))
        .and_then(|_| renameat(&dir, tmp.as_os_str(), &dir, name.as_os_str()).map_err(errno));
    if let Err(why) = written {
        let _ = nix::unistd::unlinkat(
            &dir,
            tmp.as_os_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
        return Err(why);
    }
    Ok(None)
}

/// `${VAR}`, `${VAR:-default}` (the default when VAR is unset or empty)
/// and `$$` (a dollar) replaced; any other `$` is left as it is. `Err` is
/// the line and what is wrong, naming the variable, never a value.
pub fn substitute(
    template: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<String, (usize, String)> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    let mut line = 1;
    while let Some(at) = rest.find('$') {
        let (before, after) = rest.split_at(at);
        line += before.matches('\n').count();
        out.push_str(before);
        let after = after.get(1..).unwrap_or_default();
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            let Some(end) = inner.find('}') else {
                return Err((line, "`${` without its `}`".into()));
            };
            let body = inner.get(..end).unwrap_or_default();
            let (name, default) = match body.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (body, None),
            };
            crate::config::environ::check_var_name(name).map_err(|why| (line, why))?;
            let value = match (env(name), default) {
                (Some(v), Some(d)) if v.is_empty() => d.to_string(),
                (Some(v), _) => v,
                (None, Some(d)) => d.to_string(),
                (None, None) => {
                    return Err((
                        line,
                        format!(
                            "${{{name}}} is not set and has no default (write ${{{name}:-default}}, or set it)"
                        ),
                    ));
                }
            };
            line += body.matches('\n').count();
            out.push_str(&value);
            rest = inner.get(end + 1..).unwrap_or_default();
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_take_variables_defaults_and_dollars() {
        let env = |k: &str| match k {
            "HOST" => Some("db".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        assert_eq!(
            substitute(
                "host=${HOST}\nport=${PORT:-5432}\nx=${EMPTY:-fallback} y=${EMPTY}\ncost=$$5 $HOME\n",
                env
            )
            .unwrap(),
            "host=db\nport=5432\nx=fallback y=\ncost=$5 $HOME\n"
        );
        assert_eq!(
            substitute("a\nb\nc=${MISSING}\n", env).unwrap_err(),
            (
                3,
                "${MISSING} is not set and has no default (write ${MISSING:-default}, or set it)"
                    .to_string()
            )
        );
        assert_eq!(substitute("x ${OPEN\n", env).unwrap_err().0, 1);
        assert!(substitute("${1BAD}", env).is_err());
    }
}
