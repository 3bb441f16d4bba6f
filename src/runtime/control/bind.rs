//! Where the control socket goes: the path asked for, or, when the default
//! cannot be used (not root, a read-only /run) and none was named, the
//! documented fallback in a private directory, and when even that cannot
//! be made (a read-only root whose tmpfs /run belongs to root), an
//! abstract socket `@corral-UID`. An abstract socket has no file
//! permissions: anything in the network namespace may connect, and
//! SO_PEERCRED (access.rs) decides what it may do, as for the others.
//! `CORRAL_ABSTRACT_SOCKET=0` turns that last fallback off.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::path::Path;

use tracing::info;

use super::Control;
use super::access::Policy;
use crate::cli::RunOptions;

impl Control {
    /// Binds the socket (mode 0600). Creates a missing parent directory
    /// with mode 0700; removes a stale socket left by an earlier run, but
    /// refuses to steal one a live corral answers on.
    pub fn bind(path: &Path, policy: Policy) -> io::Result<Control> {
        if let Some(name) = crate::cli::abstract_name(path) {
            return Control::bind_abstract(path, name, policy);
        }
        // With a control group, its members may reach the socket (and get
        // read-only access from the checks below); without, only the owner.
        let (dir_mode, sock_mode) = match policy.control_gid {
            Some(_) => (0o750, 0o660),
            None => (0o700, 0o600),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(dir_mode)
                .create(dir)?;
            // The mode asked for is cut by the umask; set it exactly.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(dir_mode))?;
            if let Some(gid) = policy.control_gid {
                std::os::unix::fs::chown(dir, None, Some(gid))?;
            }
        }
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "that path exists and is not a socket; corral will not replace it",
                ));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another corral is listening there; give this one its own --socket",
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = bind_with_mode(path, sock_mode, policy.control_gid)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(sock_mode))?;
        if let Some(gid) = policy.control_gid {
            std::os::unix::fs::chown(path, None, Some(gid))?;
        }
        listener.set_nonblocking(true)?;
        Ok(Control::serve(listener, path, policy))
    }

    /// Binds the abstract socket `name` (`path` is `@name`).
    fn bind_abstract(path: &Path, name: &[u8], policy: Policy) -> io::Result<Control> {
        let listener = UnixListener::bind_addr(&SocketAddr::from_abstract_name(name)?)?;
        listener.set_nonblocking(true)?;
        Ok(Control::serve(listener, path, policy))
    }
}

/// Binds the control socket; when the default path cannot be used (not
/// root, read-only /run) and none was given, the documented fallbacks.
pub fn bind_control(opts: &RunOptions, policy: Policy) -> io::Result<Control> {
    let e = match Control::bind(&opts.socket, policy) {
        Err(e) if !opts.socket_named => e,
        other => return other,
    };
    let uid = policy.own_uid;
    let xdg = std::env::var("XDG_RUNTIME_DIR").ok();
    let fallback = crate::cli::fallback_socket(uid, xdg.as_deref());
    let private = fallback
        .parent()
        .map_or(Ok(()), |dir| ensure_private_dir(dir, uid))
        .and_then(|()| Control::bind(&fallback, policy));
    let e2 = match private {
        Ok(c) => {
            info!(
                "control socket at {} ({} is not usable: {e}); svctl finds it there",
                fallback.display(),
                opts.socket.display()
            );
            return Ok(c);
        }
        Err(e2) => e2,
    };
    if std::env::var("CORRAL_ABSTRACT_SOCKET").is_ok_and(|v| v == "0") {
        return Err(e2);
    }
    let name = crate::cli::abstract_socket(uid);
    let c = Control::bind(&name, policy)?;
    info!(
        "control socket at {} (abstract: {} is not usable: {e}; {} neither: {e2}); svctl finds it there",
        name.display(),
        opts.socket.display(),
        fallback.display()
    );
    Ok(c)
}

/// A directory only `uid` can use: created with mode 0700, or, if it is
/// there already, a real directory owned by `uid` with no access for
/// others (someone else may not prepare it for us in /tmp).
fn ensure_private_dir(dir: &std::path::Path, uid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let meta = std::fs::symlink_metadata(dir)?;
            if meta.is_dir() && meta.uid() == uid && meta.mode() & 0o077 == 0 {
                Ok(())
            } else {
                Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "{} exists but is not a private directory of uid {uid}",
                        dir.display()
                    ),
                ))
            }
        }
        // XDG_RUNTIME_DIR/corral: its parent exists; /tmp too.
        Err(e) => Err(e),
    }
}

/// Binds a Unix socket at `path` that has `mode` (and, for root, group
/// `gid`) from the moment it exists: bind(2) makes the file with the
/// umask applied and corral's group, and a client may connect before a
/// chmod or chown after it. corral is single-threaded, so the umask and
/// effective group set around the call affect nothing else. The caller
/// still sets both afterwards (a non-root corral cannot take the group).
pub fn bind_with_mode(path: &Path, mode: u32, gid: Option<u32>) -> io::Result<UnixListener> {
    use nix::sys::stat::{Mode, umask};
    use nix::unistd::{Gid, getegid, setegid};
    let old_mask = umask(Mode::from_bits_truncate(0o777 & !mode));
    let old_gid = getegid();
    let switched = gid.is_some_and(|g| setegid(Gid::from_raw(g)).is_ok());
    let bound = UnixListener::bind(path);
    if switched && setegid(old_gid).is_err() {
        tracing::error!(
            "cannot switch back to group {old_gid} after binding {}",
            path.display()
        );
    }
    umask(old_mask);
    bound
}
