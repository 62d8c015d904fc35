//! Test support shared by chathub's crates. No chathub dependency, so every crate can use
//! it in its tests.
//!
//! # Layout
//! - [`RedisServer`]: a real `redis-server` on a free loopback port, in its own temporary
//!   directory, stopped (and its directory removed) on drop.
//! - [`RedisCluster`]: a local Redis Cluster of several masters.
//! - [`free_port`]: a free loopback TCP port.
//! - [`ScratchDir`]: a fresh temporary directory, removed on drop (data directories).
//! - [`PostgresServer`]: a real PostgreSQL on a free loopback port (as the `postgres`
//!   user when run as root), stopped and removed on drop.

pub mod fixtures;
mod postgres;
mod s3;

pub use postgres::PostgresServer;
pub use s3::{S3_KEY, S3Server};

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A fresh, empty temporary directory, removed (with everything in it) on drop.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Makes a new directory whose name starts with `chathub-<what>-`.
    pub fn new(what: &str) -> ScratchDir {
        let path = std::env::temp_dir().join(format!(
            "chathub-{what}-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("a temporary directory");
        ScratchDir { path }
    }

    /// Its path.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Waits up to `grace` for a server asked to stop, then kills it.
fn wait_or_kill(mut child: Child, grace: Duration) {
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Options for [`RedisServer::start_with`].
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// Turn on the append-only file (`appendfsync always`), for restart tests.
    pub aof: bool,
    /// Extra `redis-server` arguments.
    pub extra: Vec<String>,
}

/// A running `redis-server`, killed on drop.
pub struct RedisServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its working directory (AOF / RDB files live here).
    pub dir: PathBuf,
    options: RedisOptions,
    child: Option<Child>,
}

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

impl RedisServer {
    /// Starts a server with persistence off. Panics with what to install when
    /// `redis-server` is missing.
    pub fn start() -> RedisServer {
        RedisServer::start_with(RedisOptions::default())
    }

    /// Starts a server with `options`.
    pub fn start_with(options: RedisOptions) -> RedisServer {
        let dir = std::env::temp_dir().join(format!(
            "chathub-redis-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        // A port can be taken between probing and binding; try a few.
        for _ in 0..5 {
            let mut server = RedisServer {
                port: free_port(),
                dir: dir.clone(),
                options: options.clone(),
                child: None,
            };
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not start (see its output above)");
    }

    fn spawn(&mut self) -> bool {
        // Made here, not once before the attempts: a failed attempt's server is dropped,
        // and its drop removes the directory the next attempt shares.
        std::fs::create_dir_all(&self.dir).expect("temporary directory");
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--protected-mode",
                "no",
                "--loglevel",
                "warning",
            ])
            .arg("--dir")
            .arg(&self.dir);
        if self.options.aof {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        cmd.args(&self.options.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not installed: run scripts/test.sh (it installs it), \
                 or `apt-get install redis-server`"
            ),
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.ping() {
                return true;
            }
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The server's process id, while it runs (for CPU and memory figures).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Whether the server answers `PING`.
    pub fn ping(&self) -> bool {
        self.command(&["PING"])
            .is_some_and(|r| r.starts_with("+PONG"))
    }

    /// Sends one command (inline RESP) and returns the raw reply, if any.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).ok()?;
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Kills the server with SIGKILL (no shutdown save) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the server cleanly with `SHUTDOWN` (the AOF is flushed) and waits for it.
    pub fn shutdown(&mut self) {
        let _ = self.command(&["SHUTDOWN"]);
        if let Some(c) = self.child.take() {
            wait_or_kill(c, Duration::from_secs(10));
        }
    }

    /// Starts the server again on the same port and directory (AOF is replayed when on).
    pub fn restart(&mut self) {
        self.kill();
        for _ in 0..50 {
            if self.spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("redis-server did not restart on port {}", self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A local Redis Cluster: `masters` redis-servers in cluster mode with the slots spread
/// over them (`redis-cli --cluster create`), no replicas. Stopped on drop.
pub struct RedisCluster {
    /// The masters.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts a cluster of `masters` (at least 3, as Redis requires).
    pub fn start(masters: usize) -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..masters)
            .map(|_| {
                RedisServer::start_with(RedisOptions {
                    aof: false,
                    extra: vec![
                        "--cluster-enabled".into(),
                        "yes".into(),
                        "--cluster-config-file".into(),
                        "nodes.conf".into(),
                        "--cluster-node-timeout".into(),
                        "2000".into(),
                    ],
                })
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs (Debian package redis-tools, installed with redis-server)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = RedisCluster { nodes };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cluster.is_ok() {
            assert!(
                Instant::now() < deadline,
                "the cluster never reached cluster_state:ok"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    /// Whether every node reports `cluster_state:ok`.
    pub fn is_ok(&self) -> bool {
        self.nodes.iter().all(|n| {
            n.command(&["CLUSTER", "INFO"])
                .is_some_and(|info| info.contains("cluster_state:ok"))
        })
    }

    /// `redis://127.0.0.1:PORT` of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_of_three_masters_forms() {
        let c = RedisCluster::start(3);
        assert!(c.is_ok());
        assert_eq!(c.urls().len(), 3);
    }

    #[test]
    fn starts_answers_and_restarts() {
        let mut r = RedisServer::start();
        assert!(r.ping());
        assert!(r.command(&["SET", "k", "v"]).unwrap().starts_with("+OK"));
        r.restart();
        assert!(r.ping());
        r.kill();
        assert!(!r.ping());
    }
}
