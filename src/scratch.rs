//! The harness's private temp folders (a server's config, data and log; the app's database).
//! Each is created 0700 under the temp dir with its owner in its name —
//! `cachegate-<what>-<pid>.<start-time>-<random>` — so the folders of a harness that was killed
//! (SIGKILL, OOM killer: no destructor ran) are recognised and removed at the next run's start,
//! while those of a harness still running are left alone. Files that may hold a password are
//! written 0600.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Every temp folder the harness creates starts with this.
pub const PREFIX: &str = "cachegate-";

/// `pid:start-time` of a process: a PID alone can be reused by an unrelated process after the
/// owner died; the start time (field 22 of /proc/PID/stat) tells them apart.
pub fn owner_id(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields count from after the command name, which may hold spaces and parentheses.
    let after = stat.rsplit_once(')')?.1;
    let start = after.split_whitespace().nth(19)?;
    Some(format!("{pid}:{start}"))
}

/// Is the process an `owner_id` label names still the same running process?
pub fn owner_alive(label: &str) -> bool {
    let Some(pid) = label.split(':').next().and_then(|p| p.parse::<u32>().ok()) else {
        return false;
    };
    owner_id(pid).as_deref() == Some(label)
}

/// A fresh private folder `cachegate-<what>-<owner>-XXXXXX` in the temp dir, removed on drop.
pub fn temp_dir(what: &str) -> std::io::Result<tempfile::TempDir> {
    let owner = owner_id(std::process::id())
        .unwrap_or_default()
        .replace(':', ".");
    tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{what}-{owner}-"))
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
}

/// Write a file only its owner can read (it may hold a password), replacing any old one.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // `mode` applies only on creation; an existing file keeps its mode unless set again.
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(text.as_bytes())
}

/// The owner label in a temp folder's name, if it is one of ours: "pid:start".
pub fn owner_in_name(name: &str) -> Option<String> {
    let rest = name.strip_prefix(PREFIX)?;
    rest.split('-').find_map(|part| {
        let (pid, start) = part.split_once('.')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        (digits(pid) && digits(start)).then(|| format!("{pid}:{start}"))
    })
}

/// Remove the temp folders in `dir` whose owner is gone; only folders of this user, never
/// through a symlink. Returns what was removed.
pub fn sweep_in(dir: &Path) -> Vec<PathBuf> {
    let me = unsafe { libc::geteuid() };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name.to_str().and_then(owner_in_name) else {
            continue;
        };
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if !meta.is_dir() || meta.uid() != me || owner_alive(&owner) {
            continue;
        }
        if std::fs::remove_dir_all(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
}

/// `sweep_in` the temp dir (`TMPDIR`, else /tmp).
pub fn sweep() -> Vec<PathBuf> {
    sweep_in(&std::env::temp_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_id_tells_a_live_process_from_a_reused_pid() {
        let me = owner_id(std::process::id()).unwrap();
        assert!(owner_alive(&me));
        let (pid, start) = me.split_once(':').unwrap();
        let other_start: u64 = start.parse::<u64>().unwrap() + 1;
        assert!(!owner_alive(&format!("{pid}:{other_start}")));
        assert!(!owner_alive("not-a-pid"));
        assert!(!owner_alive(""));
    }

    #[test]
    fn folders_are_private_and_only_dead_owners_are_swept() {
        let tmp = tempfile::tempdir().unwrap();
        let mine = tempfile::Builder::new()
            .prefix(&format!(
                "{PREFIX}server-{}-",
                owner_id(std::process::id()).unwrap().replace(':', ".")
            ))
            .tempdir_in(tmp.path())
            .unwrap();
        // A process that has exited: its pid:start no longer names a running process.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = owner_id(child.id()).unwrap_or(format!("{}:1", child.id()));
        child.wait().unwrap();
        let gone = tmp
            .path()
            .join(format!("{PREFIX}app-{}-abc123", dead.replace(':', ".")));
        std::fs::create_dir_all(gone.join("data")).unwrap();
        write_private(&gone.join("server.conf"), "requirepass secret\n").unwrap();
        let mode = std::fs::metadata(gone.join("server.conf")).unwrap().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Not ours by name: left alone whoever owns it.
        let foreign = tmp.path().join(format!("{PREFIX}notes"));
        std::fs::create_dir(&foreign).unwrap();

        assert_eq!(sweep_in(tmp.path()), vec![gone.clone()]);
        assert!(!gone.exists() && mine.path().exists() && foreign.exists());
        assert_eq!(
            owner_in_name("cachegate-server-12.345-Ab9xyZ").unwrap(),
            "12:345"
        );
        assert_eq!(owner_in_name("cachegate-server-Ab9xyZ"), None);
    }

    #[test]
    fn temp_dirs_are_0700_and_named_by_their_owner() {
        let dir = temp_dir("server").unwrap();
        let mode = std::fs::metadata(dir.path()).unwrap().mode();
        assert_eq!(mode & 0o777, 0o700);
        let name = dir
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(owner_in_name(&name), owner_id(std::process::id()), "{name}");
    }
}
