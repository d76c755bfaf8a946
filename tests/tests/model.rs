//! Model-based tests: random operation sequences run against the engine and against an
//! in-memory model (`BTreeMap<key, values-in-insertion-order>`), comparing every result.
//!
//! Stores use tiny nodes (slot length 4, 5 or 8) and a small key space of 1-3 byte keys that
//! are prefixes of each other, so splits, root growth, emptied nodes and root collapse happen
//! all the time. Each case is a series of read-write transactions that commit or roll back; after
//! each one the committed contents are checked through a read-only transaction, in both
//! directions. Between transactions the database may be reopened (on a shared [`SimVfs`]) or
//! maintained, and some cases checkpoint, compact and reclaim files after every few commits.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};
use sop::vfs::SimVfs;
use sop::{Database, DbOptions, Error, Iter, Store, StoreOptions, Transaction, ValuePlacement};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

const STORE: &str = "s";
const DB_PATH: &str = "/db";

type TestResult<T = ()> = Result<T, TestCaseError>;
type Items = Vec<(Vec<u8>, Vec<u8>)>;

fn engine<T>(r: sop::Result<T>) -> TestResult<T> {
    r.map_err(|e| TestCaseError::fail(format!("engine error: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Keys and values

/// Key number `k` as 1-3 bytes over an alphabet of `alphabet` letters: the first `alphabet`
/// keys are one byte, the next ones two, then three, so keys are often prefixes of each other.
fn key_bytes(k: u16, alphabet: u16) -> Vec<u8> {
    let letter = |d: u16| b'a' + (d % alphabet) as u8;
    let mut out = vec![letter(k)];
    if k >= alphabet {
        out.push(letter(k / alphabet));
    }
    if k >= alphabet * alphabet {
        out.push(letter(k / (alphabet * alphabet)));
    }
    out
}

/// A value, kept symbolic so failing cases print compactly.
#[derive(Clone, Copy)]
struct Val {
    n: u16,
    big: bool,
}

impl Val {
    fn bytes(self) -> Vec<u8> {
        let len = if self.big {
            // Around the inline limit, and well past it.
            match self.n % 3 {
                0 => sop::INLINE_VALUE_MAX - 1 + usize::from(self.n % 4),
                _ => 5000 + usize::from(self.n % 1000),
            }
        } else {
            usize::from(self.n % 40) // includes the empty value
        };
        let seed = self.n.to_le_bytes();
        (0..len).map(|i| seed[i % 2].wrapping_add((i / 2) as u8)).collect()
    }
}

impl fmt::Debug for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", if self.big { "big" } else { "v" }, self.n)
    }
}

// ---------------------------------------------------------------------------------------------
// The test case: setup, transactions, operations

#[derive(Clone, Debug)]
struct Setup {
    unique: bool,
    slot_length: u32,
    placement: ValuePlacement,
    /// Size of the key space (keys are `0..keys`).
    keys: u16,
    /// Checkpoint every 3 commits, compact whenever there is dead space, reclaim at once.
    churn: bool,
}

impl Setup {
    fn alphabet(&self) -> u16 {
        if self.keys <= 64 { 4 } else { 8 }
    }
    fn key(&self, k: u16) -> Vec<u8> {
        key_bytes(k, self.alphabet())
    }
    fn bound(&self, b: &Bound<u16>) -> Bound<Vec<u8>> {
        // `EMPTY_KEY` stands for the empty key, a valid range bound.
        let key = |k: u16| if k == EMPTY_KEY { Vec::new() } else { self.key(k) };
        match b {
            Bound::Included(k) => Bound::Included(key(*k)),
            Bound::Excluded(k) => Bound::Excluded(key(*k)),
            Bound::Unbounded => Bound::Unbounded,
        }
    }
    fn db_options(&self, sim: &SimVfs) -> DbOptions {
        let base = DbOptions { vfs: Arc::new(sim.clone()), create_if_missing: true, ..DbOptions::default() };
        if self.churn {
            DbOptions { checkpoint_every: 3, compact_min_bytes: 0, reclaim_grace: Duration::ZERO, ..base }
        } else {
            base
        }
    }
    fn store_options(&self) -> StoreOptions {
        StoreOptions {
            slot_length: self.slot_length,
            unique: self.unique,
            value_placement: self.placement,
            ..StoreOptions::default()
        }
    }
}

const EMPTY_KEY: u16 = u16::MAX;

#[derive(Clone, Debug)]
enum Op {
    Add(u16, Val),
    AddIfNotExist(u16, Val),
    Update(u16, Val),
    Upsert(u16, Val),
    Remove(u16),
    Get(u16),
    Contains(u16),
    Count,
    Range { lo: Bound<u16>, hi: Bound<u16>, rev: bool },
    Walk { start: Start, steps: Vec<Step> },
    AddMany(Vec<(u16, Val)>),
    UpsertMany(Vec<(u16, Val)>),
    UpdateMany(Vec<(u16, Val)>),
    RemoveMany(Vec<u16>),
}

#[derive(Clone, Debug)]
enum Start {
    First,
    Last,
    Find(u16),
    FindLast(u16),
}

#[derive(Clone, Debug)]
enum Step {
    Next,
    Prev,
    RemoveCurrent,
    UpdateCurrent(Val),
}

#[derive(Clone, Debug)]
enum End {
    Commit,
    /// `explicit`: `Transaction::rollback` rather than drop.
    Rollback {
        explicit: bool,
    },
}

#[derive(Clone, Debug)]
enum After {
    Nothing,
    Maintain,
    Reopen,
}

#[derive(Clone, Debug)]
struct Txn {
    ops: Vec<Op>,
    end: End,
    /// Keep a read-only snapshot from before the transaction and check it after `after`.
    hold_snapshot: bool,
    after: After,
}

#[derive(Clone, Debug)]
struct Case {
    setup: Setup,
    txns: Vec<Txn>,
}

// ---------------------------------------------------------------------------------------------
// Strategies

fn val() -> impl Strategy<Value = Val> {
    (any::<u16>(), prop::bool::weighted(0.06)).prop_map(|(n, big)| Val { n, big })
}

fn bound(keys: u16) -> impl Strategy<Value = Bound<u16>> {
    let k = prop_oneof![10 => 0..keys, 1 => Just(EMPTY_KEY)];
    prop_oneof![
        1 => Just(Bound::Unbounded),
        2 => k.clone().prop_map(Bound::Included),
        2 => k.prop_map(Bound::Excluded),
    ]
}

fn walk(keys: u16) -> impl Strategy<Value = Op> {
    let start = prop_oneof![
        Just(Start::First),
        Just(Start::Last),
        (0..keys).prop_map(Start::Find),
        (0..keys).prop_map(Start::FindLast),
    ];
    let step = prop_oneof![
        4 => Just(Step::Next),
        3 => Just(Step::Prev),
        2 => Just(Step::RemoveCurrent),
        1 => val().prop_map(Step::UpdateCurrent),
    ];
    // A random walk, or a drain: remove-and-move repeated, which empties whole nodes.
    let drain = (start.clone(), any::<bool>(), 1..40usize).prop_map(|(start, fwd, n)| {
        let mv = if fwd { Step::Next } else { Step::Prev };
        let steps = (0..n).flat_map(|_| [Step::RemoveCurrent, mv.clone()]).collect();
        Op::Walk { start, steps }
    });
    prop_oneof![
        3 => (start, prop::collection::vec(step, 0..16)).prop_map(|(start, steps)| Op::Walk { start, steps }),
        1 => drain,
    ]
}

fn op(keys: u16) -> impl Strategy<Value = Op> {
    let k = move || 0..keys;
    let batch = move |max| prop::collection::vec((k(), val()), 1..max);
    prop_oneof![
        8 => (k(), val()).prop_map(|(k, v)| Op::Add(k, v)),
        2 => (k(), val()).prop_map(|(k, v)| Op::AddIfNotExist(k, v)),
        3 => (k(), val()).prop_map(|(k, v)| Op::Update(k, v)),
        3 => (k(), val()).prop_map(|(k, v)| Op::Upsert(k, v)),
        5 => k().prop_map(Op::Remove),
        3 => k().prop_map(Op::Get),
        2 => k().prop_map(Op::Contains),
        1 => Just(Op::Count),
        3 => (bound(keys), bound(keys), any::<bool>()).prop_map(|(lo, hi, rev)| Op::Range { lo, hi, rev }),
        3 => walk(keys),
        2 => batch(60).prop_map(Op::AddMany),
        1 => batch(20).prop_map(Op::UpsertMany),
        1 => batch(20).prop_map(Op::UpdateMany),
        2 => prop::collection::vec(k(), 1..60).prop_map(Op::RemoveMany),
    ]
}

fn txn(keys: u16) -> impl Strategy<Value = Txn> {
    let end = prop_oneof![
        3 => Just(End::Commit),
        1 => any::<bool>().prop_map(|explicit| End::Rollback { explicit }),
    ];
    let after = prop_oneof![6 => Just(After::Nothing), 1 => Just(After::Maintain), 2 => Just(After::Reopen)];
    (prop::collection::vec(op(keys), 1..25), end, prop::bool::weighted(0.2), after)
        .prop_map(|(ops, end, hold_snapshot, after)| Txn { ops, end, hold_snapshot, after })
}

fn case(unique: bool) -> impl Strategy<Value = Case> {
    let setup = (
        prop_oneof![3 => Just(4u32), 1 => Just(5), 1 => Just(8)],
        prop_oneof![3 => Just(ValuePlacement::InNode), 1 => Just(ValuePlacement::Blob)],
        prop_oneof![3 => Just(64u16), 1 => Just(400)],
        prop::bool::weighted(0.4),
    )
        .prop_map(move |(slot_length, placement, keys, churn)| Setup {
            unique,
            slot_length,
            placement,
            keys,
            churn,
        });
    setup.prop_flat_map(|setup| {
        let keys = setup.keys;
        (Just(setup), prop::collection::vec(txn(keys), 3..12)).prop_map(|(setup, txns)| Case { setup, txns })
    })
}

// ---------------------------------------------------------------------------------------------
// The model

/// What a store should hold: per key, its values in insertion order.
#[derive(Clone, Debug, PartialEq)]
struct Model {
    unique: bool,
    items: BTreeMap<Vec<u8>, Vec<Vec<u8>>>,
}

impl Model {
    fn new(unique: bool) -> Model {
        Model { unique, items: BTreeMap::new() }
    }

    fn push(&mut self, k: Vec<u8>, v: Vec<u8>) {
        self.items.entry(k).or_default().push(v);
    }

    fn add(&mut self, k: Vec<u8>, v: Vec<u8>) -> bool {
        if self.unique && self.items.contains_key(&k) {
            return false;
        }
        self.push(k, v);
        true
    }

    fn add_if_not_exist(&mut self, k: Vec<u8>, v: Vec<u8>) -> bool {
        if self.items.contains_key(&k) {
            return false;
        }
        self.push(k, v);
        true
    }

    /// Replaces the first value of `k`.
    fn update(&mut self, k: &[u8], v: Vec<u8>) -> bool {
        match self.items.get_mut(k) {
            Some(dups) => {
                dups[0] = v;
                true
            }
            None => false,
        }
    }

    fn upsert(&mut self, k: Vec<u8>, v: Vec<u8>) {
        if !self.update(&k, v.clone()) {
            self.push(k, v);
        }
    }

    /// Removes the `nth` value of `k` (the first, for `remove`).
    fn remove_nth(&mut self, k: &[u8], nth: usize) -> bool {
        let Some(dups) = self.items.get_mut(k) else { return false };
        dups.remove(nth);
        if dups.is_empty() {
            self.items.remove(k);
        }
        true
    }

    fn get(&self, k: &[u8]) -> Option<Vec<u8>> {
        self.items.get(k).map(|d| d[0].clone())
    }

    fn len(&self) -> usize {
        self.items.values().map(Vec::len).sum()
    }

    /// All items in order, duplicates in insertion order.
    fn flat(&self) -> Items {
        self.items.iter().flat_map(|(k, d)| d.iter().map(move |v| (k.clone(), v.clone()))).collect()
    }

    fn range(&self, lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>, rev: bool) -> Items {
        let above = |k: &Vec<u8>| match lo {
            Bound::Included(l) => k >= l,
            Bound::Excluded(l) => k > l,
            Bound::Unbounded => true,
        };
        let below = |k: &Vec<u8>| match hi {
            Bound::Included(h) => k <= h,
            Bound::Excluded(h) => k < h,
            Bound::Unbounded => true,
        };
        let mut out: Items = self.flat().into_iter().filter(|(k, _)| above(k) && below(k)).collect();
        if rev {
            out.reverse();
        }
        out
    }

    /// The key of the `i`-th item of `flat()` and its index among its duplicates.
    fn locate(flat: &Items, i: usize) -> (Vec<u8>, usize) {
        let key = flat[i].0.clone();
        let first = flat.partition_point(|(k, _)| *k < key);
        (key, i - first)
    }
}

// ---------------------------------------------------------------------------------------------
// Running a case

fn collect(it: sop::Result<Iter<'_>>) -> TestResult<Items> {
    engine(engine(it)?.map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec()))).collect::<sop::Result<Items>>())
}

