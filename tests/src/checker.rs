//! History checkers for the multi-process tests: pure logic over recorded histories, no engine.
//!
//! # List-append (Elle)
//!
//! The model follows Kingsbury & Alvaro, "Elle: Inferring Isolation Anomalies from Experimental
//! Observations" (VLDB 2020), and the anomaly names of Adya, "Weak Consistency: A Generalized
//! Theory and Optimistic Implementations for Distributed Transactions" (MIT PhD thesis, 1999).
//! Each key holds a list; a transaction is a sequence of micro-ops, [`Mop::Append`] (append a
//! value to a key's list) and [`Mop::Read`] (read a key's whole list). Values appended to one key
//! are unique, so every value in a read names the transaction that appended it, and a read of a
//! list shows the whole version order of that key up to the version it observed.
//!
//! [`check_list_append`] works as follows.
//!
//! * **Which transactions count.** [`Outcome::Committed`] ones do. [`Outcome::Aborted`] ones never
//!   do: their reads are ignored, and a value of theirs seen by a counted read is **G1a**.
//!   [`Outcome::Unknown`] ones (the process died before the acknowledgement) count as committed
//!   when a counted transaction read one of their appends (to a fixpoint: an unknown transaction
//!   taken in this way makes its own reads count), and are otherwise dropped, reads included:
//!   an unobserved write leaves no trace in the dependency graph, so dropping it is sound.
//!   A value in a counted read that nobody appended is a **GarbageRead**.
//! * **Version order.** For each key, the longest counted read without duplicates is taken as
//!   the key's known version order `L`; every other read must be a prefix of it, else
//!   **IncompatibleOrder** (the read is then left out of the dependency graph). A read holding a
//!   value twice is **DuplicateElements**. Committed appends of a key that no read shows form the
//!   key's unobserved tail `U`: in any version order they come after all of `L`.
//!   A transaction's appends to a key must appear in `L` in the order it made them
//!   (**MisorderedAppends**).
//! * **Edges** between counted transactions, per key, indexed so that building them is linear in
//!   the history (plus the `U` fan-out below):
//!   * `ww`: between the writers of consecutive elements of `L`, and from the writer of the last
//!     element of `L` to every writer in `U`;
//!   * `wr`: from the writer of the last element of an external read (a read made before the
//!     transaction appended to that key) to the reader;
//!   * `rw`: from an external reader of a prefix of `L` to the writer of the next element of
//!     `L` (past the rest of the run of the writer it saw, after an intermediate read), or,
//!     when the read saw all of `L`, to every writer in `U` (capped by
//!     [`CheckOptions::max_tail_edges`]);
//!   * optionally (`CheckOptions::process_order`) `process` edges between consecutive counted
//!     transactions of one process, ordered by id: strong session serializability;
//!   * optionally (`CheckOptions::realtime`) `realtime` edges from a transaction whose outcome
//!     was known (`Txn::completed`) before another was invoked (`Txn::invoked`), for times taken
//!     from one clock: strict serializability. They are added through a frontier of recently
//!     completed transactions, so their number is linear in the history times the concurrency.
//! * **Cycles.** Tarjan's algorithm finds the strongly connected components of the graph; in
//!   each, breadth-first searches look for one shortest example of each class:
//!   **G0** (only `ww` edges), **G1c** (`ww` and `wr`, at least one `wr`), **GSingle** (exactly
//!   one `rw` edge: read skew, lost update), **G2** (two or more `rw` edges: write skew).
//!   Adya's G2 is GSingle and G2 together. Serializability forbids all of them; snapshot
//!   isolation forbids all but G2. Cycles through `realtime` edges are named with a `-realtime`
//!   suffix by [`Anomaly::name`], other cycles through `process` edges with `-process`. Every
//!   non-trivial component yields at least one cycle. A reported cycle is a shortest closed walk
//!   through its first edge (almost always simple).
//! * **Per read:** **G1b** (a read whose last element is a non-final append of another
//!   transaction to that key: an intermediate read); **InternalInconsistency** (a transaction's
//!   read of a key does not equal its previous read of it plus its own appends since, or does not
//!   end with the appends it made before any read); **FutureRead** (a transaction's read shows a
//!   value it appended only later).
//! * **Final read** (`CheckOptions::final_read`): a transaction that read keys after every
//!   client had finished must hold every counted append to those keys (**LostAppend**, which
//!   also catches an acknowledged append that nobody else read); with real-time edges it also
//!   comes after every acknowledged transaction in the serialization order.
//!
//! The checker sorts the history by transaction first, so its answer never depends on the
//! history's order. Cycles in a report may differ from Elle's choice of example.
//!
//! # Bank
//!
//! [`check_bank`] checks that every read-only snapshot of all accounts sums to the total
//! (snapshot isolation for read-only transactions); [`check_bank_with`] can also forbid negative
//! balances and check the number of accounts.
//!
//! # Phantoms
//!
//! [`check_predicate_pairs`]: transactions that each scanned a range, found it empty and inserted
//! into it must not both commit (a predicate G2 / phantom, Adya's G2 over a predicate read).
//!
//! # Logs
//!
//! [`parse_history_jsonl`] reads the `sop-worker append` log format (`invoke` lines, finished
//! lines with `["append", k, v]` / `["r", k, list]` ops, `"ok"`/`"fail"`/`"info"` outcomes and
//! `invoked`/`completed` times; an invoked transaction without a finished line becomes
//! [`Outcome::Unknown`] with the operations its invocation names), and also the serde form of
//! [`Txn`]. [`parse_bank_snapshots`] and [`parse_predicate_attempts`] read the bank and phantom
//! logs. Every line must parse, except, with [`Tail::MayBeTorn`], a last line cut off by a kill.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::Path;

// ---------------------------------------------------------------------------------------------
// History model
// ---------------------------------------------------------------------------------------------

/// One micro-operation of a list-append transaction.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "lowercase")]
pub enum Mop {
    /// Appends `value` to the list at `key`.
    Append { key: u64, value: u64 },
    /// Reads the whole list at `key`; `None` when the result was not observed.
    #[serde(alias = "r")]
    Read {
        key: u64,
        #[serde(default)]
        list: Option<Vec<u64>>,
    },
}

impl Mop {
    /// An append.
    pub fn append(key: u64, value: u64) -> Mop {
        Mop::Append { key, value }
    }
    /// An observed read.
    pub fn read(key: u64, list: &[u64]) -> Mop {
        Mop::Read { key, list: Some(list.to_vec()) }
    }
    /// The key this micro-op touches.
    pub fn key(&self) -> u64 {
        match self {
            Mop::Append { key, .. } | Mop::Read { key, .. } => *key,
        }
    }
}

/// What the client learnt about a transaction's commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The commit was acknowledged.
    #[serde(alias = "ok")]
    Committed,
    /// The transaction certainly did not commit.
    #[serde(alias = "fail")]
    Aborted,
    /// It may or may not have committed (e.g. the process was killed before the ack).
    #[serde(alias = "info")]
    Unknown,
}

/// One transaction of a history.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Txn {
    /// Unique in the history. With `CheckOptions::process_order`, ids must grow within a process.
    pub id: u64,
    /// The client process (or thread) that ran it.
    #[serde(default)]
    pub process: u64,
    pub ops: Vec<Mop>,
    #[serde(alias = "status")]
    pub outcome: Outcome,
    /// When the client invoked it (before it began), in µs of a clock all clients share.
    #[serde(default)]
    pub invoked: Option<u64>,
    /// When the client learnt the outcome (after the commit returned), same clock.
    #[serde(default)]
    pub completed: Option<u64>,
}

impl Txn {
    pub fn new(id: u64, process: u64, outcome: Outcome, ops: Vec<Mop>) -> Txn {
        Txn { id, process, ops, outcome, invoked: None, completed: None }
    }

    /// The same transaction, timed.
    pub fn at(self, invoked: u64, completed: Option<u64>) -> Txn {
        Txn { invoked: Some(invoked), completed, ..self }
    }
}

// ---------------------------------------------------------------------------------------------
// Reports
// ---------------------------------------------------------------------------------------------

/// The kind of a dependency edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DepKind {
    /// Write-write: the source's append precedes the target's in the key's version order.
    WW,
    /// Write-read: the target read the source's append.
    WR,
    /// Read-write (anti-dependency): the source read a version before the target's append.
    RW,
    /// Process order: the source finished before the target began, in the same process.
    Process,
    /// Real-time order: the source's outcome was known before the target was invoked.
    Realtime,
}

/// One edge of a reported cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dep {
    pub kind: DepKind,
    /// The key that gave the edge (none for process and real-time order).
    pub key: Option<u64>,
}

/// One anomaly found in a history. In cycles, `edges[i]` leads from `cycle[i]` to
/// `cycle[(i + 1) % len]`; ids are transaction ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Anomaly {
    /// A cycle of ww edges only (dirty write, e.g. appends interleaved across two keys).
    G0 { cycle: Vec<u64>, edges: Vec<Dep> },
    /// A cycle of ww and wr edges with at least one wr (circular information flow).
    G1c { cycle: Vec<u64>, edges: Vec<Dep> },
    /// A cycle with exactly one rw edge (read skew, lost update).
    GSingle { cycle: Vec<u64>, edges: Vec<Dep> },
    /// A cycle with two or more rw edges (write skew).
    G2 { cycle: Vec<u64>, edges: Vec<Dep> },
    /// A counted read saw a value appended by an aborted transaction.
    G1a { reader: u64, writer: u64, key: u64, value: u64 },
    /// A read ended with a value that its writer followed with another append to the same key.
    G1b { reader: u64, writer: u64, key: u64, value: u64 },
    /// A read saw a value that no transaction of the history appended.
    GarbageRead { reader: u64, key: u64, value: u64 },
    /// A read holds `value` more than once (reported once per key; see the notes for counts).
    DuplicateElements { txn: u64, key: u64, value: u64, list: Vec<u64> },
    /// The same value was appended to a key more than once (the workload's contract is broken).
    DuplicateAppend { key: u64, value: u64, txns: Vec<u64> },
    /// Two reads of a key that are not prefixes of one another (once per key).
    IncompatibleOrder { key: u64, a_txn: u64, a: Vec<u64>, b_txn: u64, b: Vec<u64> },
    /// A read that disagrees with the transaction's own earlier reads and appends. With
    /// `exact` the read should have equalled `expected`, otherwise ended with it.
    InternalInconsistency { txn: u64, key: u64, read: Vec<u64>, expected: Vec<u64>, exact: bool },
    /// A transaction read its own append before making it.
    FutureRead { txn: u64, key: u64, value: u64 },
    /// A transaction's appends to a key appear in the version order out of the order it made them.
    MisorderedAppends { txn: u64, key: u64, appended: Vec<u64> },
    /// The final read (`CheckOptions::final_read`) of `key` lacks a counted transaction's append.
    LostAppend { reader: u64, writer: u64, key: u64, value: u64 },
}

