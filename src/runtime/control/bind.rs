//! Where the control socket goes: the path asked for, or, when the default
//! cannot be used (not root, a read-only /run) and none was named, the
//! documented fallback in a private directory.

use tracing::info;

use super::Control;
use super::access::Policy;
use crate::cli::RunOptions;

/// Binds the control socket; when the default path cannot be used (not
/// root, read-only /run) and none was given, the documented fallback.
pub fn bind_control(opts: &RunOptions, policy: Policy) -> std::io::Result<Control> {
    match Control::bind(&opts.socket, policy) {
        Err(e) if !opts.socket_named => {
            let uid = policy.own_uid;
            let xdg = std::env::var("XDG_RUNTIME_DIR").ok();
            let fallback = crate::cli::fallback_socket(uid, xdg.as_deref());
            if let Some(dir) = fallback.parent() {
                ensure_private_dir(dir, uid)?;
            }
            let c = Control::bind(&fallback, policy)?;
            info!(
                "control socket at {} ({} is not usable: {e}); svctl finds it there",
                fallback.display(),
                opts.socket.display()
            );
            Ok(c)
        }
        other => other,
    }
}

/// A directory only `uid` can use: created with mode 0700, or, if it is
/// there already, a real directory owned by `uid` with no access for
/// others (someone else may not prepare it for us in /tmp).
fn ensure_private_dir(dir: &std::path::Path, uid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
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