/// Checks a store's full contents (forward, backward and count) against `expected`.
fn check_contents(s: &Store<'_>, expected: &Model, what: &str) -> TestResult {
    let flat = expected.flat();
    let fwd = collect(s.iter())?;
    prop_assert_eq!(&fwd, &flat, "{}: forward scan", what);
    let mut rev = collect(s.iter_rev())?;
    rev.reverse();
    prop_assert_eq!(&rev, &flat, "{}: reverse scan", what);
    prop_assert_eq!(engine(s.count())?, flat.len() as u64, "{}: count", what);
    Ok(())
}

fn check_committed(db: &Database, expected: &Model, what: &str) -> TestResult {
    let tx = engine(db.begin_read())?;
    let s = engine(tx.open_store(STORE))?;
    check_contents(&s, expected, what)
}

struct Harness {
    setup: Setup,
    /// The file system, shared by every handle opened on it.
    sim: SimVfs,
    /// `None` only while reopening.
    db: Option<Database>,
    committed: Model,
}

impl Harness {
    fn new(setup: Setup) -> TestResult<Harness> {
        let sim = SimVfs::new();
        let db = engine(Database::open_with(DB_PATH, setup.db_options(&sim)))?;
        let tx = engine(db.begin_write())?;
        engine(tx.create_store(STORE, setup.store_options()))?;
        engine(tx.commit())?;
        let committed = Model::new(setup.unique);
        Ok(Harness { setup, sim, db: Some(db), committed })
    }

