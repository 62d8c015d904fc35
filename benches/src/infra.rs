//! What a run needs around the scenarios: spawned redis-server and gateway processes (or
//! running ones), process CPU and memory from `/proc`, the fd limit, source addresses.

use anyhow::{Context, Result, bail};
use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The nodes a run talks to, and the processes it measures.
pub(crate) struct Target {
    /// WebSocket URL of every node.
    pub(crate) urls: Vec<String>,
    /// PIDs of the gateway processes (for CPU and RSS).
    pub(crate) gateway_pids: Vec<u32>,
    /// PIDs of the redis-servers (one, or a Redis Cluster's masters), if spawned.
    pub(crate) redis_pids: Vec<u32>,
    /// The spawned single redis-server's URL (for `INFO commandstats`), if any.
    pub(crate) redis_url: Option<String>,
    /// HTTP address (`host:port`) of every spawned node (for `/metrics`).
    pub(crate) http_addrs: Vec<String>,
    /// A spawned Redis Cluster (stopped on drop).
    _cluster: Option<chathub_testkit::RedisCluster>,
    /// A spawned PostgreSQL archive (stopped on drop).
    _archive: Option<chathub_testkit::PostgresServer>,
    /// The HS256 secret tokens are minted with.
    pub(crate) secret: String,
    children: Vec<Child>,
    dir: Option<PathBuf>,
}

impl Drop for Target {
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The `chathub` binary: `--chathub-bin`, else next to this executable.
pub(crate) fn chathub_bin(given: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p);
    }
    let me = std::env::current_exe()?;
    let next = me.with_file_name("chathub");
    if next.exists() {
        return Ok(next);
    }
    bail!(
        "chathub binary not found next to {}; build it (cargo build --release -p chathub) or pass --chathub-bin",
        me.display()
    )
}

impl Target {
    /// The spawned archive's size (`None` without one).
    pub(crate) async fn archive_size(&self) -> Option<chathub_store::postgres::ArchiveSize> {
        let pg = self._archive.as_ref()?;
        let config = chathub_store::postgres::ArchiveConfig::new(pg.url());
        let archive = chathub_store::postgres::Archive::connect(&config)
            .await
            .ok()?;
        archive.size().await.ok()
    }
    /// The sum over the spawned nodes of one Prometheus histogram's buckets: (upper
    /// bound, cumulative count), ascending.
    pub(crate) async fn histogram_buckets(&self, name: &str) -> Vec<(f64, u64)> {
        let mut sums: Vec<(f64, u64)> = Vec::new();
        let prefix = format!("{name}_bucket{{le=\"");
        for addr in &self.http_addrs {
            let Ok(body) = http_get(addr, "/metrics").await else {
                continue;
            };
            for line in body.lines() {
                let Some(rest) = line.strip_prefix(&prefix) else {
                    continue;
                };
                let Some((bound, count)) = rest.split_once("\"} ") else {
                    continue;
                };
                let bound = if bound == "+Inf" {
                    f64::INFINITY
                } else {
                    bound.parse().unwrap_or(f64::INFINITY)
                };
                let count: u64 = count.trim().parse().unwrap_or(0);
                match sums.iter_mut().find(|(b, _)| *b == bound) {
                    Some(entry) => entry.1 += count,
                    None => sums.push((bound, count)),
                }
            }
        }
        sums.sort_by(|a, b| a.0.total_cmp(&b.0));
        sums
    }

    /// Running nodes at `urls`.
    pub(crate) fn connect(urls: Vec<String>, gateway_pids: Vec<u32>, secret: String) -> Target {
        Target {
            urls,
            gateway_pids,
            redis_pids: Vec::new(),
            redis_url: None,
            http_addrs: Vec::new(),
            _cluster: None,
            _archive: None,
            secret,
            children: Vec::new(),
            dir: None,
        }
    }

