//! Tests against a real `redis-server` started per test on a free loopback port.

use sop::coord::{CoordError, Coordinator, Lease};
use sop_redis::{RedisCoordinator, RedisOptions};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const REDIS_SERVER: &str = "/usr/bin/redis-server";
/// A ceiling that only catches hangs: calls fail within their timeouts (defaults 500+500 ms)
/// while Redis is down or stuck, but a loaded machine may take many times that.
const HANG: Duration = Duration::from_secs(60);
/// Lease TTLs and waits: longer than [`HANG`], so a call that waited one out fails `timed`.
const LONG: Duration = Duration::from_secs(300);

/// A `redis-server` child process, killed when dropped.
struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a port the OS just handed out.
    fn start() -> Self {
        // Bind to port 0 to learn a free port, then release it for redis-server. Another
        // process could grab it in between; unlikely enough on loopback for a test.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut s = RedisServer { port, child: None };
        s.restart();
        s
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// (Re)starts the server on the same port and waits until it answers PING.
    fn restart(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let mut child = Command::new(REDIS_SERVER)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let client = redis::Client::open(self.url()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("redis-server exited early on port {}: {status}", self.port);
            }
            let pong = client
                .get_connection_with_timeout(Duration::from_millis(200))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if pong.is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "redis-server did not answer PING on port {}", self.port);
            thread::sleep(Duration::from_millis(10));
        }
        self.child = Some(child);
    }

    /// SIGKILL, like a crash: every key is gone.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal by name (STOP/CONT) to freeze or thaw the server.
    fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([&format!("-{sig}"), &self.pid().to_string()]).status().unwrap();
        assert!(ok.success(), "kill -{sig} failed");
    }

    /// A raw connection for inspecting keys directly.
    fn raw(&self) -> redis::Connection {
        redis::Client::open(self.url()).unwrap().get_connection_with_timeout(Duration::from_secs(2)).unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            // A frozen server would ignore nothing but SIGKILL anyway; CONT just in case.
            let _ = Command::new("kill").args(["-CONT", &child.id().to_string()]).status();
        }
        self.kill();
    }
}

fn coordinator(server: &RedisServer, prefix: &str) -> RedisCoordinator {
    RedisCoordinator::connect(RedisOptions::new(server.url(), prefix)).unwrap()
}

/// Runs `f`, asserting it does not hang.
fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let v = f();
    let took = start.elapsed();
    assert!(took < HANG, "{what} took {took:?}");
    v
}

fn assert_unavailable<T: std::fmt::Debug>(what: &str, r: Result<T, CoordError>) {
    match r {
        Err(CoordError::Unavailable(msg)) => assert!(!msg.is_empty()),
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    }
}

#[test]
fn acquire_is_exclusive() {
    let server = RedisServer::start();
    let a = coordinator(&server, "db");
    let b = coordinator(&server, "db");
    let lease = a.try_acquire("x", LONG).unwrap().expect("free name");
    assert_eq!(lease.name, "x");
    assert!(a.try_acquire("x", LONG).unwrap().is_none(), "same coordinator");
    assert!(b.try_acquire("x", LONG).unwrap().is_none(), "other coordinator");
    assert!(b.try_acquire("y", LONG).unwrap().is_some(), "other names are independent");
    // The key is `{prefix}:lease:{name}`, holding the token, with a TTL.
    let mut raw = server.raw();
    let stored: String = redis::cmd("GET").arg("db:lease:x").query(&mut raw).unwrap();
    assert_eq!(stored, lease.token.to_string());
    let pttl: i64 = redis::cmd("PTTL").arg("db:lease:x").query(&mut raw).unwrap();
    assert!(pttl > 0 && pttl <= LONG.as_millis() as i64, "pttl {pttl}");
}

#[test]
fn release_is_owner_checked() {
    let server = RedisServer::start();
    let c = coordinator(&server, "db");
    let lease = c.try_acquire("x", LONG).unwrap().unwrap();
    // A stale or foreign token cannot release someone else's lease.
    c.release(&Lease { name: "x".into(), token: lease.token ^ 1 }).unwrap();
    assert!(c.try_acquire("x", LONG).unwrap().is_none());
    c.release(&lease).unwrap();
    let next = c.try_acquire("x", LONG).unwrap().expect("released");
    // The old owner's late release must not free the new owner's lease.
    c.release(&lease).unwrap();
    assert!(c.try_acquire("x", LONG).unwrap().is_none());
    c.release(&next).unwrap();
    // Releasing a lease that no longer exists is fine.
    c.release(&next).unwrap();
}