impl Anomaly {
    /// A short class name: `G0`, `G1a`, `G1b`, `G1c`, `G-single`, `G2`, `garbage-read`,
    /// `duplicate-elements`, `duplicate-append`, `incompatible-order`, `internal`,
    /// `future-read`, `misordered-appends`, `lost-append`; cycles through real-time edges get
    /// `-realtime`, other cycles through process edges `-process`.
    pub fn name(&self) -> String {
        let (base, edges) = match self {
            Anomaly::G0 { edges, .. } => ("G0", Some(edges)),
            Anomaly::G1c { edges, .. } => ("G1c", Some(edges)),
            Anomaly::GSingle { edges, .. } => ("G-single", Some(edges)),
            Anomaly::G2 { edges, .. } => ("G2", Some(edges)),
            Anomaly::G1a { .. } => ("G1a", None),
            Anomaly::G1b { .. } => ("G1b", None),
            Anomaly::GarbageRead { .. } => ("garbage-read", None),
            Anomaly::DuplicateElements { .. } => ("duplicate-elements", None),
            Anomaly::DuplicateAppend { .. } => ("duplicate-append", None),
            Anomaly::IncompatibleOrder { .. } => ("incompatible-order", None),
            Anomaly::InternalInconsistency { .. } => ("internal", None),
            Anomaly::FutureRead { .. } => ("future-read", None),
            Anomaly::MisorderedAppends { .. } => ("misordered-appends", None),
            Anomaly::LostAppend { .. } => ("lost-append", None),
        };
        let has = |k: DepKind| edges.is_some_and(|e| e.iter().any(|d| d.kind == k));
        if has(DepKind::Realtime) {
            format!("{base}-realtime")
        } else if has(DepKind::Process) {
            format!("{base}-process")
        } else {
            base.to_string()
        }
    }

    /// The cycle, for cycle anomalies.
    pub fn cycle(&self) -> Option<(&[u64], &[Dep])> {
        match self {
            Anomaly::G0 { cycle, edges }
            | Anomaly::G1c { cycle, edges }
            | Anomaly::GSingle { cycle, edges }
            | Anomaly::G2 { cycle, edges } => Some((cycle, edges)),
            _ => None,
        }
    }
}

/// What [`check_list_append`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub anomalies: Vec<Anomaly>,
    /// Transactions in the dependency graph: committed plus unknown ones taken as committed.
    pub txns_checked: usize,
    pub committed: usize,
    pub aborted: usize,
    /// Unknown-outcome transactions taken as committed because a counted read saw their append.
    pub unknown_included: usize,
    /// Unknown-outcome transactions dropped (nothing saw their appends).
    pub unknown_dropped: usize,
    pub keys: usize,
    /// Distinct dependency edges.
    pub edges: usize,
    /// Sizes of the non-trivial strongly connected components.
    pub scc_sizes: Vec<usize>,
    /// Counts of suppressed repeats, truncated searches and other remarks.
    pub notes: Vec<String>,
}

impl Report {
    /// No anomalies.
    pub fn is_valid(&self) -> bool {
        self.anomalies.is_empty()
    }
    /// The distinct anomaly class names.
    pub fn anomaly_names(&self) -> BTreeSet<String> {
        self.anomalies.iter().map(Anomaly::name).collect()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} txns checked ({} committed, {} aborted, {} unknown included, {} unknown dropped), {} keys, {} edges",
            self.txns_checked,
            self.committed,
            self.aborted,
            self.unknown_included,
            self.unknown_dropped,
            self.keys,
            self.edges
        )?;
        if self.anomalies.is_empty() {
            writeln!(f, "no anomalies")?;
        } else {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for a in &self.anomalies {
                *counts.entry(a.name()).or_default() += 1;
            }
            writeln!(f, "anomalies: {counts:?}")?;
            for a in self.anomalies.iter().take(20) {
                // Cycles and orders can hold hundreds of elements; the start says enough.
                let line = format!("{a:?}");
                match line.get(..400) {
                    Some(start) if line.len() > 400 => writeln!(f, "  {start} ...")?,
                    _ => writeln!(f, "  {line}")?,
                }
            }
            if self.anomalies.len() > 20 {
                writeln!(f, "  ... {} more", self.anomalies.len() - 20)?;
            }
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        Ok(())
    }
}

/// Tuning of [`check_list_append_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOptions {
    /// Add process-order edges between consecutive counted transactions of each process (by
    /// ascending id). Only sound if a process runs its transactions one after another and ids
    /// grow within a process; it then checks strong session serializability (a process sees
    /// its own acknowledged commits).
    pub process_order: bool,
    /// Edge visits allowed to each breadth-first cycle search in a component; when exhausted,
    /// that class may go unreported there (a note says so). Every non-trivial component still
    /// reports one cycle.
    pub search_budget: usize,
    /// Cap on the rw/ww edges to unobserved tail writers (readers-of-everything × tail writers).
    pub max_tail_edges: usize,
    /// Add real-time edges: from each counted transaction with a `completed` time to every
    /// counted one `invoked` later (through a frontier, so their number stays linear in the
    /// history times the number of concurrent clients). Only sound if the times come from one
    /// clock; then it checks strict serializability.
    pub realtime: bool,
    /// The id of a committed transaction that read keys after every client had finished: each
    /// counted append to a key it read must be in that read (else **LostAppend**).
    pub final_read: Option<u64>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            process_order: false,
            search_budget: 2_000_000,
            max_tail_edges: 1_000_000,
            realtime: false,
            final_read: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Graph
// ---------------------------------------------------------------------------------------------

const WW: u8 = 1;
const WR: u8 = 2;
const RW: u8 = 4;
const PO: u8 = 8;
const RT: u8 = 16;
/// Process and real-time order: both say "finished before the other began".
const ORDER: u8 = PO | RT;
const ALL: u8 = WW | WR | RW | ORDER;

fn dep_of(kind: u8, key: u64) -> Dep {
    match kind {
        WW => Dep { kind: DepKind::WW, key: Some(key) },
        WR => Dep { kind: DepKind::WR, key: Some(key) },
        RW => Dep { kind: DepKind::RW, key: Some(key) },
        PO => Dep { kind: DepKind::Process, key: None },
        _ => Dep { kind: DepKind::Realtime, key: None },
    }
}

/// A graph in compressed sparse rows; one entry per (from, to, kind), edges sorted by source.
struct Graph {
    n: usize,
    off: Vec<usize>,
    from: Vec<u32>,
    to: Vec<u32>,
    kind: Vec<u8>,
    key: Vec<u64>,
}

impl Graph {
    fn build(n: usize, mut edges: Vec<(u32, u32, u8, u64)>) -> Graph {
        edges.sort_unstable();
        edges.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1 && a.2 == b.2);
        let mut off = vec![0usize; n + 1];
        for e in &edges {
            off[e.0 as usize + 1] += 1;
        }
        for i in 0..n {
            off[i + 1] += off[i];
        }
        Graph {
            n,
            off,
            from: edges.iter().map(|e| e.0).collect(),
            to: edges.iter().map(|e| e.1).collect(),
            kind: edges.iter().map(|e| e.2).collect(),
            key: edges.iter().map(|e| e.3).collect(),
        }
    }

    fn out(&self, v: usize) -> std::ops::Range<usize> {
        self.off[v]..self.off[v + 1]
    }
}

/// Tarjan's strongly connected components over the edges whose kind is in `allowed`
/// (iterative, so deep graphs cannot overflow the stack). Returns each node's component.
fn scc(g: &Graph, allowed: u8) -> Vec<u32> {
    const UNSEEN: u32 = u32::MAX;
    let n = g.n;
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0u32; n];
    let mut on = vec![false; n];
    let mut comp = vec![UNSEEN; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut call: Vec<(usize, usize)> = Vec::new();
    let (mut next, mut ncomp) = (0u32, 0u32);
    for s in 0..n {
        if index[s] != UNSEEN {
            continue;
        }
        index[s] = next;
        low[s] = next;
        next += 1;
        stack.push(s);
        on[s] = true;
        call.push((s, g.off[s]));
        while let Some(&(v, mut ei)) = call.last() {
            let end = g.off[v + 1];
            let mut descended = false;
            while ei < end {
                let e = ei;
                ei += 1;
                if g.kind[e] & allowed == 0 {
                    continue;
                }
                let w = g.to[e] as usize;
                if index[w] == UNSEEN {
                    let top = call.len() - 1;
                    call[top].1 = ei;
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on[w] = true;
                    call.push((w, g.off[w]));
                    descended = true;
                    break;
                } else if on[w] {
                    low[v] = low[v].min(index[w]);
                }
            }
            if descended {
                continue;
            }
            call.pop();
            if let Some(&(p, _)) = call.last() {
                low[p] = low[p].min(low[v]);
            }
            if low[v] == index[v] {
                loop {
                    let w = stack.pop().expect("tarjan stack");
                    on[w] = false;
                    comp[w] = ncomp;
                    if w == v {
                        break;
                    }
                }
                ncomp += 1;
            }
        }
    }
    comp
}

/// A cycle search: start with an edge of a `start` kind, return along `allowed` edges, and use
/// (start edge included) at least one edge of each kind in `require`.
struct Search {
    start: u8,
    allowed: u8,
    require: u8,
}

const PURE_SEARCHES: [Search; 4] = [
    Search { start: WW, allowed: WW, require: 0 },
    Search { start: WR, allowed: WW | WR, require: 0 },
    Search { start: RW, allowed: WW | WR, require: 0 },
    Search { start: RW, allowed: WW | WR | RW, require: RW },
];