    fn db(&self) -> &Database {
        self.db.as_ref().expect("database is open")
    }

    /// Closes the database and opens it again from the same (simulated) folder.
    fn reopen(&mut self) -> TestResult {
        drop(self.db.take());
        self.db = Some(engine(Database::open_with(DB_PATH, self.setup.db_options(&self.sim)))?);
        check_committed(self.db(), &self.committed, "after reopen")
    }

    fn run_txn(&mut self, t: &Txn) -> TestResult {
        let before = self.committed.clone();
        let snapshot = if t.hold_snapshot { Some(engine(self.db().begin_read())?) } else { None };

        let tx = engine(self.db().begin_write())?;
        let mut model = self.committed.clone();
        for op in &t.ops {
            self.apply(&tx, &mut model, op)?;
        }
        match t.end {
            End::Commit => {
                engine(tx.commit())?;
                self.committed = model;
            }
            End::Rollback { explicit: true } => tx.rollback(),
            End::Rollback { explicit: false } => drop(tx),
        }
        check_committed(self.db(), &self.committed, "after commit/rollback")?;

        match t.after {
            After::Nothing => {}
            After::Maintain => {
                engine(self.db().maintain())?;
                check_committed(self.db(), &self.committed, "after maintain")?;
            }
            After::Reopen => {
                if let Some(snap) = &snapshot {
                    check_contents(&engine(snap.open_store(STORE))?, &before, "old snapshot before reopen")?;
                }
                drop(snapshot);
                return self.reopen();
            }
        }
        if let Some(snap) = &snapshot {
            // Commits, checkpoints and reclamation since must not disturb an open snapshot.
            check_contents(&engine(snap.open_store(STORE))?, &before, "old snapshot")?;
        }
        Ok(())
    }

