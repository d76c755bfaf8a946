//! Redis-backed [`Coordinator`] for swarm mode: many processes (and hosts) sharing one database
//! folder hand out short-lived leases through a single Redis (or Valkey) server.
//!
//! Leases are an efficiency device only. A lease can be lost without its holder noticing (a
//! pause longer than the TTL, a Redis restart or failover that forgets keys), so two
//! participants may briefly both believe they hold one. Correctness never depends on it: the
//! commit point is the exclusive, version-checked publication on storage (see
//! `docs/PROTOCOL.md`, "Fencing"). This crate therefore aims for "usually exclusive, never
//! blocking": every call fails fast with [`CoordError::Unavailable`] when Redis misbehaves, and
//! the coordinator reconnects by itself once Redis is back.
//!
//! Redis holds only the lease keys `{prefix}:lease:{name}`, each with a TTL; never data.

use rand::Rng;
use redis::{Client, Connection, RedisError, RedisResult, Script};
use sop::coord::{CoordError, Coordinator, Lease};
use std::fmt;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Compare-and-extend: only the owner (same token) may extend, and an expired lease is gone
/// (GET returns nil), so it cannot be revived. One script, so the check and the PEXPIRE are
/// atomic on the server.
const RENEW_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
    return 0
end";

/// Compare-and-delete. A plain DEL could delete a lease that expired and was re-acquired by
/// someone else in the meantime (the bug storage-anchors §3.4 cites in SOP-Go's locker).
const RELEASE_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
else
    return 0
end";

/// Upper bound for a TTL in milliseconds. Redis rejects an expiry that overflows its clock
/// arithmetic; ~8900 years is plenty for a lease and far from that limit.
const MAX_TTL_MS: u64 = 1 << 48;

/// First and largest sleep between attempts in [`Coordinator::acquire`].
const POLL_MIN: Duration = Duration::from_micros(100);
const POLL_MAX: Duration = Duration::from_millis(2);

/// How to reach Redis and how to name keys there.
#[derive(Clone)]
pub struct RedisOptions {
    /// Redis URL, e.g. `redis://127.0.0.1:6379/` or `redis://:password@host:6379/2`.
    pub url: String,
    /// Key prefix, so several databases can share one Redis: keys are `{prefix}:lease:{name}`.
    /// Every participant of one database must use the same prefix.
    pub prefix: String,
    /// Bound for establishing a connection (TCP connect plus the connection handshake).
    /// Default 500 ms.
    pub connect_timeout: Duration,
    /// Read and write timeout on the socket; bounds each round trip. Default 500 ms.
    pub io_timeout: Duration,
}

impl RedisOptions {
    /// Options for `url` and `prefix` with the default timeouts.
    pub fn new(url: impl Into<String>, prefix: impl Into<String>) -> Self {
        RedisOptions { url: url.into(), prefix: prefix.into(), ..Self::default() }
    }
}

impl Default for RedisOptions {
    /// A local Redis on the default port, prefix `sop`, 500 ms timeouts.
    fn default() -> Self {
        RedisOptions {
            url: "redis://127.0.0.1:6379/".into(),
            prefix: "sop".into(),
            connect_timeout: Duration::from_millis(500),
            io_timeout: Duration::from_millis(500),
        }
    }
}

impl fmt::Debug for RedisOptions {
    // Hand-written so a password in the URL never ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOptions")
            .field("url", &redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("io_timeout", &self.io_timeout)
            .finish()
    }
}

/// Replaces the credentials of `scheme://user:pass@host` with `***`.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

/// The cached connection and whether a call is currently using it.
///
/// The connection is taken out of the slot while a call talks to Redis, so the std mutex is
/// held only for a moment and a waiter can give up after a deadline (std has no timed lock).
struct Slot {
    conn: Option<Connection>,
    busy: bool,
}

/// A [`Coordinator`] whose leases live in Redis, shared by every process using the same
/// server and prefix.
///
/// * `try_acquire` is `SET key token NX PX ttl` with a fresh random token.
/// * `renew` and `release` are Lua compare-and-extend / compare-and-delete on that token.
/// * Every Redis failure (refused, timed out, reset, server error) is returned as
///   [`CoordError::Unavailable`] within roughly `connect_timeout + io_timeout`; the broken
///   connection is dropped, and the next call reconnects. A Redis restart (which forgets every
///   lease) needs no action from the caller.
///
/// Calls are serialized over one cached connection; a lease round trip is short, and one
/// connection per process keeps the load on a shared Redis predictable.
pub struct RedisCoordinator {
    client: Client,
    prefix: String,
    connect_timeout: Duration,
    io_timeout: Duration,
    slot: Mutex<Slot>,
    /// Signalled when a call hands the connection back.
    idle: Condvar,
    renew: Script,
    release: Script,
}

