//! A real S3-protocol server for tests: moto's standalone server (PyPI `moto[server]`),
//! on a free loopback port, stopped on drop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto S3 server, killed on drop.
pub struct S3Server {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Child,
}

/// The access key and secret moto accepts (it does not check them).
pub const S3_KEY: (&str, &str) = ("chathub-test-key", "chathub-test-secret");

impl S3Server {
    /// Starts a server. Panics with what to install when moto is missing.
    pub fn start() -> S3Server {
        for _ in 0..5 {
            let port = crate::free_port();
            let spawned = Command::new("python3")
                .args([
                    "-m",
                    "moto.server",
                    "-H",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let mut child = match spawned {
                Ok(c) => c,
                Err(e) => panic!("cannot start python3 -m moto.server: {e}"),
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    // Exited: the port was taken meanwhile, or moto is missing.
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return S3Server { port, child };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "moto's S3 server did not start: run scripts/test.sh (it installs it), or \
             `python3 -m pip install 'moto[server]'`"
        );
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates bucket `name`.
    pub fn create_bucket(&self, name: &str) {
        let (status, body) = self.request("PUT", &format!("/{name}"));
        assert_eq!(status, 200, "create bucket {name}: {body}");
    }

    /// The keys in bucket `name` (one page of up to 1,000).
    pub fn keys(&self, name: &str) -> Vec<String> {
        let (status, body) = self.request("GET", &format!("/{name}?list-type=2"));
        assert_eq!(status, 200, "list {name}: {body}");
        body.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_owned)
            .collect()
    }

    fn request(&self, method: &str, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("moto answers");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        );
        s.write_all(request.as_bytes()).expect("write");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let status = out
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, out)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
