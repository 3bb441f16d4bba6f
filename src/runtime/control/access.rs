//! Who may use the control socket. The kernel says who the peer is
//! (SO_PEERCRED, unix(7)); root and corral's own uid may do everything,
//! members of the control group may only look (status, logs, health, inspect,
//! wait), everyone else is refused.

use std::os::fd::AsFd;

use nix::sys::socket::{getsockopt, sockopt};

use crate::proto::Verb;

/// What a connection may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Full,
    ReadOnly,
}

/// The rules, fixed at startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// corral's own effective uid.
    pub own_uid: u32,
    /// `CORRAL_CONTROL_GROUP`, resolved.
    pub control_gid: Option<u32>,
}

/// The peer of a control connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub pid: i32,
    pub uid: u32,
    /// Its effective gid and supplementary groups.
    pub gids: Vec<u32>,
}

impl Policy {
    /// `None`: refused.
    pub fn decide(&self, peer: &Peer) -> Option<Access> {
        if peer.uid == 0 || peer.uid == self.own_uid {
            return Some(Access::Full);
        }
        match self.control_gid {
            Some(g) if peer.gids.contains(&g) => Some(Access::ReadOnly),
            _ => None,
        }
    }
}

/// Whether `verb` only looks.
pub fn read_only(verb: &Verb) -> bool {
    match verb {
        Verb::Status { .. }
        | Verb::Logs { .. }
        | Verb::Health
        | Verb::Wait { .. }
        | Verb::Inspect
        | Verb::Actions { .. }
        | Verb::Events { .. } => true,
        Verb::Start { .. }
        | Verb::Stop { .. }
        | Verb::Restart { .. }
        | Verb::Run { .. }
        | Verb::Signal { .. }
        | Verb::Reload { .. }
        | Verb::Action { .. }
        | Verb::Shutdown => false,
    }
}

/// The peer's credentials as the kernel recorded them at connect, with
/// its groups from /proc (a peer that already exited has only its gid).
pub fn peer_of(stream: &impl AsFd) -> Option<Peer> {
    let cred = getsockopt(stream, sockopt::PeerCredentials).ok()?;
    let mut gids = vec![cred.gid()];
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", cred.pid())) {
        let groups = status
            .lines()
            .find_map(|l| l.strip_prefix("Groups:"))
            .unwrap_or("");
        gids.extend(
            groups
                .split_whitespace()
                .filter_map(|g| g.parse::<u32>().ok()),
        );
    }
    Some(Peer {
        pid: cred.pid(),
        uid: cred.uid(),
        gids,
    })
}

/// Who may use the control socket: root and corral's own uid, and the
/// members of `CORRAL_CONTROL_GROUP` read-only.
pub fn policy(control_group: Option<&str>) -> Result<Policy, String> {
    let control_gid = match control_group {
        None => None,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => Some(gid),
            Err(_) => Some(
                crate::config::users::UserDb::load(std::path::Path::new("/"))
                    .group_by_name(g)
                    .map(|grp| grp.gid)
                    .ok_or_else(|| format!("CORRAL_CONTROL_GROUP={g:?}: no such group in /etc/group; give a name from it or a gid"))?,
            ),
        },
    };
    Ok(Policy {
        own_uid: nix::unistd::geteuid().as_raw(),
        control_gid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_owner_group_and_strangers() {
        let policy = Policy {
            own_uid: 1000,
            control_gid: Some(50),
        };
        let peer = |uid, gids: &[u32]| Peer {
            pid: 1,
            uid,
            gids: gids.to_vec(),
        };
        assert_eq!(policy.decide(&peer(0, &[0])), Some(Access::Full));
        assert_eq!(policy.decide(&peer(1000, &[1000])), Some(Access::Full));
        assert_eq!(
            policy.decide(&peer(2000, &[2000, 50])),
            Some(Access::ReadOnly)
        );
        assert_eq!(policy.decide(&peer(2000, &[2000])), None);
        let no_group = Policy {
            control_gid: None,
            ..policy
        };
        assert_eq!(no_group.decide(&peer(2000, &[50])), None);
        assert!(read_only(&Verb::Health) && !read_only(&Verb::Shutdown));
    }
}