impl fmt::Debug for RedisCoordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCoordinator")
            .field("addr", &self.client.get_connection_info().addr().to_string())
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("io_timeout", &self.io_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisCoordinator {
    /// Parses `opts.url` and checks that Redis answers (`PING`), so a wrong address or a
    /// missing server shows up at startup instead of at the first lease.
    ///
    /// Fails with [`CoordError::Unavailable`] if the URL is invalid or Redis cannot be reached
    /// within the timeouts. After a successful connect, later outages are survived
    /// automatically.
    pub fn connect(opts: RedisOptions) -> Result<Self, CoordError> {
        let client = Client::open(opts.url.as_str())
            .map_err(|e| CoordError::Unavailable(format!("invalid Redis URL {}: {e}", redact_url(&opts.url))))?;
        // std rejects a zero socket timeout (it would mean "none"), and a zero connect timeout
        // can never succeed; 1 ms is the smallest meaningful bound.
        let this = RedisCoordinator {
            client,
            prefix: opts.prefix,
            connect_timeout: opts.connect_timeout.max(Duration::from_millis(1)),
            io_timeout: opts.io_timeout.max(Duration::from_millis(1)),
            slot: Mutex::new(Slot { conn: None, busy: false }),
            idle: Condvar::new(),
            renew: Script::new(RENEW_LUA),
            release: Script::new(RELEASE_LUA),
        };
        this.with_conn(|c| redis::cmd("PING").query::<String>(c))?;
        Ok(this)
    }

    /// The Redis key of lease `name`.
    fn key(&self, name: &str) -> String {
        format!("{}:lease:{name}", self.prefix)
    }

    /// Opens a connection with both socket timeouts set, so no later read or write can block
    /// longer than `io_timeout` (redis-rs clears them after its handshake otherwise).
    fn open(&self) -> Result<Connection, CoordError> {
        let conn = self.client.get_connection_with_timeout(self.connect_timeout).map_err(|e| self.unavailable(e))?;
        conn.set_read_timeout(Some(self.io_timeout)).map_err(|e| self.unavailable(e))?;
        conn.set_write_timeout(Some(self.io_timeout)).map_err(|e| self.unavailable(e))?;
        Ok(conn)
    }

    fn unavailable(&self, e: RedisError) -> CoordError {
        CoordError::Unavailable(format!("redis at {}: {e}", self.client.get_connection_info().addr()))
    }

    fn lock_slot(&self) -> MutexGuard<'_, Slot> {
        // A panic elsewhere cannot leave the slot inconsistent (a missing connection is just
        // reopened), so poisoning is ignored.
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `op` on the cached connection (opening one if needed).
    ///
    /// Any error drops the connection: after a timeout its reply may still arrive and would be
    /// read as the answer to the next command. One exception makes a Redis restart
    /// transparent: if a *reused* connection turns out to be dead (reset, EOF, broken pipe —
    /// not a timeout), `op` is retried once on a fresh connection. A dead socket means the
    /// server went away, so the command almost certainly did not run; if it did, the only cost
    /// is a lease held by nobody until its TTL ends, which fencing on storage makes harmless.
    fn with_conn<T>(&self, mut op: impl FnMut(&mut Connection) -> RedisResult<T>) -> Result<T, CoordError> {
        let mut checkout = self.checkout()?;
        let reused = checkout.conn.is_some();
        let mut conn = match checkout.conn.take() {
            Some(c) => c,
            None => self.open()?,
        };
        match op(&mut conn) {
            Ok(v) => {
                checkout.conn = Some(conn);
                Ok(v)
            }
            Err(e) if reused && e.is_connection_dropped() && !e.is_timeout() => {
                drop(conn);
                let mut fresh = self.open()?;
                let v = op(&mut fresh).map_err(|e| self.unavailable(e))?;
                checkout.conn = Some(fresh);
                Ok(v)
            }
            Err(e) => Err(self.unavailable(e)),
        }
    }

    /// Waits for the connection slot, but no longer than one call's own budget: if another
    /// call is stuck on an unresponsive Redis, queueing behind it would multiply the delay by
    /// the number of waiting threads and break the fail-fast promise.
    fn checkout(&self) -> Result<Checkout<'_>, CoordError> {
        let deadline = Instant::now() + self.connect_timeout + self.io_timeout;
        let mut slot = self.lock_slot();
        while slot.busy {
            let now = Instant::now();
            if now >= deadline {
                return Err(CoordError::Unavailable(format!(
                    "redis at {}: timed out waiting for the connection (another call is stuck on Redis)",
                    self.client.get_connection_info().addr()
                )));
            }
            slot = self.idle.wait_timeout(slot, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
        slot.busy = true;
        let conn = slot.conn.take();
        Ok(Checkout { owner: self, conn })
    }
}

/// Exclusive use of the connection slot; hands the connection (if still good) back on drop,
/// including when `op` panics.
struct Checkout<'a> {
    owner: &'a RedisCoordinator,
    conn: Option<Connection>,
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        let mut slot = self.owner.lock_slot();
        slot.conn = self.conn.take();
        slot.busy = false;
        drop(slot);
        self.owner.idle.notify_one();
    }
}

