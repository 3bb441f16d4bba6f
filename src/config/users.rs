//! The user and group databases, read straight from `/etc/passwd` and
//! `/etc/group`.
//!
//! corral is a static binary and must not depend on NSS (glibc's `getpwnam`
//! would try to dlopen modules that a `FROM scratch` image does not have), so
//! it parses the two files itself. A missing file is an empty database: a
//! numeric `user` still works then, a name does not.

use std::path::Path;

/// One line of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passwd {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// One line of `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// Both databases, loaded once per configuration load.
#[derive(Debug, Default, Clone)]
pub struct UserDb {
    pub users: Vec<Passwd>,
    pub groups: Vec<Group>,
}

impl UserDb {
    /// Reads `/etc/passwd` and `/etc/group` below `root` (normally `/`).
    pub fn load(root: &Path) -> UserDb {
        let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_default();
        UserDb {
            users: parse_passwd(&read("etc/passwd")),
            groups: parse_group(&read("etc/group")),
        }
    }

    pub fn user_by_name(&self, name: &str) -> Option<&Passwd> {
        self.users.iter().find(|u| u.name == name)
    }

    pub fn user_by_uid(&self, uid: u32) -> Option<&Passwd> {
        self.users.iter().find(|u| u.uid == uid)
    }

    pub fn group_by_name(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    pub fn group_by_gid(&self, gid: u32) -> Option<&Group> {
        self.groups.iter().find(|g| g.gid == gid)
    }

    /// The supplementary groups of `user` as `initgroups(3)` computes them:
    /// every group listing the user as a member, plus the primary group.
    pub fn groups_of(&self, user: &str, primary: u32) -> Vec<u32> {
        let mut gids = vec![primary];
        for g in &self.groups {
            if g.members.iter().any(|m| m == user) && !gids.contains(&g.gid) {
                gids.push(g.gid);
            }
        }
        gids
    }
}

/// Parses passwd(5). Comment, blank and malformed lines are skipped, as libc
/// does; NIS `+`/`-` entries are not supported.
pub fn parse_passwd(text: &str) -> Vec<Passwd> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            match f.as_slice() {
                [name, _pw, uid, gid, _gecos, home, ..] if !name.is_empty() => Some(Passwd {
                    name: (*name).to_string(),
                    uid: uid.parse().ok()?,
                    gid: gid.parse().ok()?,
                    home: (*home).to_string(),
                }),
                _ => None,
            }
        })
        .collect()
}

/// Parses group(5).
pub fn parse_group(text: &str) -> Vec<Group> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            match f.as_slice() {
                [name, _pw, gid, members, ..] if !name.is_empty() => Some(Group {
                    name: (*name).to_string(),
                    gid: gid.parse().ok()?,
                    members: members
                        .split(',')
                        .map(str::trim)
                        .filter(|m| !m.is_empty())
                        .map(String::from)
                        .collect(),
                }),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        # comment\n\
        \n\
        nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
        broken:x:notanumber:1::/:\n\
        app:x:1000:1000:App,,,:/home/app:/bin/sh\n";
    const GROUP: &str =
        "root:x:0:\nnogroup:x:65534:\napp:x:1000:\nadm:x:4:app, other\nwww:x:33:app\n";

    #[test]
    fn passwd_skips_comments_and_malformed_lines() {
        let users = parse_passwd(PASSWD);
        let names: Vec<_> = users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["root", "nobody", "app"]);
        assert_eq!(users[2].home, "/home/app");
        assert_eq!(users[1].uid, 65534);
    }

    #[test]
    fn supplementary_groups_include_primary_and_memberships() {
        let db = UserDb {
            users: parse_passwd(PASSWD),
            groups: parse_group(GROUP),
        };
        assert_eq!(db.groups_of("app", 1000), vec![1000, 4, 33]);
        assert_eq!(db.groups_of("nobody", 65534), vec![65534]);
        assert_eq!(db.group_by_name("adm").map(|g| g.gid), Some(4));
        assert_eq!(db.user_by_uid(0).map(|u| u.name.as_str()), Some("root"));
    }
}
