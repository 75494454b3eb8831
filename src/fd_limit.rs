//! The process's file-descriptor limit. Every connection is a descriptor, and at thousands of
//! connections the usual soft limit (1024) runs out mid-run, where "Too many open files" then
//! reads as millions of "connection lost" errors blamed on the server. So the soft limit is raised
//! to the hard limit, and a cell that still cannot fit is refused before any load is sent.

use std::io;
use std::sync::OnceLock;

/// Descriptors kept for the harness beyond the ones already open and the connections: the
/// server's pipes and log, results, the runtime's own, a few reconnects.
pub const RESERVED: u64 = 64;

/// Raise the soft limit to the hard limit (once per process) and return the soft limit in effect.
pub fn raise_soft_to_hard() -> Result<u64, String> {
    static RAISED: OnceLock<Result<u64, String>> = OnceLock::new();
    RAISED
        .get_or_init(|| raise().map_err(|e| format!("raising RLIMIT_NOFILE: {e}")))
        .clone()
}

fn raise() -> io::Result<u64> {
    let (soft, hard) = limits()?;
    if soft >= hard {
        return Ok(soft);
    }
    // An unlimited hard limit cannot be the soft one: the kernel caps descriptors at nr_open.
    let target = if hard == libc::RLIM_INFINITY {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20)
    } else {
        hard
    };
    let new = libc::rlimit {
        rlim_cur: target,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads a valid, initialized struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(target)
}

/// (soft, hard) RLIMIT_NOFILE.
pub fn limits() -> io::Result<(u64, u64)> {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into a valid struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((l.rlim_cur, l.rlim_max))
}

/// Descriptors this process has open now.
fn open_now() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

/// Make room for `connections` more descriptors: raise the soft limit, then fail with a message
/// naming the limit when they still do not fit.
pub fn ensure_room_for(connections: u64) -> Result<(), String> {
    let soft = raise_soft_to_hard()?;
    let open = open_now();
    let needed = connections + open + RESERVED;
    if needed <= soft {
        return Ok(());
    }
    let (_, hard) = limits().map_err(|e| format!("reading RLIMIT_NOFILE: {e}"))?;
    Err(format!(
        "the file-descriptor limit is too low for this cell: {connections} connections need about \
         {needed} descriptors ({open} open now + {RESERVED} reserved), but the limit (RLIMIT_NOFILE, \
         `ulimit -n`) is {soft} and its hard limit {hard}; raise the hard limit (e.g. `ulimit -Hn \
         {needed}` as root, LimitNOFILE= for a systemd service, --ulimit nofile= for a container) \
         or lower `connections`. No load was sent."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_limit_ends_at_hard_and_impossible_counts_are_refused() {
        let soft = raise_soft_to_hard().unwrap();
        let (now, hard) = limits().unwrap();
        assert_eq!(soft, now);
        assert!(hard == libc::RLIM_INFINITY || soft == hard);
        assert!(ensure_room_for(1).is_ok());
        let err = ensure_room_for(soft).unwrap_err();
        assert!(err.contains(&format!("is {soft}")), "{err}");
    }
}