    fn apply(&self, tx: &Transaction, m: &mut Model, op: &Op) -> TestResult {
        let s = engine(tx.open_store(STORE))?;
        let key = |k: u16| self.setup.key(k);
        match op {
            Op::Add(k, v) => {
                let got = engine(s.add(&key(*k), &v.bytes()))?;
                prop_assert_eq!(got, m.add(key(*k), v.bytes()), "{:?}", op);
            }
            Op::AddIfNotExist(k, v) => {
                let got = engine(s.add_if_not_exist(&key(*k), &v.bytes()))?;
                prop_assert_eq!(got, m.add_if_not_exist(key(*k), v.bytes()), "{:?}", op);
            }
            Op::Update(k, v) => {
                let got = engine(s.update(&key(*k), &v.bytes()))?;
                prop_assert_eq!(got, m.update(&key(*k), v.bytes()), "{:?}", op);
            }
            Op::Upsert(k, v) => {
                engine(s.upsert(&key(*k), &v.bytes()))?;
                m.upsert(key(*k), v.bytes());
            }
            Op::Remove(k) => {
                let got = engine(s.remove(&key(*k)))?;
                prop_assert_eq!(got, m.remove_nth(&key(*k), 0), "{:?}", op);
            }
            Op::Get(k) => {
                let got = engine(s.get(&key(*k)))?.map(|b| b.to_vec());
                prop_assert_eq!(got, m.get(&key(*k)), "{:?}", op);
            }
            Op::Contains(k) => {
                let got = engine(s.contains(&key(*k)))?;
                prop_assert_eq!(got, m.get(&key(*k)).is_some(), "{:?}", op);
            }
            Op::Count => {
                prop_assert_eq!(engine(s.count())?, m.len() as u64, "{:?}", op);
            }
            Op::Range { lo, hi, rev } => {
                let (lo, hi) = (self.setup.bound(lo), self.setup.bound(hi));
                let got = if *rev {
                    collect(s.range_rev((lo.clone(), hi.clone())))?
                } else {
                    collect(s.range((lo.clone(), hi.clone())))?
                };
                prop_assert_eq!(got, m.range(&lo, &hi, *rev), "{:?}", op);
            }
            Op::Walk { start, steps } => self.walk(&s, m, start, steps)?,
            Op::AddMany(items) => {
                let items: Items = items.iter().map(|(k, v)| (key(*k), v.bytes())).collect();
                let got = engine(s.add_many(items.iter().map(|(k, v)| (k, v))))?;
                let want = items.into_iter().filter(|(k, v)| m.add(k.clone(), v.clone())).count();
                prop_assert_eq!(got, want, "{:?}", op);
            }
            Op::UpsertMany(items) => {
                let items: Items = items.iter().map(|(k, v)| (key(*k), v.bytes())).collect();
                engine(s.upsert_many(items.iter().map(|(k, v)| (k, v))))?;
                items.into_iter().for_each(|(k, v)| m.upsert(k, v));
            }
            Op::UpdateMany(items) => {
                let items: Items = items.iter().map(|(k, v)| (key(*k), v.bytes())).collect();
                let got = engine(s.update_many(items.iter().map(|(k, v)| (k, v))))?;
                let want = items.into_iter().filter(|(k, v)| m.update(k, v.clone())).count();
                prop_assert_eq!(got, want, "{:?}", op);
            }
            Op::RemoveMany(keys) => {
                let keys: Vec<Vec<u8>> = keys.iter().map(|k| key(*k)).collect();
                let got = engine(s.remove_many(&keys))?;
                let want = keys.iter().filter(|k| m.remove_nth(k, 0)).count();
                prop_assert_eq!(got, want, "{:?}", op);
            }
        }
        Ok(())
    }

