//! A real `redis-server` on a free loopback port, owned by one test.
//!
//! Ports come from a range private to this test process (derived from its pid, then counted
//! up), so a server that is killed and restarted on its port is not raced for that port by a
//! parallel test; a port found busy is skipped, and the answering server's pid is checked.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// A running (or stopped) Redis server; killed on drop.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server with no persistence, so a restart loses every key (as a crash would).
    pub fn start() -> RedisServer {
        // Tests run in parallel: a port found free may be taken by another test's server
        // before ours binds it, so retry until the server answering is really ours.
        static NEXT: AtomicU16 = AtomicU16::new(0);
        let base = 20_000 + (std::process::id() % 400) as u16 * 100;
        for _ in 0..100 {
            let port = base + NEXT.fetch_add(1, Ordering::Relaxed) % 100;
            if TcpListener::bind(("127.0.0.1", port)).is_err() {
                continue;
            }
            let mut s = RedisServer { port, child: None };
            if s.try_start() {
                return s;
            }
        }
        panic!("could not start redis-server on a free port");
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL): every lease vanishes with it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) {
        assert!(self.try_start(), "redis-server did not restart on port {}", self.port);
    }

    fn try_start(&mut self) -> bool {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (.ci/run installs it)");
        let pid = child.id();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some()) {
                self.child = None;
                return false; // it exited: the port was taken
            }
            if let Some(answering) = server_pid(self.port) {
                return answering == pid;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The process id of the Redis server listening on `port`, from `INFO server`.
fn server_pid(port: u16) -> Option<u32> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    c.write_all(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n").ok()?;
    let mut buf = vec![0u8; 8192];
    let mut got = 0;
    while got < buf.len() {
        let n = c.read(&mut buf[got..]).ok()?;
        if n == 0 {
            break;
        }
        got += n;
        let text = String::from_utf8_lossy(&buf[..got]);
        if let Some(line) = text.lines().find(|l| l.starts_with("process_id:")) {
            return line["process_id:".len()..].trim().parse().ok();
        }
    }
    None
}