const ORDER_SEARCHES: [Search; 4] = [
    Search { start: WW | ORDER, allowed: WW | ORDER, require: ORDER },
    Search { start: WR, allowed: WW | WR | ORDER, require: ORDER },
    Search { start: RW, allowed: WW | WR | ORDER, require: ORDER },
    Search { start: RW, allowed: ALL, require: RW | ORDER },
];

/// Finds a shortest cycle (as edge indices) for `s` in `g`, by breadth-first search over
/// (node, required kinds seen) states. The bool is true when the budget ran out.
fn find_cycle(g: &Graph, s: &Search, budget: usize) -> (Option<Vec<usize>>, bool) {
    let sub = scc(g, s.allowed);
    // Process and real-time edges meet one requirement together.
    let req: Vec<u8> = [WW, WR, RW, ORDER].into_iter().filter(|k| s.require & k != 0).collect();
    let r = req.len();
    let full = (1usize << r) - 1;
    let bits = |k: u8| req.iter().enumerate().fold(0usize, |m, (i, q)| if k & q != 0 { m | 1 << i } else { m });
    let states = g.n << r;
    let mut stamp = vec![0u32; states];
    let mut prev_state = vec![0u32; states];
    let mut prev_edge = vec![0u32; states];
    let mut queue: Vec<usize> = Vec::new();
    let mut id = 0u32;
    let mut left = budget;
    // With the start kind among the allowed ones, a and b must share an allowed-edge component.
    let inside = s.start & !s.allowed == 0;
    for pass in 0..2 {
        if pass == 1 && inside {
            break;
        }
        for e in 0..g.to.len() {
            if g.kind[e] & s.start == 0 {
                continue;
            }
            let (a, b) = (g.from[e] as usize, g.to[e] as usize);
            if (sub[a] == sub[b]) != (pass == 0) {
                continue;
            }
            id += 1;
            let s0 = (b << r) | bits(g.kind[e]);
            let target = (a << r) | full;
            stamp[s0] = id;
            queue.clear();
            queue.push(s0);
            let mut head = 0;
            while head < queue.len() {
                let st = queue[head];
                head += 1;
                let (v, m) = (st >> r, st & full);
                for f in g.out(v) {
                    if left == 0 {
                        return (None, true);
                    }
                    left -= 1;
                    let k = g.kind[f];
                    if k & s.allowed == 0 {
                        continue;
                    }
                    let ns = ((g.to[f] as usize) << r) | m | bits(k);
                    if stamp[ns] == id {
                        continue;
                    }
                    stamp[ns] = id;
                    prev_state[ns] = st as u32;
                    prev_edge[ns] = f as u32;
                    if ns == target {
                        let mut path = Vec::new();
                        let mut cur = ns;
                        while cur != s0 {
                            path.push(prev_edge[cur] as usize);
                            cur = prev_state[cur] as usize;
                        }
                        path.push(e);
                        path.reverse();
                        return (Some(path), false);
                    }
                    queue.push(ns);
                }
            }
        }
    }
    (None, false)
}

fn cycle_anomaly(g: &Graph, path: &[usize], ids: &[u64]) -> Anomaly {
    let cycle: Vec<u64> = path.iter().map(|&e| ids[g.from[e] as usize]).collect();
    let edges: Vec<Dep> = path.iter().map(|&e| dep_of(g.kind[e], g.key[e])).collect();
    let rw = edges.iter().filter(|d| d.kind == DepKind::RW).count();
    let wr = edges.iter().filter(|d| d.kind == DepKind::WR).count();
    match (rw, wr) {
        (0, 0) => Anomaly::G0 { cycle, edges },
        (0, _) => Anomaly::G1c { cycle, edges },
        (1, _) => Anomaly::GSingle { cycle, edges },
        _ => Anomaly::G2 { cycle, edges },
    }
}

// ---------------------------------------------------------------------------------------------
// List-append checker
// ---------------------------------------------------------------------------------------------

/// Where an appended value came from: the transaction, and which of its appends to that key.
#[derive(Clone, Copy)]
struct Write {
    txn: u32,
    nth: u32,
    of: u32,
}

struct ReadRef<'a> {
    txn: u32,
    op: u32,
    /// Made before the transaction appended to the key.
    external: bool,
    list: &'a [u64],
}

#[derive(Default)]
struct KeyData<'a> {
    reads: Vec<ReadRef<'a>>,
    /// (txn, value) in transaction order, then op order: each transaction's run is contiguous.
    appends: Vec<(u32, u64)>,
}

fn first_dup(list: &[u64]) -> Option<u64> {
    let mut seen = HashSet::with_capacity(list.len());
    list.iter().copied().find(|v| !seen.insert(*v))
}

/// Checks a list-append history with the default options. See the module documentation.
pub fn check_list_append(history: &[Txn]) -> Report {
    check_list_append_with(history, &CheckOptions::default())
}