    /// A cursor walk. The model's cursor is an index into the flattened items.
    fn walk(&self, s: &Store<'_>, m: &mut Model, start: &Start, steps: &[Step]) -> TestResult {
        #[derive(Debug, Clone, PartialEq)]
        enum Pos {
            On(usize),
            /// The item that was at this index was removed; `next` moves to what is there now.
            Removed(usize, Vec<u8>),
            Off,
        }
        let mut flat = m.flat();
        let on = |i: usize, len: usize| if i < len { Pos::On(i) } else { Pos::Off };
        let mut c = s.cursor();
        let (found, mut pos) = match start {
            Start::First => (engine(c.first())?, on(0, flat.len())),
            Start::Last => (engine(c.last())?, flat.len().checked_sub(1).map_or(Pos::Off, Pos::On)),
            Start::Find(k) => {
                let key = self.setup.key(*k);
                let i = flat.partition_point(|(x, _)| *x < key);
                (engine(c.find(&key))?, on(i, flat.len()))
            }
            Start::FindLast(k) => {
                let key = self.setup.key(*k);
                let i = flat.partition_point(|(x, _)| *x <= key);
                (engine(c.find_last(&key))?, i.checked_sub(1).map_or(Pos::Off, Pos::On))
            }
        };
        let want_found = match (start, &pos) {
            (Start::Find(k) | Start::FindLast(k), Pos::On(i)) => flat[*i].0 == self.setup.key(*k),
            (_, p) => matches!(p, Pos::On(_)),
        };
        prop_assert_eq!(found, want_found, "walk start {:?}", start);

        for (n, step) in std::iter::once(None).chain(steps.iter().map(Some)).enumerate() {
            let ctx = |pos: &Pos| format!("walk {start:?}, step {n} {step:?}, model position {pos:?}");
            match step {
                None => {}
                Some(Step::Next) => {
                    pos = match pos {
                        Pos::On(i) => on(i + 1, flat.len()),
                        Pos::Removed(i, _) => on(i, flat.len()),
                        Pos::Off => Pos::Off,
                    };
                    prop_assert_eq!(engine(c.next())?, matches!(pos, Pos::On(_)), "{}", ctx(&pos));
                }
                Some(Step::Prev) => {
                    pos = match pos {
                        Pos::On(i) | Pos::Removed(i, _) => i.checked_sub(1).map_or(Pos::Off, Pos::On),
                        Pos::Off => Pos::Off,
                    };
                    prop_assert_eq!(engine(c.prev())?, matches!(pos, Pos::On(_)), "{}", ctx(&pos));
                }
                Some(Step::RemoveCurrent) => match pos.clone() {
                    Pos::On(i) => {
                        engine(c.remove_current())?;
                        let (key, nth) = Model::locate(&flat, i);
                        m.remove_nth(&key, nth);
                        flat = m.flat();
                        pos = Pos::Removed(i, key);
                    }
                    // Removing it again is a no-op.
                    Pos::Removed(..) => engine(c.remove_current())?,
                    Pos::Off => {
                        prop_assert!(matches!(c.remove_current(), Err(Error::NoCurrentItem)), "{}", ctx(&pos))
                    }
                },
                Some(Step::UpdateCurrent(v)) => match &pos {
                    Pos::On(i) => {
                        engine(c.update_current(&v.bytes()))?;
                        let (key, nth) = Model::locate(&flat, *i);
                        m.items.get_mut(&key).expect("located key")[nth] = v.bytes();
                        flat = m.flat();
                    }
                    // Would resurrect the removed item; not part of the model.
                    Pos::Removed(..) => {}
                    Pos::Off => {
                        prop_assert!(matches!(c.update_current(&v.bytes()), Err(Error::NoCurrentItem)), "{}", ctx(&pos))
                    }
                },
            }
            match &pos {
                Pos::On(i) => {
                    prop_assert_eq!(c.key().map(|b| b.to_vec()), Some(flat[*i].0.clone()), "key: {}", ctx(&pos));
                    let value = engine(c.value())?.map(|b| b.to_vec());
                    prop_assert_eq!(value, Some(flat[*i].1.clone()), "value: {}", ctx(&pos));
                }
                Pos::Removed(_, key) => {
                    prop_assert_eq!(c.key().map(|b| b.to_vec()), Some(key.clone()), "key: {}", ctx(&pos));
                }
                Pos::Off => {
                    prop_assert_eq!(c.key(), None, "key: {}", ctx(&pos));
                    prop_assert_eq!(engine(c.value())?, None, "value: {}", ctx(&pos));
                }
            }
        }
        Ok(())
    }
}