    /// Starts a redis-server on a free loopback port (unless `nodes == 1 && embedded`),
    /// or a Redis Cluster of `cluster_masters` masters when that is not 0, and `nodes`
    /// gateway processes in cluster mode (with a PostgreSQL archive when `archive`);
    /// stops them on drop.
    pub(crate) fn spawn(
        nodes: usize,
        embedded: bool,
        cluster_masters: usize,
        archive: bool,
        bin: PathBuf,
        extra: &[String],
    ) -> Result<Target> {
        let secret = "chathub-bench-secret".to_owned();
        let dir = std::env::temp_dir().join(format!("chathub-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut target = Target {
            urls: Vec::new(),
            gateway_pids: Vec::new(),
            redis_pids: Vec::new(),
            redis_url: None,
            http_addrs: Vec::new(),
            _cluster: None,
            _archive: None,
            secret: secret.clone(),
            children: Vec::new(),
            dir: Some(dir.clone()),
        };
        let mut redis_args: Vec<String> = Vec::new();
        if cluster_masters > 0 {
            if cluster_masters < 3 {
                bail!("a Redis Cluster needs at least 3 masters");
            }
            let cluster = chathub_testkit::RedisCluster::start(cluster_masters);
            target.redis_pids = cluster.nodes.iter().filter_map(|n| n.pid()).collect();
            redis_args = vec!["--redis-cluster".into(), cluster.urls().join(",")];
            target._cluster = Some(cluster);
        } else if !(embedded && nodes == 1) {
            let port = free_port()?;
            let child = Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args(["--protected-mode", "no", "--loglevel", "warning"])
                .arg("--dir")
                .arg(&dir)
                .stdout(Stdio::null())
                .spawn()
                .context("starting redis-server (apt-get install redis-server)")?;
            target.redis_pids = vec![child.id()];
            target.children.push(child);
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                if Instant::now() > deadline {
                    bail!("redis-server did not start");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let url = format!("redis://127.0.0.1:{port}");
            target.redis_url = Some(url.clone());
            redis_args = vec!["--redis".into(), url];
        }
        if archive {
            if redis_args.is_empty() {
                bail!("--archive is for cluster mode (not with --embedded)");
            }
            let pg = chathub_testkit::PostgresServer::start();
            redis_args.extend(["--archive".to_owned(), pg.url()]);
            target._archive = Some(pg);
        }
        for _ in 0..nodes {
            let mut cmd = Command::new(&bin);
            cmd.args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
                "--secret",
                &secret,
            ])
            .args(["--max-connections", "1000000"])
            // The harness's agents burst on purpose (take races): not abuse.
            .args(["--rate-per-sec", "1000000", "--rate-burst", "1000000"])
            // Every simulated client comes from loopback: one address, thousands of
            // handshakes at once by design.
            .args(["--max-handshakes-per-address", "1000000"])
            .args(extra)
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
            cmd.args(&redis_args);
            if !redis_args.is_empty() && !extra.iter().any(|a| a == "--attachments") {
                // Files in one directory every node shares (one machine: the local disk
                // is a shared object store here).
                cmd.arg("--attachments").arg(dir.join("attachments"));
            }
            if redis_args.is_empty() && !extra.iter().any(|a| a == "--ephemeral") {
                // The embedded default as a user runs it: a data directory, fsync on.
                cmd.arg("--data-dir")
                    .arg(dir.join(format!("data-{}", target.urls.len())));
            }
            let mut child = cmd
                .spawn()
                .with_context(|| format!("starting {}", bin.display()))?;
            let stdout = child.stdout.take().context("gateway stdout")?;
            target.gateway_pids.push(child.id());
            target.children.push(child);
            let mut line = String::new();
            let mut stdout = std::io::BufReader::new(stdout);
            stdout.read_line(&mut line)?;
            // Later lines (the data directory) must find the pipe open.
            std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
            let url = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("ws="))
                .with_context(|| format!("no listening line from the gateway: {line:?}"))?;
            target.urls.push(url.to_owned());
            if let Some(http) = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("http=http://"))
            {
                target.http_addrs.push(http.to_owned());
            }
        }
        Ok(target)
    }

    /// Total CPU time (user + system) of the gateway processes, in µs.
    pub(crate) fn gateway_cpu_us(&self) -> u64 {
        self.gateway_pids.iter().map(|p| cpu_us(*p)).sum()
    }

    /// CPU time of the redis-servers, in µs (0 when not spawned).
    pub(crate) fn redis_cpu_us(&self) -> u64 {
        self.redis_cpu_us_each().iter().sum()
    }

    /// CPU time of each redis-server (each master of a Redis Cluster), in µs.
    pub(crate) fn redis_cpu_us_each(&self) -> Vec<u64> {
        self.redis_pids.iter().map(|p| cpu_us(*p)).collect()
    }

    /// `INFO commandstats` of the spawned single redis-server (`None` without one, or
    /// when it does not answer).
    pub(crate) async fn redis_commandstats(
        &self,
    ) -> Option<std::collections::BTreeMap<String, (u64, u64)>> {
        let client = redis::Client::open(self.redis_url.as_deref()?).ok()?;
        let mut conn = redis::aio::ConnectionManager::new(client).await.ok()?;
        crate::script_cost::commandstats(&mut conn).await.ok()
    }

    /// Resident memory of the gateway processes, in KiB.
    pub(crate) fn gateway_rss_kib(&self) -> u64 {
        self.gateway_pids.iter().map(|p| rss_kib(*p)).sum()
    }
}

/// utime + stime of `pid`, in µs (0 if unreadable).
pub(crate) fn cpu_us(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the command name (which may contain spaces) start after ") ".
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
    // USER_HZ is 100 on Linux.
    ticks * 10_000
}

/// VmRSS of `pid`, in KiB (0 if unreadable).
pub(crate) fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Raises this process's open-file limit (inherited by spawned nodes) as far as allowed:
/// to 1 Mi when privileged, else to the hard limit. Returns the soft limit now.
pub(crate) fn raise_fd_limit() -> u64 {
    let want = 1 << 20;
    if rlimit::Resource::NOFILE.set(want, want).is_err()
        && let Ok((_, hard)) = rlimit::Resource::NOFILE.get()
    {
        let _ = rlimit::Resource::NOFILE.set(hard, hard);
    }
    rlimit::Resource::NOFILE.get().map_or(0, |(soft, _)| soft)
}

/// The source address of connection `i`: the OS's choice for the first 20 000, then
/// 127.0.0.2, .3, … every 20 000 connections, so no single address runs out of ephemeral
/// ports. (Binding before connecting makes the kernel search ports the slow way, so it
/// is only done where needed.)
pub(crate) fn source_addr(i: usize) -> Option<IpAddr> {
    let n = (i / 20_000) as u8;
    (n > 0).then(|| IpAddr::V4(Ipv4Addr::new(127, 0, 0, n.saturating_add(1))))
}

/// A plain HTTP/1.1 GET of `path` on `addr`; the body.
async fn http_get(addr: &str, path: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    Ok(text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_owned()))
}

/// The smallest bucket bound under which `quantile` of the observations fall (`None`
/// without observations).
pub(crate) fn bucket_quantile(buckets: &[(f64, u64)], quantile: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total == 0 {
        return None;
    }
    let wanted = (total as f64 * quantile).ceil() as u64;
    buckets
        .iter()
        .find(|(_, count)| *count >= wanted)
        .map(|(bound, _)| *bound)
}