#[test]
fn renew_only_by_owner_and_not_after_expiry() {
    let server = RedisServer::start();
    let c = coordinator(&server, "db");
    let mut raw = server.raw();
    let lease = c.try_acquire("x", Duration::from_secs(2)).unwrap().unwrap();
    assert!(!c.renew(&Lease { name: "x".into(), token: lease.token ^ 1 }, LONG).unwrap(), "foreign token");
    let pttl: i64 = redis::cmd("PTTL").arg("db:lease:x").query(&mut raw).unwrap();
    assert!(pttl <= 2_000, "a foreign renew must not extend: pttl {pttl}");
    assert!(c.renew(&lease, Duration::from_secs(60)).unwrap());
    let pttl: i64 = redis::cmd("PTTL").arg("db:lease:x").query(&mut raw).unwrap();
    assert!(pttl > 10_000, "owner renew extends: pttl {pttl}");

    let short = c.try_acquire("y", Duration::from_millis(20)).unwrap().unwrap();
    thread::sleep(Duration::from_millis(150));
    assert!(!c.renew(&short, LONG).unwrap(), "an expired lease cannot be renewed");
    let exists: i64 = redis::cmd("EXISTS").arg("db:lease:y").query(&mut raw).unwrap();
    assert_eq!(exists, 0, "a failed renew must not resurrect the key");
}

#[test]
fn expiry_lets_another_acquire() {
    let server = RedisServer::start();
    let a = coordinator(&server, "db");
    let b = coordinator(&server, "db");
    let old = a.try_acquire("x", Duration::from_millis(30)).unwrap().unwrap();
    assert!(b.try_acquire("x", LONG).unwrap().is_none());
    thread::sleep(Duration::from_millis(150));
    let new = b.try_acquire("x", LONG).unwrap().expect("expired lease is free");
    assert_ne!(old.token, new.token);
    // The former holder, waking up late, can neither renew nor release the new lease.
    assert!(!a.renew(&old, LONG).unwrap());
    a.release(&old).unwrap();
    assert!(a.try_acquire("x", LONG).unwrap().is_none());
}

#[test]
fn prefixes_isolate_databases() {
    let server = RedisServer::start();
    let one = coordinator(&server, "one");
    let two = coordinator(&server, "two");
    let l1 = one.try_acquire("x", LONG).unwrap().expect("free in one");
    let l2 = two.try_acquire("x", LONG).unwrap().expect("free in two: different prefix");
    assert!(one.try_acquire("x", LONG).unwrap().is_none());
    // Releasing in one database does not touch the other, even with a matching name.
    one.release(&l1).unwrap();
    assert!(two.try_acquire("x", LONG).unwrap().is_none());
    assert!(two.renew(&l2, LONG).unwrap());
    let mut raw = server.raw();
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut raw).unwrap();
    keys.sort();
    assert_eq!(keys, ["two:lease:x"]);
}

#[test]
fn acquire_waits_for_release_from_another_thread() {
    let server = RedisServer::start();
    let c = coordinator(&server, "db");
    let held = c.try_acquire("x", LONG).unwrap().unwrap();
    // Held and never released: waiting gives up with None.
    let none = timed("acquire timing out", || c.acquire("x", LONG, Duration::from_millis(100)).unwrap());
    assert!(none.is_none());
    thread::scope(|s| {
        let waiter = s.spawn(|| c.acquire("x", LONG, HANG).unwrap());
        thread::sleep(Duration::from_millis(100));
        c.release(&held).unwrap();
        let got = waiter.join().unwrap().expect("acquired after release");
        assert_ne!(got.token, held.token);
        assert!(c.try_acquire("x", LONG).unwrap().is_none(), "waiter holds it now");
    });
}

#[test]
fn connect_fails_fast_without_server() {
    // A port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let r =
        timed("connect", || RedisCoordinator::connect(RedisOptions::new(format!("redis://127.0.0.1:{port}/"), "db")));
    assert_unavailable("connect", r);
}

#[test]
fn unresponsive_listener_times_out() {
    // Accepts TCP (the kernel completes the handshake from the backlog) but never answers:
    // only the socket timeouts can end this.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let r =
        timed("connect", || RedisCoordinator::connect(RedisOptions::new(format!("redis://127.0.0.1:{port}/"), "db")));
    assert_unavailable("connect", r);
    drop(listener);
}