/// Checks a list-append history. See the module documentation.
pub fn check_list_append_with(history: &[Txn], opts: &CheckOptions) -> Report {
    let mut rep = Report::default();
    let mut txns: Vec<&Txn> = history.iter().collect();
    txns.sort();
    let n = txns.len();
    let ids: Vec<u64> = txns.iter().map(|t| t.id).collect();
    let dup_ids = ids.windows(2).filter(|w| w[0] == w[1]).count();
    if dup_ids > 0 {
        rep.notes.push(format!("{dup_ids} transactions share an id with another; reports name ids"));
    }
    let outcome = |i: u32| txns[i as usize].outcome;

    // Index appends and reads by key.
    let mut writes: HashMap<(u64, u64), Write> = HashMap::new();
    let mut dup_appends: BTreeMap<(u64, u64), Vec<u64>> = BTreeMap::new();
    let mut per_key: BTreeMap<u64, KeyData> = BTreeMap::new();
    for (ti, t) in txns.iter().enumerate() {
        let ti = ti as u32;
        let mut counts: BTreeMap<u64, u32> = BTreeMap::new();
        for op in &t.ops {
            if let Mop::Append { key, .. } = op {
                *counts.entry(*key).or_default() += 1;
            }
        }
        let mut nth: BTreeMap<u64, u32> = BTreeMap::new();
        for (oi, op) in t.ops.iter().enumerate() {
            match op {
                Mop::Append { key, value } => {
                    let c = nth.entry(*key).or_default();
                    let w = Write { txn: ti, nth: *c, of: counts[key] };
                    *c += 1;
                    if let Some(prev) = writes.get(&(*key, *value)) {
                        let e = dup_appends.entry((*key, *value)).or_insert_with(|| vec![ids[prev.txn as usize]]);
                        e.push(t.id);
                    } else {
                        writes.insert((*key, *value), w);
                    }
                    per_key.entry(*key).or_default().appends.push((ti, *value));
                }
                Mop::Read { key, list: Some(list) } if t.outcome != Outcome::Aborted => {
                    let external = !nth.contains_key(key);
                    per_key.entry(*key).or_default().reads.push(ReadRef { txn: ti, op: oi as u32, external, list });
                }
                Mop::Read { key, .. } => {
                    per_key.entry(*key).or_default();
                }
            }
        }
    }
    for ((key, value), txns) in dup_appends {
        rep.anomalies.push(Anomaly::DuplicateAppend { key, value, txns });
    }

    // Which transactions count: committed ones, and unknown ones whose appends a counted read
    // saw, to a fixpoint.
    let mut included: Vec<bool> = txns.iter().map(|t| t.outcome == Outcome::Committed).collect();
    if txns.iter().any(|t| t.outcome == Outcome::Unknown) {
        loop {
            let mut newly: Vec<u32> = Vec::new();
            for (&key, kd) in &per_key {
                let lists: Vec<&[u64]> = kd.reads.iter().filter(|r| included[r.txn as usize]).map(|r| r.list).collect();
                let Some(longest) = lists.iter().copied().max_by_key(|l| l.len()) else { continue };
                let mut see = |v: u64| {
                    if let Some(w) = writes.get(&(key, v))
                        && outcome(w.txn) == Outcome::Unknown
                        && !included[w.txn as usize]
                    {
                        newly.push(w.txn);
                    }
                };
                longest.iter().for_each(|&v| see(v));
                for l in &lists {
                    if !longest.starts_with(l) {
                        l.iter().for_each(|&v| see(v));
                    }
                }
            }
            if newly.is_empty() {
                break;
            }
            for t in newly {
                included[t as usize] = true;
            }
        }
    }
    for (i, t) in txns.iter().enumerate() {
        match (t.outcome, included[i]) {
            (Outcome::Committed, _) => rep.committed += 1,
            (Outcome::Aborted, _) => rep.aborted += 1,
            (Outcome::Unknown, true) => rep.unknown_included += 1,
            (Outcome::Unknown, false) => rep.unknown_dropped += 1,
        }
    }
    rep.txns_checked = included.iter().filter(|&&b| b).count();
    rep.keys = per_key.len();

    // Per key: version order, read anomalies, edges.
    let mut edges: Vec<(u32, u32, u8, u64)> = Vec::new();
    let mut tail_edges = 0usize;
    let mut tail_truncated = 0usize;
    for (&key, kd) in &per_key {
        let mut reads: Vec<&ReadRef> = kd.reads.iter().filter(|r| included[r.txn as usize]).collect();
        reads.sort_by(|x, y| y.list.len().cmp(&x.list.len()).then(x.txn.cmp(&y.txn)).then(x.op.cmp(&y.op)));
        let mut compat = vec![false; reads.len()];
        let mut l_at: Option<usize> = None;
        let (mut dups, mut incompatible) = (0usize, 0usize);
        for i in 0..reads.len() {
            let r = reads[i];
            if let Some(li) = l_at
                && reads[li].list.starts_with(r.list)
            {
                compat[i] = true;
                continue;
            }
            if let Some(value) = first_dup(r.list) {
                if dups == 0 {
                    rep.anomalies.push(Anomaly::DuplicateElements {
                        txn: ids[r.txn as usize],
                        key,
                        value,
                        list: r.list.to_vec(),
                    });
                }
                dups += 1;
                continue;
            }
            match l_at {
                None => {
                    l_at = Some(i);
                    compat[i] = true;
                }
                Some(li) => {
                    if incompatible == 0 {
                        rep.anomalies.push(Anomaly::IncompatibleOrder {
                            key,
                            a_txn: ids[r.txn as usize],
                            a: r.list.to_vec(),
                            b_txn: ids[reads[li].txn as usize],
                            b: reads[li].list.to_vec(),
                        });
                    }
                    incompatible += 1;
                }
            }
        }
        if dups > 1 {
            rep.notes.push(format!("key {key}: {dups} reads with duplicate elements"));
        }
        if incompatible > 1 {
            rep.notes.push(format!("key {key}: {incompatible} reads incompatible with the longest read"));
        }
        let l: &[u64] = l_at.map_or(&[], |i| reads[i].list);
        let pos: HashMap<u64, usize> = l.iter().enumerate().map(|(p, &v)| (v, p)).collect();

        // The smallest reader id among compatible reads at least `len` long.
        let mut min_reader = vec![u64::MAX; l.len() + 2];
        for (i, r) in reads.iter().enumerate() {
            if compat[i] {
                let p = r.list.len();
                min_reader[p] = min_reader[p].min(ids[r.txn as usize]);
            }
        }
        for p in (0..=l.len()).rev() {
            min_reader[p] = min_reader[p].min(min_reader[p + 1]);
        }

        // Writers of the version order; aborted and unknown values.
        let mut writer: Vec<Option<u32>> = vec![None; l.len()];
        let odd = |v: u64, reader: u64, rep: &mut Report| match writes.get(&(key, v)) {
            None => rep.anomalies.push(Anomaly::GarbageRead { reader, key, value: v }),
            Some(w) if outcome(w.txn) == Outcome::Aborted => {
                rep.anomalies.push(Anomaly::G1a { reader, writer: ids[w.txn as usize], key, value: v })
            }
            Some(_) => {}
        };
        for (p, &v) in l.iter().enumerate() {
            match writes.get(&(key, v)) {
                Some(w) if included[w.txn as usize] => writer[p] = Some(w.txn),
                _ => odd(v, min_reader[p + 1], &mut rep),
            }
        }
        let mut reported: HashSet<u64> = HashSet::new();
        for (i, r) in reads.iter().enumerate() {
            if !compat[i] {
                for &v in r.list {
                    if !pos.contains_key(&v) && reported.insert(v) {
                        let counted = writes.get(&(key, v)).is_some_and(|w| included[w.txn as usize]);
                        if !counted {
                            odd(v, ids[r.txn as usize], &mut rep);
                        }
                    }
                }
            }
        }

        // Each transaction's run of appends to this key.
        let mut runs: Vec<(u32, usize, usize)> = Vec::new();
        for (i, &(t, _)) in kd.appends.iter().enumerate() {
            match runs.last_mut() {
                Some(run) if run.0 == t => run.2 = i + 1,
                _ => runs.push((t, i, i + 1)),
            }
        }
        let run_of = |t: u32| -> &[(u32, u64)] {
            match runs.binary_search_by_key(&t, |r| r.0) {
                Ok(i) => &kd.appends[runs[i].1..runs[i].2],
                Err(_) => &[],
            }
        };

        // Unobserved tail, misordered appends.
        let mut tail: Vec<u32> = Vec::new();
        for &(t, s, e) in &runs {
            if !included[t as usize] {
                continue;
            }
            let run = &kd.appends[s..e];
            if run.iter().any(|(_, v)| !pos.contains_key(v)) {
                tail.push(t);
            }
            let mut prev: Option<usize> = None; // usize::MAX = in the tail
            let mut bad = false;
            for (_, v) in run {
                let p = pos.get(v).copied().unwrap_or(usize::MAX);
                if let Some(q) = prev
                    && (p <= q && !(p == usize::MAX && q == usize::MAX))
                {
                    bad = true;
                }
                prev = Some(p);
            }
            if bad {
                rep.anomalies.push(Anomaly::MisorderedAppends {
                    txn: ids[t as usize],
                    key,
                    appended: run.iter().map(|x| x.1).collect(),
                });
            }
        }

        // G1b and future reads.
        let mut g1b_seen: HashSet<u64> = HashSet::new();
        let mut g1b = 0usize;
        for (i, r) in reads.iter().enumerate() {
            if !compat[i] {
                continue;
            }
            if let Some(&last) = r.list.last()
                && let Some(w) = writes.get(&(key, last))
                && included[w.txn as usize]
                && w.txn != r.txn
                && w.nth + 1 < w.of
            {
                g1b += 1;
                if g1b_seen.insert(last) {
                    rep.anomalies.push(Anomaly::G1b {
                        reader: ids[r.txn as usize],
                        writer: ids[w.txn as usize],
                        key,
                        value: last,
                    });
                }
            }
            if r.external {
                for (_, v) in run_of(r.txn) {
                    if pos.get(v).is_some_and(|&p| p < r.list.len()) {
                        rep.anomalies.push(Anomaly::FutureRead { txn: ids[r.txn as usize], key, value: *v });
                        break;
                    }
                }
            }
        }
        if g1b > g1b_seen.len() {
            rep.notes.push(format!("key {key}: {g1b} intermediate reads in all"));
        }

        // ww along the version order, then to the tail.
        let mut last: Option<u32> = None;
        for w in writer.iter().flatten() {
            if let Some(p) = last
                && p != *w
            {
                edges.push((p, *w, WW, key));
            }
            last = Some(*w);
        }
        if let Some(p) = last {
            for &u in &tail {
                if u != p {
                    if tail_edges < opts.max_tail_edges {
                        edges.push((p, u, WW, key));
                        tail_edges += 1;
                    } else {
                        tail_truncated += 1;
                    }
                }
            }
        }
        // wr and rw from external reads.
        let mut prev_inc: Vec<Option<u32>> = vec![None; l.len()];
        let mut next_inc: Vec<Option<u32>> = vec![None; l.len() + 1];
        for p in 0..l.len() {
            prev_inc[p] = writer[p].or(if p > 0 { prev_inc[p - 1] } else { None });
        }
        for p in (0..l.len()).rev() {
            next_inc[p] = writer[p].or(next_inc[p + 1]);
        }
        for (i, r) in reads.iter().enumerate() {
            if !compat[i] || !r.external {
                continue;
            }
            let p = r.list.len();
            if p > 0
                && let Some(w) = prev_inc[p - 1]
                && w != r.txn
            {
                edges.push((w, r.txn, WR, key));
            }
            // After an intermediate read (G1b, reported above) of W's appends, skip the rest of
            // W's run: the rw edge back to W would only restate the G1b as a cycle.
            let mut q = p;
            let seen_writer = if p > 0 { prev_inc[p - 1] } else { None };
            if seen_writer.is_some() && next_inc[p] == seen_writer {
                while q < l.len() && (writer[q].is_none() || writer[q] == seen_writer) {
                    q += 1;
                }
            }
            if q < l.len() {
                if let Some(w) = next_inc[q]
                    && w != r.txn
                {
                    edges.push((r.txn, w, RW, key));
                }
            } else {
                for &u in &tail {
                    if u != r.txn {
                        if tail_edges < opts.max_tail_edges {
                            edges.push((r.txn, u, RW, key));
                            tail_edges += 1;
                        } else {
                            tail_truncated += 1;
                        }
                    }
                }
            }
        }
    }
    if tail_truncated > 0 {
        rep.notes.push(format!("{tail_truncated} edges to unobserved tail appends left out (max_tail_edges)"));
    }

    // Internal consistency of each counted transaction.
    for (i, t) in txns.iter().enumerate() {
        if included[i] {
            check_internal(t, &mut rep.anomalies);
        }
    }

    // Process order.
    if opts.process_order {
        let mut last_of: HashMap<u64, u32> = HashMap::new();
        for (i, t) in txns.iter().enumerate() {
            if included[i]
                && let Some(p) = last_of.insert(t.process, i as u32)
            {
                edges.push((p, i as u32, PO, 0));
            }
        }
    }

    if opts.realtime {
        realtime_edges(&txns, &included, &mut edges);
    }
    if let Some(id) = opts.final_read {
        let fi = ids.binary_search(&id).ok().filter(|&i| included[i]);
        let fi = fi.unwrap_or_else(|| panic!("final read {id} is not a committed transaction of the history"));
        check_final_read(&txns, fi, &per_key, &included, &mut rep.anomalies);
    }

    // Cycles.
    let g = Graph::build(n, edges);
    rep.edges = g.to.len();
    let comp = scc(&g, ALL);
    let mut members: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (v, &c) in comp.iter().enumerate() {
        members.entry(c).or_default().push(v as u32);
    }
    let mut sccs: Vec<Vec<u32>> = members.into_values().filter(|m| m.len() > 1).collect();
    sccs.sort(); // by smallest member, i.e. by transaction order
    let mut local = vec![u32::MAX; n];
    for m in &sccs {
        rep.scc_sizes.push(m.len());
        for (li, &v) in m.iter().enumerate() {
            local[v as usize] = li as u32;
        }
        let c = comp[m[0] as usize];
        let mut le = Vec::new();
        for &v in m {
            for e in g.out(v as usize) {
                if comp[g.to[e] as usize] == c {
                    le.push((local[v as usize], local[g.to[e] as usize], g.kind[e], g.key[e]));
                }
            }
        }
        let has_order = le.iter().any(|e| e.2 & ORDER != 0);
        let lg = Graph::build(m.len(), le);
        let lids: Vec<u64> = m.iter().map(|&v| ids[v as usize]).collect();
        let mut names: BTreeSet<String> = BTreeSet::new();
        let searches = PURE_SEARCHES.iter().chain(if has_order { &ORDER_SEARCHES[..] } else { &[] });
        for s in searches {
            let (found, exhausted) = find_cycle(&lg, s, opts.search_budget);
            if exhausted {
                rep.notes.push(format!(
                    "cycle search budget exhausted in a component of {} txns (start {:#b}, allowed {:#b}, require {:#b})",
                    m.len(),
                    s.start,
                    s.allowed,
                    s.require
                ));
            }
            if let Some(path) = found {
                let a = cycle_anomaly(&lg, &path, &lids);
                if names.insert(a.name()) {
                    rep.anomalies.push(a);
                }
            }
        }
        if names.is_empty() {
            let any = Search { start: ALL, allowed: ALL, require: 0 };
            if let (Some(path), _) = find_cycle(&lg, &any, usize::MAX) {
                rep.anomalies.push(cycle_anomaly(&lg, &path, &lids));
            }
        }
    }
    rep
}

