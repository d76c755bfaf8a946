//! Test-only pause points (FoundationDB's BUGGIFY, in miniature).
//!
//! `SOP_FAILPOINTS="name=pause:MS:PATH,..."` makes the process create `PATH` and sleep `MS`
//! milliseconds when it reaches the named point, so a test can, say, `SIGSTOP` a writer that
//! holds the commit lease right before it publishes. A thread can also install a hook
//! ([`set_thread_hook`]) that runs at every point it reaches: the deterministic simulation uses
//! it to hand control between simulated processes at each step of the protocol (and at every
//! operation of the simulated file system). Unset (always, in production), a point costs one
//! relaxed load and one thread-local check.

use std::cell::RefCell;
use std::sync::OnceLock;
use std::time::Duration;

struct Point {
    name: String,
    ms: u64,
    marker: String,
}

fn points() -> &'static [Point] {
    static POINTS: OnceLock<Vec<Point>> = OnceLock::new();
    POINTS.get_or_init(|| {
        let Ok(spec) = std::env::var("SOP_FAILPOINTS") else { return Vec::new() };
        spec.split(',')
            .filter_map(|p| {
                let (name, action) = p.split_once('=')?;
                let mut parts = action.splitn(3, ':');
                (parts.next()? == "pause").then_some(())?;
                let ms = parts.next()?.parse().ok()?;
                let marker = parts.next().unwrap_or("").to_owned();
                Some(Point { name: name.to_owned(), ms, marker })
            })
            .collect()
    })
}

/// What a thread runs at every pause point it reaches, given the point's name.
pub type Hook = Box<dyn FnMut(&str)>;

thread_local! {
    static HOOK: RefCell<Option<Hook>> = const { RefCell::new(None) };
}

/// Runs `hook` at every pause point this thread reaches (`None` removes it). For tests.
pub fn set_thread_hook(hook: Option<Hook>) {
    HOOK.with(|h| *h.borrow_mut() = hook);
}

/// Pauses here if a test asked for it.
pub(crate) fn hit(name: &str) {
    HOOK.with(|h| {
        if let Ok(mut h) = h.try_borrow_mut()
            && let Some(f) = h.as_mut()
        {
            f(name);
        }
    });
    for p in points().iter().filter(|p| p.name == name) {
        if !p.marker.is_empty() {
            let _ = std::fs::write(&p.marker, std::process::id().to_string());
        }
        std::thread::sleep(Duration::from_millis(p.ms));
    }
}

/// Sleeps for `d`, unless this thread runs under a hook: then the hook runs instead (the
/// deterministic simulation's time is its schedule, and a real sleep would stall every
/// simulated process while this one holds the baton).
pub(crate) fn sleep(name: &str, d: Duration) {
    let hooked = HOOK.with(|h| {
        if let Ok(mut h) = h.try_borrow_mut()
            && let Some(f) = h.as_mut()
        {
            f(name);
            return true;
        }
        false
    });
    if !hooked {
        std::thread::sleep(d);
    }
}