fn run(case: &Case) -> TestResult {
    let mut h = Harness::new(case.setup.clone())?;
    for t in &case.txns {
        h.run_txn(t)?;
    }
    h.reopen()
}

fn config() -> Config {
    // PROPTEST_CASES overrides the number of cases, for longer soak runs.
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(128);
    // No regression files: this suite must not write into the source tree.
    Config { cases, failure_persistence: None, ..Config::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn unique_store_matches_model(case in case(true)) {
        run(&case)?;
    }

    #[test]
    fn non_unique_store_matches_model(case in case(false)) {
        run(&case)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Sanity checks of the harness itself

#[test]
fn key_encoding_is_injective_and_has_prefixes() {
    for alphabet in [4u16, 8] {
        let n = alphabet * alphabet * alphabet;
        let keys: std::collections::BTreeSet<Vec<u8>> = (0..n).map(|k| key_bytes(k, alphabet)).collect();
        assert_eq!(keys.len(), usize::from(n));
        assert!(keys.iter().any(|k| k.len() == 3 && keys.contains(&k[..1]) && keys.contains(&k[..2])));
    }
}

/// Regression: a range with inverted bounds is empty, also after the transaction has written
/// to the store (it used to panic inside `BTreeMap::range` over the buffered writes).
#[test]
fn reversed_range_with_pending_writes_is_empty() -> sop::Result<()> {
    let sim = SimVfs::new();
    let db =
        Database::open_with(DB_PATH, DbOptions { vfs: Arc::new(sim), create_if_missing: true, ..Default::default() })?;
    db.transact(|tx| tx.create_store(STORE, StoreOptions::default()).map(|_| ()))?;
    let reversed = (Bound::Included(b"b".to_vec()), Bound::Included(b"a".to_vec()));
    let both_excluded = (Bound::Excluded(b"a".to_vec()), Bound::Excluded(b"a".to_vec()));

    // No buffered writes: empty, as expected.
    let tx = db.begin_write()?;
    let s = tx.open_store(STORE)?;
    assert_eq!(s.range(reversed.clone())?.count(), 0);
    assert_eq!(s.range_rev(both_excluded.clone())?.count(), 0);

    // One buffered write: the same calls panic.
    s.add(b"a", b"1")?;
    assert_eq!(s.range(reversed)?.count(), 0);
    assert_eq!(s.range_rev(both_excluded)?.count(), 0);
    Ok(())
}