/// Real-time edges through a frontier: the completed transactions that no completed transaction
/// follows yet (one invoked after their completion). Each transaction gets an edge from every
/// frontier member as it is invoked, which covers every "A completed before B was invoked" pair
/// transitively, since a member leaves only when a transaction that follows it completes (and
/// joins in its place). Members overlap pairwise in time, so the frontier never holds more
/// transactions than ran at once.
fn realtime_edges(txns: &[&Txn], included: &[bool], edges: &mut Vec<(u32, u32, u8, u64)>) {
    // (time, is completion, txn): at equal times invocations come first, as equal is unordered.
    let mut events: Vec<(u64, bool, u32)> = Vec::new();
    for (i, t) in txns.iter().enumerate() {
        if included[i] {
            events.extend(t.invoked.map(|at| (at, false, i as u32)));
            events.extend(t.completed.map(|at| (at, true, i as u32)));
        }
    }
    events.sort_unstable();
    let mut frontier: Vec<u32> = Vec::new();
    for (_, completion, i) in events {
        if completion {
            if let Some(start) = txns[i as usize].invoked {
                frontier.retain(|&f| txns[f as usize].completed.is_some_and(|end| end >= start));
            }
            frontier.push(i);
        } else {
            edges.extend(frontier.iter().filter(|&&f| f != i).map(|&f| (f, i, RT, 0)));
        }
    }
}

/// Every counted append to a key the final read read must be in that read.
fn check_final_read(
    txns: &[&Txn],
    fi: usize,
    per_key: &BTreeMap<u64, KeyData>,
    included: &[bool],
    out: &mut Vec<Anomaly>,
) {
    let reader = txns[fi];
    for op in &reader.ops {
        let Mop::Read { key, list: Some(list) } = op else { continue };
        let seen: HashSet<u64> = list.iter().copied().collect();
        for &(w, value) in per_key.get(key).map_or(&[][..], |kd| &kd.appends[..]) {
            if w as usize != fi && included[w as usize] && !seen.contains(&value) {
                out.push(Anomaly::LostAppend { reader: reader.id, writer: txns[w as usize].id, key: *key, value });
            }
        }
    }
}

/// Reads must equal the previous read of the key plus the appends since; before any read, they
/// must end with the transaction's appends so far.
fn check_internal(t: &Txn, out: &mut Vec<Anomaly>) {
    let mut state: BTreeMap<u64, (Option<&[u64]>, Vec<u64>)> = BTreeMap::new();
    for op in &t.ops {
        match op {
            Mop::Append { key, value } => state.entry(*key).or_default().1.push(*value),
            Mop::Read { key, list: Some(list) } => {
                let (base, since) = state.entry(*key).or_default();
                let ok = match base {
                    Some(b) => list.len() == b.len() + since.len() && list.starts_with(b) && list.ends_with(since),
                    None => list.ends_with(since),
                };
                if !ok {
                    let mut expected = base.map(|b| b.to_vec()).unwrap_or_default();
                    expected.extend_from_slice(since);
                    out.push(Anomaly::InternalInconsistency {
                        txn: t.id,
                        key: *key,
                        read: list.clone(),
                        expected,
                        exact: base.is_some(),
                    });
                }
                *base = Some(list);
                since.clear();
            }
            Mop::Read { list: None, .. } => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------------------------

fn as_u64(v: &serde_json::Value, what: &str) -> Result<u64, String> {
    v.as_u64().ok_or_else(|| format!("{what}: expected an unsigned integer, got {v}"))
}

fn parse_worker_op(v: &serde_json::Value) -> Result<Mop, String> {
    if v.is_object() {
        return serde_json::from_value(v.clone()).map_err(|e| format!("op {v}: {e}"));
    }
    let a = v.as_array().ok_or_else(|| format!("op {v}: expected an array"))?;
    let f = a.first().and_then(|f| f.as_str()).ok_or_else(|| format!("op {v}: no function"))?;
    let key = as_u64(a.get(1).unwrap_or(&serde_json::Value::Null), "op key")?;
    let arg = a.get(2).unwrap_or(&serde_json::Value::Null);
    match f {
        "append" => Ok(Mop::Append { key, value: as_u64(arg, "append value")? }),
        "r" | "read" => {
            let list = if arg.is_null() {
                None
            } else {
                let l = arg.as_array().ok_or_else(|| format!("op {v}: read list is not an array"))?;
                Some(l.iter().map(|x| as_u64(x, "read element")).collect::<Result<Vec<_>, _>>()?)
            };
            Ok(Mop::Read { key, list })
        }
        _ => Err(format!("op {v}: unknown function {f:?}")),
    }
}

fn parse_outcome(v: &serde_json::Value) -> Result<Outcome, String> {
    serde_json::from_value(v.clone()).map_err(|e| format!("outcome {v}: {e}"))
}

/// Whether a log may end in a torn line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// Every line must parse: the writer ended on its own.
    Complete,
    /// The writer was killed: its last line may be cut off (no newline, not JSON) and is then
    /// skipped. Any other unreadable line is still an error.
    MayBeTorn,
}

/// The JSON value of each non-empty line of a log, with its line number.
pub fn json_lines(text: &str, tail: Tail) -> Result<Vec<(usize, serde_json::Value)>, String> {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out = Vec::new();
    for (no, line) in lines.iter().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(v) => out.push((no + 1, v)),
            // A proper prefix of a JSON object never parses, so a torn line always lands here.
            Err(_) if tail == Tail::MayBeTorn && no + 1 == lines.len() => {}
            Err(e) => return Err(format!("line {}: {e}", no + 1)),
        }
    }
    Ok(out)
}

/// A time field, absent or null when not recorded.
fn time_field(v: &serde_json::Value, field: &str) -> Result<Option<u64>, String> {
    v.get(field).filter(|t| !t.is_null()).map(|t| as_u64(t, field)).transpose()
}

fn parse_ops(ops: &serde_json::Value) -> Result<Vec<Mop>, String> {
    ops.as_array().ok_or("ops: expected an array")?.iter().map(parse_worker_op).collect()
}

fn parse_log_txn(v: &serde_json::Value) -> Result<Option<Txn>, String> {
    if v.get("invoke").is_none() && v.get("ops").is_none() {
        return Ok(None);
    }
    let process = v.get("process").map(|p| as_u64(p, "process")).transpose()?.unwrap_or(0);
    let (invoked, completed) = (time_field(v, "invoked")?, time_field(v, "completed")?);
    if let Some(id) = v.get("invoke") {
        let id = as_u64(id, "invoke")?;
        let ops = match (v.get("ops"), v.get("appends")) {
            (Some(ops), _) => parse_ops(ops)?,
            (None, appends) => {
                let mut ops = Vec::new();
                for kv in appends.and_then(|a| a.as_array()).map(|a| a.as_slice()).unwrap_or(&[]) {
                    let kv = kv.as_array().ok_or("appends: expected [key, value] pairs")?;
                    let (k, val) = (kv.first().ok_or("appends: no key")?, kv.get(1).ok_or("appends: no value")?);
                    ops.push(Mop::Append { key: as_u64(k, "append key")?, value: as_u64(val, "append value")? });
                }
                ops
            }
        };
        return Ok(Some(Txn { id, process, ops, outcome: Outcome::Unknown, invoked, completed: None }));
    }
    if let Some(ops) = v.get("ops") {
        let id = as_u64(v.get("id").ok_or("transaction without id")?, "id")?;
        let outcome = parse_outcome(v.get("outcome").or(v.get("status")).ok_or("transaction without outcome")?)?;
        return Ok(Some(Txn { id, process, ops: parse_ops(ops)?, outcome, invoked, completed }));
    }
    Ok(None)
}

/// Parses list-append log lines (see the module documentation) into transactions. Lines that are
/// neither invocations nor transactions (e.g. bank `snap` lines, worker events) are ignored.
/// An invocation names the transaction's appends (`appends`, as `[key, value]` pairs) or all its
/// operations (`ops`); its transaction stays [`Outcome::Unknown`] unless a finished line follows.
pub fn parse_history_jsonl(text: &str, tail: Tail) -> Result<Vec<Txn>, String> {
    let mut finished: Vec<Txn> = Vec::new();
    let mut invoked: BTreeMap<u64, Txn> = BTreeMap::new();
    for (no, v) in json_lines(text, tail)? {
        match parse_log_txn(&v).map_err(|e| format!("line {no}: {e}"))? {
            Some(t) if v.get("invoke").is_some() => {
                invoked.insert(t.id, t);
            }
            Some(t) => finished.push(t),
            None => {}
        }
    }
    for t in &mut finished {
        if let Some(inv) = invoked.remove(&t.id) {
            t.invoked = t.invoked.or(inv.invoked);
        }
    }
    finished.extend(invoked.into_values());
    Ok(finished)
}

/// Reads the logs of several processes with `parse` and merges what it returns.
pub fn load_logs<P: AsRef<Path>, T>(
    logs: &[(P, Tail)],
    parse: fn(&str, Tail) -> Result<Vec<T>, String>,
) -> Result<Vec<T>, String> {
    let mut all = Vec::new();
    for (p, tail) in logs {
        let p = p.as_ref();
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        all.extend(parse(&text, *tail).map_err(|e| format!("{}: {e}", p.display()))?);
    }
    Ok(all)
}

/// Reads and merges the list-append logs of several processes.
pub fn load_history_files<P: AsRef<Path>>(logs: &[(P, Tail)]) -> Result<Vec<Txn>, String> {
    load_logs(logs, parse_history_jsonl)
}

/// Bank snapshots from `{"snap": [balances]}` log lines, numbered in order of appearance.
pub fn parse_bank_snapshots(text: &str, tail: Tail) -> Result<Vec<(u64, Vec<i64>)>, String> {
    let mut out = Vec::new();
    for (no, v) in json_lines(text, tail)? {
        if let Some(s) = v.get("snap") {
            let s = serde_json::from_value::<Vec<i64>>(s.clone()).map_err(|e| format!("line {no}: {e}"))?;
            out.push((out.len() as u64, s));
        }
    }
    Ok(out)
}

