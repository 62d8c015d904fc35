//! A real PostgreSQL server for tests: `initdb` in a fresh temporary directory and
//! `postgres` on a free loopback port, stopped (and the directory removed) on drop.
//!
//! `initdb` and `postgres` refuse to run as root: as root, the directory is given to the
//! `postgres` user that Debian's package creates and both run as that user (the child's
//! uid and gid are set before exec, so the child *is* the server: signals reach it).

use crate::{NEXT_DIR, free_port, wait_or_kill};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A running PostgreSQL server with a database `chathub` owned by the user `chathub`
/// (trust authentication on loopback).
pub struct PostgresServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its directory (data in `data/`, the socket beside it).
    pub dir: PathBuf,
    bin: PathBuf,
    /// The uid and gid it runs as (`None`: the current user).
    run_as: Option<(u32, u32)>,
    child: Option<Child>,
}

fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CHATHUB_PG_BIN") {
        return PathBuf::from(dir);
    }
    // Debian's layout: /usr/lib/postgresql/<major>/bin; the newest major wins.
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            Some((major, e.path().join("bin")))
        })
        .filter(|(_, p)| p.join("postgres").exists())
        .collect();
    found.sort();
    match found.pop() {
        Some((_, dir)) => dir,
        None => panic!(
            "PostgreSQL is not installed: run scripts/test.sh (it installs it), or \
             `apt-get install postgresql` (or set CHATHUB_PG_BIN to its bin directory)"
        ),
    }
}

fn id_of(flag: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, "postgres"])
        .output()
        .expect("`id` runs");
    assert!(
        out.status.success(),
        "running as root, PostgreSQL needs the `postgres` user (apt-get install postgresql creates it)"
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a numeric id")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl PostgresServer {
    /// Starts a server. Panics with what to install when PostgreSQL is missing.
    pub fn start() -> PostgresServer {
        let dir = std::env::temp_dir().join(format!(
            "chathub-pg-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let run_as = is_root().then(|| (id_of("-u"), id_of("-g")));
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown to postgres");
        }
        let mut server = PostgresServer {
            port: 0,
            dir,
            bin: bin_dir(),
            run_as,
            child: None,
        };
        let status = server
            .command("initdb")
            .arg("-D")
            .arg(server.dir.join("data"))
            .args(["-U", "chathub", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdout(Stdio::null())
            .status()
            .expect("initdb runs");
        assert!(status.success(), "initdb failed");
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn() {
                server.create_database();
                return server;
            }
        }
        panic!("postgres did not start (see its output above)");
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd.current_dir(&self.dir);
        cmd
    }

    fn spawn(&mut self) -> bool {
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.dir.display()))
            // Tests stop servers, never the machine: durability to the OS is enough
            // (fsync off). A commit must still reach the OS before it is acknowledged
            // (synchronous_commit stays on): tests kill the server and count what it
            // acknowledged.
            .args(["-c", "fsync=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=200"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => panic!("cannot start postgres: {e}"),
        };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.is_ready() {
                return true;
            }
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        false
    }

    /// Whether the server accepts connections now.
    pub fn is_ready(&self) -> bool {
        self.command("pg_isready")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    fn create_database(&self) {
        let status = self
            .command("createdb")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "chathub",
            ])
            .arg("chathub")
            .status()
            .expect("createdb runs");
        assert!(status.success(), "createdb failed");
    }

    /// The connection URL of the `chathub` database.
    pub fn url(&self) -> String {
        format!("postgres://chathub@127.0.0.1:{}/chathub", self.port)
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops it at once (SIGKILL of the postmaster: an outage; the backends notice and
    /// exit, and a restart recovers from the WAL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            // Backends of a killed postmaster exit on their own; give them a moment so
            // that a restart finds the shared memory free.
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops it cleanly (fast shutdown, SIGINT) and waits.
    pub fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            wait_or_kill(c, Duration::from_secs(10));
        }
    }

    /// Starts it again on the same port and data, after [`stop`](Self::stop) or
    /// [`kill`](Self::kill).
    pub fn restart(&mut self) {
        self.stop();
        for _ in 0..50 {
            if self.spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("postgres did not restart on port {}", self.port);
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_restarts_and_cleans_up() {
        let mut pg = PostgresServer::start();
        assert!(pg.is_ready());
        assert!(pg.url().contains(&pg.port.to_string()));
        pg.restart();
        assert!(pg.is_ready());
        pg.kill();
        assert!(!pg.is_ready());
        pg.restart();
        assert!(pg.is_ready());
        let dir = pg.dir.clone();
        drop(pg);
        assert!(!dir.exists());
    }
}