/// TTL in whole milliseconds, rounded up so a lease never lasts less than asked, and at least
/// 1 ms because Redis rejects `PX 0`.
fn ttl_ms(ttl: Duration) -> u64 {
    let ms = ttl.as_millis() + u128::from(!ttl.subsec_nanos().is_multiple_of(1_000_000));
    ms.clamp(1, u128::from(MAX_TTL_MS)) as u64
}

impl Coordinator for RedisCoordinator {
    fn is_cluster(&self) -> bool {
        true
    }

    fn try_acquire(&self, name: &str, ttl: Duration) -> Result<Option<Lease>, CoordError> {
        let key = self.key(name);
        // Random, not sequential: the token only has to be unique per grant (it identifies the
        // owner for renew/release); ordering for fencing lives on storage, not here.
        let token: u64 = rand::random();
        let ms = ttl_ms(ttl);
        // NX makes the grant exclusive, PX gives it a server-side expiry so a dead holder
        // cannot block others forever. The reply is OK if set, nil if the key exists.
        let set: Option<String> = self
            .with_conn(|c| redis::cmd("SET").arg(&key).arg(token.to_string()).arg("NX").arg("PX").arg(ms).query(c))?;
        Ok(set.map(|_| Lease { name: name.to_owned(), token }))
    }

    fn acquire(&self, name: &str, ttl: Duration, wait: Duration) -> Result<Option<Lease>, CoordError> {
        // Monotonic clock: a wall-clock step (NTP, admin) must not shorten or stretch the wait.
        let start = Instant::now();
        let mut ceiling = POLL_MIN;
        let mut rng = rand::rng();
        loop {
            // Errors are returned at once rather than retried until `wait`: the caller asked
            // for a lease, not for us to sit out a Redis outage.
            if let Some(lease) = self.try_acquire(name, ttl)? {
                return Ok(Some(lease));
            }
            let elapsed = start.elapsed();
            if elapsed >= wait {
                return Ok(None);
            }
            // Redis has no blocking SET NX, so poll. Jitter keeps contenders from waking in
            // lockstep; the growing ceiling keeps a long wait from hammering Redis.
            let nap = rng.random_range(POLL_MIN..=ceiling).min(wait - elapsed);
            std::thread::sleep(nap);
            ceiling = (ceiling * 2).min(POLL_MAX);
        }
    }

    fn renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, CoordError> {
        let key = self.key(&lease.name);
        let token = lease.token.to_string();
        let ms = ttl_ms(ttl);
        // Script::invoke uses EVALSHA and loads the script on NOSCRIPT, which also covers a
        // restarted Redis whose script cache is empty.
        let extended: i64 = self.with_conn(|c| self.renew.key(&key).arg(&token).arg(ms).invoke(c))?;
        Ok(extended == 1)
    }

    fn release(&self, lease: &Lease) -> Result<(), CoordError> {
        let key = self.key(&lease.name);
        let token = lease.token.to_string();
        // Not ours any more (expired, maybe re-acquired) is not an error: nothing to undo.
        let _deleted: i64 = self.with_conn(|c| self.release.key(&key).arg(&token).invoke(c))?;
        Ok(())
    }
}

// The trait requires it; this fails to compile if a field ever stops being shareable.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RedisCoordinator>();
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_and_clamps() {
        assert_eq!(ttl_ms(Duration::ZERO), 1);
        assert_eq!(ttl_ms(Duration::from_micros(1)), 1);
        assert_eq!(ttl_ms(Duration::from_millis(5)), 5);
        assert_eq!(ttl_ms(Duration::from_micros(5_001)), 6);
        assert_eq!(ttl_ms(Duration::MAX), MAX_TTL_MS);
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("redis://:secret@host:6379/0"), "redis://***@host:6379/0");
        assert_eq!(redact_url("redis://user:secret@host/"), "redis://***@host/");
        assert_eq!(redact_url("redis://host:6379/"), "redis://host:6379/");
        let dbg = format!("{:?}", RedisOptions::new("redis://:pw@h/", "p"));
        assert!(!dbg.contains("pw"), "{dbg}");
    }

    #[test]
    fn invalid_url_is_unavailable() {
        let err = RedisCoordinator::connect(RedisOptions::new("not a url", "p")).unwrap_err();
        assert!(matches!(err, CoordError::Unavailable(_)));
    }
}