/// Predicate attempts from `{"range": .., "txn": .., "saw_empty": .., "outcome": ..}` log lines.
pub fn parse_predicate_attempts(text: &str, tail: Tail) -> Result<Vec<PredicateAttempt>, String> {
    let mut out = Vec::new();
    for (no, v) in json_lines(text, tail)? {
        if v.get("range").is_some() {
            out.push(serde_json::from_value(v).map_err(|e| format!("line {no}: {e}"))?);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Bank
// ---------------------------------------------------------------------------------------------

/// Options of [`check_bank_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BankOptions {
    /// Report negative balances.
    pub forbid_negative: bool,
    /// The number of accounts every snapshot must show.
    pub accounts: Option<usize>,
}

/// Every snapshot must sum to `total`. Returns one message per bad snapshot.
pub fn check_bank(total: i64, snapshots: &[(u64, Vec<i64>)]) -> Vec<String> {
    check_bank_with(total, snapshots, &BankOptions::default())
}

/// [`check_bank`] with the optional checks of [`BankOptions`].
pub fn check_bank_with(total: i64, snapshots: &[(u64, Vec<i64>)], opts: &BankOptions) -> Vec<String> {
    let mut out = Vec::new();
    for (id, balances) in snapshots {
        let sum: i128 = balances.iter().map(|&b| b as i128).sum();
        if sum != total as i128 {
            out.push(format!("snapshot {id}: balances sum to {sum}, not {total} (torn read): {balances:?}"));
        }
        if opts.forbid_negative {
            let neg: Vec<(usize, i64)> = balances.iter().copied().enumerate().filter(|&(_, b)| b < 0).collect();
            if !neg.is_empty() {
                out.push(format!("snapshot {id}: negative balances (account, balance): {neg:?}"));
            }
        }
        if let Some(n) = opts.accounts
            && balances.len() != n
        {
            out.push(format!("snapshot {id}: {} accounts, expected {n}", balances.len()));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Phantoms
// ---------------------------------------------------------------------------------------------

/// One transaction that scanned a range (predicate read) and inserted into it if it was empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PredicateAttempt {
    pub txn: u64,
    /// Identifies the range; attempts on the same range form a group (usually a pair).
    pub range: u64,
    /// The scan found the range empty (so the transaction inserted).
    pub saw_empty: bool,
    pub outcome: Outcome,
}

/// Groups attempts by range and reports (a) any two committed attempts that both saw the range
/// empty: under serializability the second must see the first's insert (a phantom, predicate
/// G2), and (b) a committed attempt that saw the range non-empty although no other attempt on it
/// committed or may have (a phantom insert that never committed: G1a over a predicate).
/// Unknown outcomes are never counted as committed for (a) and always as possibly committed
/// for (b).
pub fn check_predicate_pairs(attempts: &[PredicateAttempt]) -> Vec<String> {
    let mut groups: BTreeMap<u64, Vec<&PredicateAttempt>> = BTreeMap::new();
    for a in attempts {
        groups.entry(a.range).or_default().push(a);
    }
    let mut out = Vec::new();
    for (range, mut g) in groups {
        g.sort_by_key(|a| a.txn);
        let empty_committed: Vec<u64> =
            g.iter().filter(|a| a.saw_empty && a.outcome == Outcome::Committed).map(|a| a.txn).collect();
        for (i, &a) in empty_committed.iter().enumerate() {
            for &b in &empty_committed[i + 1..] {
                out.push(format!(
                    "range {range}: txns {a} and {b} both saw the range empty, inserted and committed (phantom)"
                ));
            }
        }
        for a in &g {
            if !a.saw_empty
                && a.outcome == Outcome::Committed
                && !g.iter().any(|b| b.txn != a.txn && b.outcome != Outcome::Aborted)
            {
                out.push(format!(
                    "range {range}: txn {} saw the range non-empty, but no other txn on it committed",
                    a.txn
                ));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A ceiling that only catches hangs.
    const HANG: Duration = Duration::from_secs(60);

    /// splitmix64: deterministic and dependency-free.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
        fn shuffle<T>(&mut self, v: &mut [T]) {
            for i in (1..v.len()).rev() {
                let j = self.below(i as u64 + 1) as usize;
                v.swap(i, j);
            }
        }
    }

    fn a(k: u64, v: u64) -> Mop {
        Mop::append(k, v)
    }
    fn r(k: u64, l: &[u64]) -> Mop {
        Mop::read(k, l)
    }
    fn ok(id: u64, ops: Vec<Mop>) -> Txn {
        Txn::new(id, id, Outcome::Committed, ops)
    }
    fn fail(id: u64, ops: Vec<Mop>) -> Txn {
        Txn::new(id, id, Outcome::Aborted, ops)
    }
    fn info(id: u64, ops: Vec<Mop>) -> Txn {
        Txn::new(id, id, Outcome::Unknown, ops)
    }
    fn names(h: &[Txn]) -> BTreeSet<String> {
        check_list_append(h).anomaly_names()
    }
    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// The report must not depend on the history's order.
    fn check_shuffled(h: &[Txn], opts: &CheckOptions) -> Report {
        let base = check_list_append_with(h, opts);
        let mut rng = Rng(7);
        let mut h2 = h.to_vec();
        for _ in 0..8 {
            rng.shuffle(&mut h2);
            assert_eq!(check_list_append_with(&h2, opts), base, "report depends on history order");
        }
        base
    }

    struct Gen {
        txns: usize,
        keys: u64,
        /// Retire a key after this many appends (0 = never).
        rotate_after: u64,
        processes: u64,
    }

    /// A serial execution against a simulated list store: every read sees exactly the appends
    /// of the transactions that committed before it (plus its own). Aborted transactions are
    /// discarded; unknown ones are applied or discarded at random.
    fn serial_history(seed: u64, g: &Gen) -> Vec<Txn> {
        let mut rng = Rng(seed);
        let mut store: HashMap<u64, Vec<u64>> = HashMap::new();
        let mut active: Vec<u64> = (0..g.keys).collect();
        let mut next_key = g.keys;
        let mut next_val: HashMap<u64, u64> = HashMap::new();
        let mut out = Vec::new();
        for id in 1..=g.txns as u64 {
            let mut local: Vec<(u64, u64)> = Vec::new();
            let mut ops = Vec::new();
            let read_only = rng.chance(15);
            for _ in 0..1 + rng.below(5) {
                let slot = rng.below(active.len() as u64) as usize;
                let k = active[slot];
                if read_only || rng.chance(50) {
                    let mut l = store.get(&k).cloned().unwrap_or_default();
                    l.extend(local.iter().filter(|x| x.0 == k).map(|x| x.1));
                    ops.push(Mop::Read { key: k, list: Some(l) });
                } else {
                    let v = next_val.entry(k).or_insert(1);
                    ops.push(a(k, *v));
                    local.push((k, *v));
                    *v += 1;
                    if g.rotate_after > 0 && *v > g.rotate_after {
                        active[slot] = next_key;
                        next_key += 1;
                    }
                }
            }
            let outcome = match rng.below(100) {
                0..85 => Outcome::Committed,
                85..95 => Outcome::Aborted,
                _ => Outcome::Unknown,
            };
            let apply = match outcome {
                Outcome::Committed => true,
                Outcome::Aborted => false,
                Outcome::Unknown => rng.chance(50),
            };
            if apply {
                for (k, v) in local {
                    store.entry(k).or_default().push(v);
                }
            }
            // Each transaction overlaps the next three in time; real time still follows ids.
            let completed = (outcome != Outcome::Unknown).then_some(id * 10 + 35);
            out.push(Txn::new(id, rng.below(g.processes), outcome, ops).at(id * 10, completed));
        }
        out
    }

    #[test]
    fn checker_accepts_random_serial_histories() {
        for seed in 0..5 {
            let mut h = serial_history(seed, &Gen { txns: 1000, keys: 10, rotate_after: 0, processes: 8 });
            Rng(seed + 100).shuffle(&mut h);
            for (process_order, realtime) in [(false, false), (true, false), (true, true)] {
                let opts = CheckOptions { process_order, realtime, ..CheckOptions::default() };
                let rep = check_shuffled(&h, &opts);
                assert!(rep.is_valid(), "seed {seed}: {rep}");
                assert!(rep.notes.is_empty(), "seed {seed}: {rep}");
                assert_eq!(rep.committed + rep.aborted + rep.unknown_included + rep.unknown_dropped, 1000);
                assert!(rep.committed > 800 && rep.edges > 1000, "{rep}");
                assert!(rep.unknown_included > 0 && rep.unknown_dropped > 0, "{rep}");
            }
        }
    }

    #[test]
    fn checker_catches_stale_reads_planted_in_serial_histories() {
        let h = serial_history(42, &Gen { txns: 1000, keys: 10, rotate_after: 0, processes: 8 });
        // Every (key, value) some committed read saw.
        let mut seen: HashSet<(u64, u64)> = HashSet::new();
        for t in h.iter().filter(|t| t.outcome == Outcome::Committed) {
            for op in &t.ops {
                if let Mop::Read { key, list: Some(l) } = op {
                    seen.extend(l.iter().map(|v| (*key, *v)));
                }
            }
        }
        // Committed txns that read a non-empty list of k, then appended to k a value others saw.
        let mut targets = Vec::new();
        for (ti, t) in h.iter().enumerate() {
            if t.outcome != Outcome::Committed {
                continue;
            }
            for (oi, op) in t.ops.iter().enumerate() {
                if let Mop::Read { key, list: Some(l) } = op
                    && !l.is_empty()
                    && !t.ops[..oi].iter().any(|o| matches!(o, Mop::Append { key: k2, .. } if k2 == key))
                    && t.ops[oi + 1..].iter().any(
                        |o| matches!(o, Mop::Append { key: k2, value } if k2 == key && seen.contains(&(*k2, *value))),
                    )
                {
                    targets.push((ti, oi));
                }
            }
        }
        assert!(targets.len() > 20, "only {} targets", targets.len());
        for &(ti, oi) in targets.iter().step_by(targets.len() / 20) {
            let mut bad = h.clone();
            if let Mop::Read { list: Some(l), .. } = &mut bad[ti].ops[oi] {
                l.pop();
            }
            let rep = check_list_append(&bad);
            assert!(!rep.is_valid(), "stale read in txn {} not caught", bad[ti].id);
        }
    }

    #[test]
    fn checker_g0_write_cycle() {
        // T1 and T2 each append to x and y; the orders disagree.
        let h = vec![
            ok(1, vec![a(1, 1), a(2, 1)]),
            ok(2, vec![a(1, 2), a(2, 2)]),
            ok(3, vec![r(1, &[1, 2]), r(2, &[2, 1])]),
        ];
        let rep = check_shuffled(&h, &CheckOptions::default());
        assert_eq!(rep.anomaly_names(), set(&["G0"]), "{rep}");
        let (cycle, edges) = rep.anomalies[0].cycle().unwrap();
        assert_eq!(cycle.len(), 2);
        assert!(edges.iter().all(|d| d.kind == DepKind::WW));
        assert_eq!(rep.scc_sizes, vec![2]);
    }

    #[test]
    fn checker_lost_update() {
        // Both read x empty and appended: one of them missed the other's update.
        let h = vec![ok(1, vec![r(1, &[]), a(1, 1)]), ok(2, vec![r(1, &[]), a(1, 2)]), ok(3, vec![r(1, &[1, 2])])];
        let rep = check_shuffled(&h, &CheckOptions::default());
        assert_eq!(rep.anomaly_names(), set(&["G-single"]), "{rep}");
        // Without the final read the appends are an unobserved tail: still caught, as G2.
        assert_eq!(names(&h[..2]), set(&["G2"]));
        // And a correct serial pair passes.
        assert!(names(&[ok(1, vec![r(1, &[]), a(1, 1)]), ok(2, vec![r(1, &[1]), a(1, 2)])]).is_empty());
    }

    #[test]
    fn checker_write_skew_is_g2() {
        let h = vec![
            ok(1, vec![a(1, 1), a(2, 1)]),
            ok(2, vec![r(1, &[1]), r(2, &[1]), a(1, 2)]),
            ok(3, vec![r(1, &[1]), r(2, &[1]), a(2, 3)]),
            ok(4, vec![r(1, &[1, 2]), r(2, &[1, 3])]),
        ];
        let rep = check_shuffled(&h, &CheckOptions::default());
        assert_eq!(rep.anomaly_names(), set(&["G2"]), "{rep}");
        let (cycle, edges) = rep.anomalies[0].cycle().unwrap();
        assert_eq!(cycle, &[2, 3]);
        assert!(edges.iter().all(|d| d.kind == DepKind::RW));
    }

    #[test]
    fn checker_read_skew_is_g_single() {
        // T2 reads x before T3's appends and y after them.
        let h = vec![
            ok(1, vec![a(1, 1), a(2, 1)]),
            ok(2, vec![r(1, &[1]), r(2, &[1, 2])]),
            ok(3, vec![a(1, 2), a(2, 2)]),
            ok(4, vec![r(1, &[1, 2])]),
        ];
        let rep = check_shuffled(&h, &CheckOptions::default());
        assert_eq!(rep.anomaly_names(), set(&["G-single"]), "{rep}");
        let (cycle, edges) = rep.anomalies[0].cycle().unwrap();
        assert_eq!(cycle, &[2, 3]);
        assert_eq!(edges, &[Dep { kind: DepKind::RW, key: Some(1) }, Dep { kind: DepKind::WR, key: Some(2) }]);
    }

    #[test]
    fn checker_circular_information_flow_is_g1c() {
        let h = vec![ok(1, vec![a(1, 1), r(2, &[1])]), ok(2, vec![a(2, 1), r(1, &[1])])];
        assert_eq!(check_shuffled(&h, &CheckOptions::default()).anomaly_names(), set(&["G1c"]));
    }

    #[test]
    fn checker_aborted_read() {
        let h = vec![fail(1, vec![a(1, 1)]), ok(2, vec![r(1, &[1])]), ok(3, vec![r(1, &[1])])];
        let rep = check_shuffled(&h, &CheckOptions::default());
        assert_eq!(rep.anomalies, vec![Anomaly::G1a { reader: 2, writer: 1, key: 1, value: 1 }]);
        // An aborted reader's reads do not count.
        assert!(names(&[fail(1, vec![a(1, 1)]), fail(2, vec![r(1, &[1])])]).is_empty());
    }

    #[test]
    fn checker_intermediate_read() {
        let h = vec![ok(1, vec![a(1, 1), a(1, 2)]), ok(2, vec![r(1, &[1])]), ok(3, vec![r(1, &[1, 2])])];
        let rep = check_shuffled(&h, &CheckOptions::default());
        assert_eq!(rep.anomalies, vec![Anomaly::G1b { reader: 2, writer: 1, key: 1, value: 1 }]);
        // Reading its own intermediate state is fine.
        assert!(names(&[ok(1, vec![a(1, 1), r(1, &[1]), a(1, 2)]), ok(2, vec![r(1, &[1, 2])])]).is_empty());
    }

    #[test]
    fn checker_duplicates_and_garbage() {
        let h = vec![ok(1, vec![a(1, 1)]), ok(2, vec![r(1, &[1, 1])]), ok(3, vec![r(2, &[7])])];
        let rep = check_shuffled(&h, &CheckOptions::default());
        assert_eq!(rep.anomaly_names(), set(&["duplicate-elements", "garbage-read"]), "{rep}");
        assert!(rep.anomalies.contains(&Anomaly::DuplicateElements { txn: 2, key: 1, value: 1, list: vec![1, 1] }));
        assert!(rep.anomalies.contains(&Anomaly::GarbageRead { reader: 3, key: 2, value: 7 }));
        let h = vec![ok(1, vec![a(1, 1)]), ok(2, vec![a(1, 1)])];
        assert_eq!(names(&h), set(&["duplicate-append"]));
    }

    #[test]
    fn checker_incompatible_order() {
        let h =
            vec![ok(1, vec![a(1, 1)]), ok(2, vec![a(1, 2)]), ok(3, vec![r(1, &[1, 2])]), ok(4, vec![r(1, &[2, 1])])];
        let rep = check_shuffled(&h, &CheckOptions::default());
        assert_eq!(rep.anomaly_names(), set(&["incompatible-order"]), "{rep}");
        assert_eq!(
            rep.anomalies[0],
            Anomaly::IncompatibleOrder { key: 1, a_txn: 4, a: vec![2, 1], b_txn: 3, b: vec![1, 2] }
        );
        // Divergent prefixes of different lengths.
        let h = vec![ok(1, vec![a(1, 1)]), ok(2, vec![a(1, 2)]), ok(3, vec![r(1, &[1])]), ok(4, vec![r(1, &[2])])];
        assert_eq!(names(&h), set(&["incompatible-order"]));
    }

    #[test]
    fn checker_internal_inconsistency() {
        // Does not see its own append.
        let h = vec![ok(1, vec![a(1, 1)]), ok(2, vec![a(1, 5), r(1, &[1])])];
        let rep = check_shuffled(&h, &CheckOptions::default());
        assert!(rep.anomalies.contains(&Anomaly::InternalInconsistency {
            txn: 2,
            key: 1,
            read: vec![1],
            expected: vec![5],
            exact: false
        }));
        // Non-repeatable read inside one transaction.
        let h = vec![ok(1, vec![a(1, 1)]), ok(2, vec![r(1, &[]), r(1, &[1])])];
        assert!(names(&h).contains("internal"));
        // Reads its own write before making it.
        let h = vec![ok(1, vec![r(1, &[1]), a(1, 1)]), ok(2, vec![r(1, &[1])])];
        assert!(names(&h).contains("future-read"), "{:?}", names(&h));
        // A transaction's appends out of order.
        let h = vec![ok(1, vec![a(1, 1), a(1, 2)]), ok(2, vec![r(1, &[2, 1])])];
        assert!(names(&h).contains("misordered-appends"), "{:?}", names(&h));
    }

    #[test]
    fn checker_unknown_outcomes() {
        // Seen by a committed read: counted as committed, no G1a or garbage.
        let h = vec![info(1, vec![a(1, 1)]), ok(2, vec![r(1, &[1])])];
        let rep = check_list_append(&h);
        assert!(rep.is_valid(), "{rep}");
        assert_eq!((rep.unknown_included, rep.unknown_dropped, rep.txns_checked), (1, 0, 2));
        // Never seen: dropped, reads included.
        let h = vec![info(1, vec![r(2, &[9]), a(1, 1)]), ok(2, vec![r(1, &[])])];
        let rep = check_list_append(&h);
        assert!(rep.is_valid(), "{rep}");
        assert_eq!((rep.unknown_included, rep.unknown_dropped), (0, 1));
        // T2 counts because T5 saw its append; then its reads count, so T4 (whose appends only
        // T2 saw) counts too, and T2's reads form a read skew with T4 (x's tail, y's order).
        let h = vec![
            ok(1, vec![a(1, 1), a(2, 1)]),
            info(2, vec![r(1, &[1]), r(2, &[1, 2]), a(3, 1)]),
            info(4, vec![a(1, 2), a(2, 2)]),
            ok(5, vec![r(3, &[1])]),
        ];
        let rep = check_shuffled(&h, &CheckOptions::default());
        assert_eq!((rep.unknown_included, rep.unknown_dropped), (2, 0), "{rep}");
        assert_eq!(rep.anomaly_names(), set(&["G-single"]), "{rep}");
    }

    #[test]
    fn checker_process_order_catches_stale_session_reads() {
        // Process 7 commits an append, then its next transaction does not see it.
        let h = vec![
            Txn::new(1, 7, Outcome::Committed, vec![a(1, 1)]),
            Txn::new(2, 7, Outcome::Committed, vec![r(1, &[])]),
            Txn::new(3, 8, Outcome::Committed, vec![r(1, &[1])]),
        ];
        assert!(check_list_append(&h).is_valid());
        let opts = CheckOptions { process_order: true, ..CheckOptions::default() };
        let rep = check_shuffled(&h, &opts);
        assert_eq!(rep.anomaly_names(), set(&["G-single-process"]), "{rep}");
    }

    #[test]
    fn checker_performance_20k() {
        let mut h = serial_history(9, &Gen { txns: 20_000, keys: 10, rotate_after: 100, processes: 16 });
        Rng(1).shuffle(&mut h);
        let t0 = Instant::now();
        let rep = check_list_append_with(
            &h,
            &CheckOptions { process_order: true, realtime: true, ..CheckOptions::default() },
        );
        let el = t0.elapsed();
        eprintln!("20k serial txns checked in {el:?}: {rep}");
        assert!(rep.is_valid(), "{rep}");
        // Real-time edges stay linear: about one per transaction and overlap.
        assert!(rep.edges < 20 * 20_000, "{rep}");
        // A planted G0 among the 20k is found.
        h.push(ok(1_000_001, vec![a(1_000_000, 1), a(1_000_001, 1)]));
        h.push(ok(1_000_002, vec![a(1_000_000, 2), a(1_000_001, 2)]));
        h.push(ok(1_000_003, vec![r(1_000_000, &[1, 2]), r(1_000_001, &[2, 1])]));
        let rep = check_list_append(&h);
        assert_eq!(rep.anomaly_names(), set(&["G0"]));
        // Only a hang fails: a loaded machine may be many times slower than usual.
        assert!(el < HANG, "took {el:?}");
    }

    #[test]
    fn checker_large_component_stays_bounded() {
        // Everyone reads x empty and appends to it, nobody reads again: one big component
        // through the unobserved tail (quadratic rw edges, capped) — must still finish quickly.
        let h: Vec<Txn> = (1..=2000).map(|i| ok(i, vec![r(1, &[]), a(1, i)])).collect();
        let t0 = Instant::now();
        let rep = check_list_append_with(&h, &CheckOptions { max_tail_edges: 200_000, ..CheckOptions::default() });
        assert!(rep.anomaly_names().contains("G2"), "{rep}");
        assert!(t0.elapsed() < HANG, "took {:?}", t0.elapsed());
        assert!(rep.notes.iter().any(|n| n.contains("max_tail_edges")), "{rep}");
    }

    #[test]
    fn checker_parses_worker_logs() {
        let log = concat!(
            "{\"invoke\":1,\"process\":3,\"appends\":[[5,8]]}\n",
            "{\"id\":1,\"process\":3,\"ops\":[[\"r\",5,[]],[\"append\",5,8]],\"outcome\":\"ok\"}\n",
            "{\"invoke\":2,\"process\":3,\"appends\":[]}\n",
            "{\"id\":2,\"process\":3,\"ops\":[[\"r\",5,[8]]],\"outcome\":\"fail\"}\n",
            "{\"invoke\":3,\"process\":3,\"appends\":[[5,24],[6,25]]}\n",
            "{\"snap\":[1,2]}\n",
            "{\"id\":4,\"process\":3,\"ops\":[[\"r\",5,[8,2",
        );
        assert!(parse_history_jsonl(log, Tail::Complete).unwrap_err().starts_with("line 7:"));
        let mut h = parse_history_jsonl(log, Tail::MayBeTorn).unwrap();
        h.sort();
        assert_eq!(
            h,
            vec![
                Txn::new(1, 3, Outcome::Committed, vec![r(5, &[]), a(5, 8)]),
                Txn::new(2, 3, Outcome::Aborted, vec![r(5, &[8])]),
                Txn::new(3, 3, Outcome::Unknown, vec![a(5, 24), a(6, 25)]),
            ]
        );
        let bad_op = "{\"id\":1,\"ops\":[[\"x\",1,2]],\"outcome\":\"ok\"}\n";
        assert!(parse_history_jsonl(bad_op, Tail::MayBeTorn).is_err());
        // Only the last line may be torn.
        let torn_inside = "{\"id\":1,\"ops\":[],\"outcome\":\"ok\"\n{\"id\":2,\"ops\":[],\"outcome\":\"ok\"}\n";
        assert!(parse_history_jsonl(torn_inside, Tail::MayBeTorn).is_err());
        // Invocations may name every operation; times are kept, the invocation's if need be.
        let log = concat!(
            "{\"invoke\":7,\"process\":2,\"invoked\":100,\"ops\":[[\"r\",1,[]],[\"append\",1,3]]}\n",
            "{\"invoke\":8,\"process\":2,\"invoked\":200,\"ops\":[[\"r\",1,[3]]]}\n",
            "{\"id\":8,\"process\":2,\"ops\":[[\"r\",1,[3]]],\"outcome\":\"info\",\"completed\":250}\n",
            "{\"corrupt\":\"x\",\"process\":2}\n",
        );
        let mut h = parse_history_jsonl(log, Tail::Complete).unwrap();
        h.sort();
        assert_eq!(
            h,
            vec![
                Txn::new(7, 2, Outcome::Unknown, vec![r(1, &[]), a(1, 3)]).at(100, None),
                Txn::new(8, 2, Outcome::Unknown, vec![r(1, &[3])]).at(200, Some(250)),
            ]
        );
        // The serde form round-trips.
        let t = Txn::new(9, 1, Outcome::Unknown, vec![a(1, 2), r(1, &[2]), Mop::Read { key: 3, list: None }]);
        for t in [t.clone(), t.at(5, Some(6))] {
            let line = serde_json::to_string(&t).unwrap();
            assert_eq!(parse_history_jsonl(&line, Tail::Complete).unwrap(), vec![t]);
        }
        let snaps = "{\"snap\":[1,2]}\n{\"x\":1}\n{\"snap\":[3";
        assert_eq!(parse_bank_snapshots(snaps, Tail::MayBeTorn).unwrap(), vec![(0, vec![1, 2])]);
        assert!(parse_bank_snapshots(snaps, Tail::Complete).is_err());
        let attempts = "{\"range\":4,\"txn\":9,\"process\":1,\"saw_empty\":true,\"outcome\":\"ok\"}\n{\"stats\":{}}\n";
        assert_eq!(
            parse_predicate_attempts(attempts, Tail::Complete).unwrap(),
            vec![PredicateAttempt { txn: 9, range: 4, saw_empty: true, outcome: Outcome::Committed }]
        );
        assert!(parse_predicate_attempts("{\"range\":4}\n", Tail::Complete).is_err());
    }

    #[test]
    fn checker_realtime_catches_stale_reads() {
        // T2 was invoked after T1's append was acknowledged, yet did not see it.
        let h = vec![
            ok(1, vec![a(1, 1)]).at(0, Some(10)),
            ok(2, vec![r(1, &[])]).at(20, Some(30)),
            ok(3, vec![r(1, &[1])]).at(40, Some(50)),
        ];
        assert!(check_list_append(&h).is_valid());
        let rt = CheckOptions { realtime: true, ..CheckOptions::default() };
        let rep = check_shuffled(&h, &rt);
        assert_eq!(rep.anomaly_names(), set(&["G-single-realtime"]), "{rep}");
        let (_, edges) = rep.anomalies[0].cycle().unwrap();
        assert!(edges.contains(&Dep { kind: DepKind::Realtime, key: None }), "{rep}");
        // Overlapping in time, or meeting at one instant, they are unordered.
        for t1 in [25, 20] {
            let mut h2 = h.clone();
            h2[0].completed = Some(t1);
            assert!(check_shuffled(&h2, &rt).is_valid(), "completed at {t1}");
        }
        // The stale read is found through a chain of others too (via the frontier).
        let mut h3: Vec<Txn> = (10..60).map(|i| ok(i, vec![r(2, &[])]).at(i * 100, Some(i * 100 + 250))).collect();
        h3.push(ok(1, vec![a(1, 1)]).at(0, Some(10)));
        h3.push(ok(2, vec![r(1, &[])]).at(10_000, Some(10_001)));
        h3.push(ok(3, vec![r(1, &[1])]).at(10_002, Some(10_003)));
        assert_eq!(check_shuffled(&h3, &rt).anomaly_names(), set(&["G-single-realtime"]));
    }

    #[test]
    fn checker_final_read_finds_lost_appends() {
        let h = vec![
            ok(1, vec![r(1, &[]), a(1, 1)]).at(0, Some(10)),
            ok(2, vec![r(2, &[]), a(2, 5)]).at(0, Some(10)),
            // Never seen, outcome unknown: it may not have committed.
            info(3, vec![r(2, &[]), a(2, 7)]).at(0, None),
            ok(9, vec![r(1, &[1]), r(2, &[])]).at(20, Some(30)),
        ];
        let opts = CheckOptions { final_read: Some(9), ..CheckOptions::default() };
        let rep = check_shuffled(&h, &opts);
        assert_eq!(rep.anomalies, vec![Anomaly::LostAppend { reader: 9, writer: 2, key: 2, value: 5 }], "{rep}");
        // With real time the final read comes after T2, which it contradicts.
        let rep = check_shuffled(&h, &CheckOptions { realtime: true, ..opts.clone() });
        assert_eq!(rep.anomaly_names(), set(&["lost-append", "G-single-realtime"]), "{rep}");
        // An unknown transaction someone saw counts: all its appends must be there.
        let h = vec![info(1, vec![a(1, 1), a(2, 1)]), ok(9, vec![r(1, &[1]), r(2, &[])])];
        let rep = check_list_append_with(&h, &opts);
        assert!(rep.anomalies.contains(&Anomaly::LostAppend { reader: 9, writer: 1, key: 2, value: 1 }), "{rep}");
        assert_eq!(rep.anomaly_names(), set(&["lost-append", "G-single"]), "{rep}");
    }

    #[test]
    fn checker_bank() {
        let snaps = vec![(1, vec![50, 50]), (2, vec![30, 70]), (3, vec![30, 50]), (4, vec![110, -10])];
        let bad = check_bank(100, &snaps);
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(bad[0].starts_with("snapshot 3:"), "{bad:?}");
        let strict = check_bank_with(100, &snaps, &BankOptions { forbid_negative: true, accounts: Some(2) });
        assert_eq!(strict.len(), 2, "{strict:?}");
        assert!(check_bank(100, &snaps[..2]).is_empty());
        let missing = check_bank_with(100, &[(5, vec![100])], &BankOptions { accounts: Some(2), ..Default::default() });
        assert_eq!(missing.len(), 1);
    }

    #[test]
    fn checker_predicate_pairs() {
        let p = |txn, range, saw_empty, outcome| PredicateAttempt { txn, range, saw_empty, outcome };
        let ok_pairs = vec![
            p(1, 0, true, Outcome::Committed),
            p(2, 0, false, Outcome::Committed),
            p(3, 1, true, Outcome::Committed),
            p(4, 1, true, Outcome::Aborted),
            p(5, 2, true, Outcome::Unknown),
            p(6, 2, true, Outcome::Committed),
        ];
        assert!(check_predicate_pairs(&ok_pairs).is_empty());
        let bad = vec![
            p(1, 0, true, Outcome::Committed),
            p(2, 0, true, Outcome::Committed),
            p(3, 1, false, Outcome::Committed),
            p(4, 1, true, Outcome::Aborted),
        ];
        let out = check_predicate_pairs(&bad);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out[0].contains("txns 1 and 2"));
    }
}