#[test]
fn outage_fails_fast_then_recovers() {
    let mut server = RedisServer::start();
    let c = coordinator(&server, "db");
    let before = c.try_acquire("x", LONG).unwrap().unwrap();

    server.kill();
    for _ in 0..3 {
        assert_unavailable("try_acquire", timed("try_acquire", || c.try_acquire("y", LONG)));
        // Must not keep retrying for the whole wait while Redis is down.
        assert_unavailable("acquire", timed("acquire", || c.acquire("y", LONG, LONG)));
        assert_unavailable("renew", timed("renew", || c.renew(&before, LONG)));
        assert_unavailable("release", timed("release", || c.release(&before)));
    }

    server.restart();
    // Same coordinator, no reconstruction. The restart forgot every lease.
    let after = timed("try_acquire", || c.try_acquire("x", LONG)).unwrap().expect("keys vanished on restart");
    assert!(!c.renew(&before, LONG).unwrap(), "the pre-restart lease is gone");
    c.release(&before).unwrap();
    assert!(c.renew(&after, LONG).unwrap(), "scripts are reloaded into the fresh server");
    c.release(&after).unwrap();
    assert!(c.acquire("x", LONG, LONG).unwrap().is_some());
}

#[test]
fn restart_between_calls_is_transparent() {
    // No call sees the outage, so the cached connection is stale when Redis is back: the
    // first call must notice the dead socket and reconnect instead of failing.
    let mut server = RedisServer::start();
    let c = coordinator(&server, "db");
    let before = c.try_acquire("x", LONG).unwrap().unwrap();
    server.kill();
    server.restart();
    assert!(!c.renew(&before, LONG).unwrap(), "renew runs on the new server, where the lease is gone");
    assert!(c.try_acquire("x", LONG).unwrap().is_some());
}

#[test]
fn frozen_server_fails_fast_then_recovers() {
    let server = RedisServer::start();
    let c = coordinator(&server, "db");
    let lease = c.try_acquire("x", LONG).unwrap().unwrap();

    server.signal("STOP");
    // The socket stays open but nothing answers: the read timeout must end each call.
    assert_unavailable("try_acquire", timed("try_acquire", || c.try_acquire("frozen-1", LONG)));
    assert_unavailable("renew", timed("renew", || c.renew(&lease, LONG)));
    // Several threads at once: waiting for the shared connection is bounded too.
    let c = &c;
    thread::scope(|s| {
        let calls: Vec<_> = (0..4)
            .map(|i| s.spawn(move || timed("concurrent", || c.try_acquire(&format!("frozen-t{i}"), LONG))))
            .collect();
        for h in calls {
            assert_unavailable("concurrent try_acquire", h.join().unwrap());
        }
    });
    server.signal("CONT");

    // Commands that timed out may still run once the server resumes (here: "frozen-*" may now
    // be held by a token nobody knows, until its TTL). That is the documented cost of an
    // unknown outcome. Fresh names and the existing lease work normally again, and no late
    // reply is mistaken for the answer to a new command.
    assert!(c.renew(&lease, LONG).unwrap());
    let other = c.try_acquire("after", LONG).unwrap().expect("free");
    assert!(c.try_acquire("after", LONG).unwrap().is_none());
    c.release(&other).unwrap();
    assert!(c.try_acquire("after", LONG).unwrap().is_some());
}

#[test]
fn contending_threads_never_share_a_lease() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 40;
    let server = RedisServer::start();
    // Half the threads share a coordinator (one connection), the rest have their own, like
    // threads and processes mixed.
    let shared = coordinator(&server, "db");
    let own: Vec<_> = (0..THREADS / 2).map(|_| coordinator(&server, "db")).collect();
    let holders = AtomicUsize::new(0);
    let granted = AtomicUsize::new(0);
    let contended = AtomicUsize::new(0);
    thread::scope(|s| {
        for t in 0..THREADS {
            let c = if t % 2 == 0 { &shared } else { &own[t / 2] };
            let (holders, granted, contended) = (&holders, &granted, &contended);
            s.spawn(move || {
                for _ in 0..ROUNDS {
                    // TTL far longer than the test, so only a real exclusivity bug (not an
                    // expiry) could produce two holders.
                    let lease = match c.try_acquire("hot", LONG).unwrap() {
                        Some(lease) => lease,
                        None => {
                            contended.fetch_add(1, Ordering::Relaxed);
                            c.acquire("hot", LONG, LONG).unwrap().expect("acquired within 30 s")
                        }
                    };
                    let inside = holders.fetch_add(1, Ordering::SeqCst);
                    assert_eq!(inside, 0, "two holders of one lease");
                    granted.fetch_add(1, Ordering::Relaxed);
                    // Hold it briefly so the others really do find it taken.
                    thread::sleep(Duration::from_micros(200));
                    holders.fetch_sub(1, Ordering::SeqCst);
                    c.release(&lease).unwrap();
                }
            });
        }
    });
    assert_eq!(granted.load(Ordering::Relaxed), THREADS * ROUNDS);
    // Otherwise the test proved nothing about exclusivity.
    assert!(contended.load(Ordering::Relaxed) > 0, "no contention happened");
}
