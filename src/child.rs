//! Child processes the harness starts (servers, the app under test): each in its own process
//! group, stopped by PID (signals go to that group, so gunicorn's workers go with their master),
//! killed on drop, and killed by the kernel if the harness itself dies.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct ManagedChild {
    child: Option<Child>,
}

impl ManagedChild {
    /// Spawn `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(mut cmd: Command, log: &Path) -> std::io::Result<ManagedChild> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            // Own process group: a terminal's Ctrl-C reaches only the harness, which then stops
            // its children itself, in order.
            .process_group(0);
        // SAFETY: prctl is async-signal-safe. If the harness dies without running its drops
        // (SIGKILL), the kernel kills the child too. Children are spawned from long-lived runtime
        // threads, so the "parent thread exited" trigger does not fire early.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        Ok(ManagedChild {
            child: Some(cmd.spawn()?),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Still running (not exited, not a zombie)?
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Its exit code once it has exited (`None` while it runs, or when a signal ended it).
    pub fn exit_code(&mut self) -> Option<i32> {
        match &mut self.child {
            Some(child) => child.try_wait().ok().flatten().and_then(|s| s.code()),
            None => None,
        }
    }

    /// Send a signal to the child's process group.
    pub fn signal(&self, sig: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on the group of a child we spawned and have not reaped, so its
            // PID (= group id) cannot have been recycled.
            unsafe {
                libc::kill(-(pid as libc::pid_t), sig);
            }
        }
    }

    /// Wait up to `timeout` for the child to exit; then SIGKILL it. Returns whether it exited by
    /// itself in time.
    pub async fn wait_or_kill(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.is_running() {
            if Instant::now() > deadline {
                self.kill_now();
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Reap it, and make sure nothing of its group is left behind.
        self.kill_now();
        true
    }

    /// SIGKILL the whole group and reap the child.
    pub fn kill_now(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: as in `signal`.
            unsafe {
                libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
            }
            let _ = child.wait();
        }
    }
}

impl Drop for ManagedChild {
    fn drop(&mut self) {
        self.kill_now();
    }
}
