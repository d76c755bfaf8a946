//! The database handle and the commit log behind it. One file per step of
//! `docs/PROTOCOL.md`: [`writer`] (group commit, merge, seal, publish), [`validate`]
//! (conflict history), [`catch_up`] (other processes' commits), [`recovery`] (open),
//! [`checkpoint`], [`compact`], [`reclaim`] and their schedule ([`maintenance`]); [`nodes`]
//! reads node images and blobs, [`space`] accounts for commit-file bytes.

mod catch_up;
mod check;
mod checkpoint;
mod compact;
mod contribute;
mod maintenance;
pub(crate) mod nodes;
mod reclaim;
mod recovery;
mod space;
mod validate;
mod writer;

use crate::coord::{Coordinator, EmbeddedCoordinator};
use crate::error::{Error, Result};
use crate::format::meta::{DbHeader, Handle, Loc};
use crate::format::node::Node;
use crate::format::record::{self, MAGIC_DB, tag};
use crate::state::State;
use crate::tree::NodeSource;
use crate::txn::Transaction;
use crate::vfs::{StdVfs, Vfs};
use crate::{OrderCodec, Stats};
pub use check::{DbReport, StoreReport, VerifyReport};
use nodes::{FileTable, Layout, NodeCache};
use parking_lot::{Condvar, Mutex, RwLock};
use space::Space;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use validate::ConflictHistory;
use writer::CommitQueue;

/// How to open a database.
#[derive(Clone)]
pub struct DbOptions {
    /// The file system (default: the real one).
    pub vfs: Arc<dyn Vfs>,
    /// Who coordinates commits between threads (and, with Redis, processes).
    pub coordinator: Arc<dyn Coordinator>,
    /// Budget of the decoded-node cache in bytes (default 256 MiB).
    pub cache_bytes: usize,
    /// Write a checkpoint after this many commits (default 256).
    pub checkpoint_every: u64,
    /// Compact when dead bytes exceed this fraction of all commit-file bytes (default 0.5).
    pub compact_dead_ratio: f64,
    /// Never compact while partially live commit files hold less dead space than this (default 8 MiB).
    pub compact_min_bytes: u64,
    /// How long a dead commit file is kept for old snapshots in other processes (default
    /// 5 s). Only saves them a retry ([`Error::SnapshotTooOld`]); safety never depends on it,
    /// so processes may use different values.
    pub reclaim_grace: Duration,
    /// How long a foreign temp file must sit in `tmp/`, seen by this process's own clock,
    /// before it is taken for a dead writer's debris and removed (default 10 min).
    pub stale_tmp_after: Duration,
    /// Create the database if the folder holds none.
    pub create_if_missing: bool,
    /// Time-to-live of the commit lease (default 5 s). A process that dies holding it delays
    /// the others by at most this long.
    pub lease_ttl: Duration,
    /// When the commit lease is taken, offer the commit batch to the holder's commit instead
    /// of waiting to write a commit file of our own (cross-process group commit; default
    /// on). Processes may differ: a process that does not offer still includes what others
    /// offer.
    pub offer_batches: bool,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            vfs: Arc::new(StdVfs),
            coordinator: Arc::new(EmbeddedCoordinator::default()),
            cache_bytes: 256 << 20,
            checkpoint_every: 256,
            compact_dead_ratio: 0.5,
            compact_min_bytes: 8 << 20,
            reclaim_grace: Duration::from_secs(5),
            stale_tmp_after: recovery::STALE_TMP_AFTER,
            create_if_missing: false,
            lease_ttl: Duration::from_secs(5),
            offer_batches: true,
        }
    }
}

impl std::fmt::Debug for DbOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbOptions")
            .field("cache_bytes", &self.cache_bytes)
            .field("checkpoint_every", &self.checkpoint_every)
            .field("compact_dead_ratio", &self.compact_dead_ratio)
            .field("compact_min_bytes", &self.compact_min_bytes)
            .field("reclaim_grace", &self.reclaim_grace)
            .field("stale_tmp_after", &self.stale_tmp_after)
            .field("create_if_missing", &self.create_if_missing)
            .field("lease_ttl", &self.lease_ttl)
            .field("offer_batches", &self.offer_batches)
            .finish_non_exhaustive()
    }
}

/// A database in a folder. Cheap to clone; share it between threads.
///
/// ```
/// # fn main() -> sop::Result<()> {
/// let dir = tempfile::tempdir().unwrap();
/// let db = sop::Database::open_or_create(dir.path())?;
/// db.transact(|tx| {
///     let users = tx.create_store("users", sop::StoreOptions::default())?;
///     users.add(b"ada", b"Lovelace")?;
///     Ok(())
/// })?;
/// let tx = db.begin_read()?;
/// assert_eq!(tx.open_store("users")?.get(b"ada")?.as_deref(), Some(&b"Lovelace"[..]));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Database {
    pub(crate) inner: Arc<DbInner>,
}

pub(crate) struct DbInner {
    /// Shared lock on `<mode>.lock`, held while the database is open.
    _mode_lock: crate::vfs::FileLock,
    pub layout: Layout,
    pub vfs: Arc<dyn Vfs>,
    pub opts: DbOptions,
    pub db_id: [u8; 16],
    /// Random id of this handle; names its temp files and is recorded in its commits.
    pub writer: u64,
    pub state: RwLock<Arc<State>>,
    /// Serialises changes of `state` and `space` (install, catch-up, checkpoint load) with
    /// the publication of our own commits and with taking checkpoints.
    pub apply_lock: Mutex<()>,
    pub tmp_seen: recovery::TmpSweep,
    pub queue: Mutex<CommitQueue>,
    pub queue_cv: Condvar,
    pub history: Mutex<ConflictHistory>,
    pub files: FileTable,
    pub cache: NodeCache,
    pub space: Mutex<Space>,
    /// Snapshot sequence -> number of live transactions reading it.
    pub snapshots: Mutex<BTreeMap<u64, usize>>,
    pub poisoned: Mutex<Option<String>>,
    /// Natively registered key orders, by name.
    pub orders: RwLock<HashMap<String, Arc<dyn OrderCodec>>>,
    /// Key orders loaded through the extensions, by id (a plugin's hash).
    pub loaded_orders: RwLock<HashMap<String, Arc<dyn OrderCodec>>>,
    pub extensions: RwLock<Option<Arc<dyn crate::Extensions>>>,
    pub stats: StatCounters,
}

#[derive(Default)]
pub(crate) struct StatCounters {
    pub commits: AtomicU64,
    pub batches: AtomicU64,
    pub merges: AtomicU64,
    pub conflicts: AtomicU64,
    pub retries: AtomicU64,
    pub rebases: AtomicU64,
    pub checkpoints: AtomicU64,
    pub relocated_bytes: AtomicU64,
    pub reclaimed_files: AtomicU64,
    pub bytes_written: AtomicU64,
    pub contributed: AtomicU64,
    pub adopted: AtomicU64,
}

impl Database {
    /// Opens an existing database.
    pub fn open(path: impl AsRef<Path>) -> Result<Database> {
        Self::open_with(path, DbOptions::default())
    }

    /// Creates a database in a new or empty folder; fails if one exists.
    pub fn create(path: impl AsRef<Path>) -> Result<Database> {
        let opts = DbOptions { create_if_missing: true, ..DbOptions::default() };
        let p = path.as_ref();
        if opts.vfs.exists(&p.join("sop.db")).map_err(|e| Error::io(p, e))? {
            return Err(Error::AlreadyExists(p.into()));
        }
        Self::open_with(p, opts)
    }

    /// Opens the database in `path`, creating it if the folder holds none.
    pub fn open_or_create(path: impl AsRef<Path>) -> Result<Database> {
        Self::open_with(path, DbOptions { create_if_missing: true, ..DbOptions::default() })
    }

    /// Opens with explicit options. Recovery runs here: leftover temp files of dead commits
    /// are removed, the newest checkpoint is loaded and every later commit is applied and
    /// verified.
    pub fn open_with(path: impl AsRef<Path>, opts: DbOptions) -> Result<Database> {
        let layout = Layout { root: path.as_ref().to_path_buf() };
        let vfs = opts.vfs.clone();
        let db_id = match read_header(&*vfs, &layout)? {
            Some(h) => h.db_id,
            None if opts.create_if_missing => create_header(&*vfs, &layout)?,
            None => return Err(Error::NotADatabase(layout.root.clone())),
        };
        for d in [layout.commits(), layout.checkpoints(), layout.tmp(), layout.pending()] {
            vfs.create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        }
        let mode_lock = take_mode_lock(&*vfs, &layout, opts.coordinator.is_cluster())?;
        let inner = Arc::new(DbInner {
            _mode_lock: mode_lock,
            files: FileTable::new(vfs.clone(), layout.clone()),
            cache: NodeCache::new(opts.cache_bytes),
            layout,
            vfs,
            db_id,
            writer: rand::random(),
            state: RwLock::new(Arc::new(State::default())),
            apply_lock: Mutex::new(()),
            tmp_seen: recovery::TmpSweep::default(),
            queue: Mutex::new(CommitQueue::default()),
            queue_cv: Condvar::new(),
            history: Mutex::new(ConflictHistory::default()),
            space: Mutex::new(Space::default()),
            snapshots: Mutex::new(BTreeMap::new()),
            poisoned: Mutex::new(None),
            orders: RwLock::new(HashMap::new()),
            loaded_orders: RwLock::new(HashMap::new()),
            extensions: RwLock::new(None),
            stats: StatCounters::default(),
            opts,
        });
        inner.sweep_tmp()?;
        inner.recover()?;
        Ok(Database { inner })
    }

    /// Starts a read-only transaction on the latest committed state.
    pub fn begin_read(&self) -> Result<Transaction> {
        Transaction::begin(self.inner.clone(), false)
    }

    /// Starts a read-write transaction. Reads see the state at begin plus the transaction's own
    /// writes; commit validates that nothing it read or wrote changed meanwhile.
    pub fn begin_write(&self) -> Result<Transaction> {
        Transaction::begin(self.inner.clone(), true)
    }

    /// Runs `f` in a read-write transaction and commits it, re-running the whole closure on
    /// [`Error::Conflict`] with bounded, jittered exponential backoff (FoundationDB's run
    /// loop). `f` may run several times, so it must not have side effects outside `tx`.
    ///
    /// ```
    /// # fn main() -> sop::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = sop::Database::open_or_create(dir.path())?;
    /// # db.transact(|tx| tx.create_store("c", Default::default()).map(|_| ()))?;
    /// let n = db.transact(|tx| {
    ///     let s = tx.open_store("c")?;
    ///     let n = s.get(b"n")?.map_or(0, |v| v[0]) + 1;
    ///     s.upsert(b"n", &[n])?;
    ///     Ok(n)
    /// })?;
    /// assert_eq!(n, 1);
    /// # Ok(()) }
    /// ```
    pub fn transact<T>(&self, f: impl FnMut(&Transaction) -> Result<T>) -> Result<T> {
        crate::retry::run(self, &crate::retry::RetryPolicy::default(), f)
    }

    /// [`Database::transact`] with an explicit retry policy.
    pub fn transact_with<T>(
        &self,
        policy: &crate::retry::RetryPolicy,
        f: impl FnMut(&Transaction) -> Result<T>,
    ) -> Result<T> {
        crate::retry::run(self, policy, f)
    }

    /// Registers a native custom key order for stores created with [`crate::KeyOrder::Custom`].
    pub fn register_order(&self, name: &str, codec: Arc<dyn OrderCodec>) {
        self.inner.orders.write().insert(name.to_owned(), codec);
    }

    /// Installs the plugin host: it supplies the key orders that are not registered natively
    /// and runs the validators stores name. Without one, such stores fail to open or commit
    /// with a clear error; they are never read in another order or written unchecked.
    pub fn set_extensions(&self, ext: Arc<dyn crate::Extensions>) {
        *self.inner.extensions.write() = Some(ext);
        self.inner.loaded_orders.write().clear();
    }

    /// The installed plugin host, if any.
    pub fn extensions(&self) -> Option<Arc<dyn crate::Extensions>> {
        self.inner.extensions.read().clone()
    }

    /// Counters since this handle was opened.
    pub fn stats(&self) -> Stats {
        let s = &self.inner.stats;
        let space = self.inner.space.lock();
        Stats {
            commits: s.commits.load(Ordering::Relaxed),
            batches: s.batches.load(Ordering::Relaxed),
            merges: s.merges.load(Ordering::Relaxed),
            conflicts: s.conflicts.load(Ordering::Relaxed),
            retries: s.retries.load(Ordering::Relaxed),
            rebases: s.rebases.load(Ordering::Relaxed),
            checkpoints: s.checkpoints.load(Ordering::Relaxed),
            relocated_bytes: s.relocated_bytes.load(Ordering::Relaxed),
            reclaimed_files: s.reclaimed_files.load(Ordering::Relaxed),
            bytes_written: s.bytes_written.load(Ordering::Relaxed),
            contributed: s.contributed.load(Ordering::Relaxed),
            adopted: s.adopted.load(Ordering::Relaxed),
            file_bytes: space.total_bytes(),
            live_bytes: space.live_bytes(),
            last_seq: self.inner.state.read().seq,
        }
    }

    /// The folder this database lives in.
    pub fn path(&self) -> &Path {
        &self.inner.layout.root
    }

    /// Writes a checkpoint and reclaims dead files now (normally this happens on its own).
    pub fn maintain(&self) -> Result<()> {
        self.inner.check_poison()?;
        let _guard = self.inner.lead();
        self.inner.catch_up()?;
        self.inner.maintenance(true)
    }
}

impl DbInner {
    pub fn check_poison(&self) -> Result<()> {
        match &*self.poisoned.lock() {
            Some(why) => Err(Error::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    pub fn poison(&self, err: &Error) -> Error {
        let mut p = self.poisoned.lock();
        if p.is_none() {
            *p = Some(err.to_string());
        }
        Error::Poisoned(err.to_string())
    }

    /// Opens a file that may have been removed by another process; `None` if it is gone.
    pub fn open_if_exists(&self, path: &Path) -> Result<Option<Arc<dyn crate::vfs::VFile>>> {
        match self.vfs.open(path) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    pub fn current(&self) -> Arc<State> {
        self.state.read().clone()
    }

    /// Loads the current image of a node in `state`.
    pub fn node_in(&self, state: &State, id: u64) -> Result<Arc<Node>> {
        let h = state.registry.get(&id).ok_or_else(|| {
            Error::corrupt(&self.layout.root, format!("node {id:#x} is referenced but not in the registry"))
        })?;
        self.node_at(id, h)
    }

    pub fn node_at(&self, id: u64, h: &Handle) -> Result<Arc<Node>> {
        if let Some(n) = self.cache.get(&h.loc) {
            return Ok(n);
        }
        let n = match h.base {
            None => Arc::new(self.files.read_node(id, h.loc, &self.expected()).map_err(|e| self.missing_file(e))?),
            Some(base_loc) => {
                let (named, changes) =
                    self.files.read_delta(id, h.loc, &self.expected()).map_err(|e| self.missing_file(e))?;
                if named != base_loc {
                    return Err(Error::corrupt(
                        self.layout.commit(h.loc.seq),
                        format!("delta at offset {} names a different base than the registry", h.loc.off),
                    ));
                }
                let base = self.node_at(id, &Handle { loc: base_loc, version: h.version, base: None })?;
                match &*base {
                    Node::Leaf(items) => Arc::new(Node::Leaf(crate::format::node::apply_delta(items, &changes))),
                    Node::Inner { .. } => {
                        return Err(Error::corrupt(self.layout.commit(base_loc.seq), "a delta's base is not a leaf"));
                    }
                }
            }
        };
        self.cache.insert(h.loc, n.clone());
        Ok(n)
    }

    pub fn read_blob(&self, loc: Loc) -> Result<bytes::Bytes> {
        self.files.read_blob(loc, &self.expected()).map_err(|e| self.missing_file(e))
    }

    /// The identity the latest state knows for each commit file, for opening it.
    fn expected(&self) -> impl Fn(u64) -> Option<u64> + '_ {
        |seq| self.space.lock().nonce(seq)
    }

    /// A file that is gone (or holds another identity) is expected for an old snapshot: its
    /// file was reclaimed. It is corruption only if the newest state still references it, so
    /// catch up before deciding: a process that sat idle knows an old state.
    fn missing_file(&self, e: Error) -> Error {
        let Error::SnapshotTooOld(seq) = e else { return e };
        if let Err(e) = self.refresh() {
            return e;
        }
        if self.space.lock().is_live(seq) {
            return Error::corrupt(self.layout.commit(seq), "commit file is missing but still referenced");
        }
        Error::SnapshotTooOld(seq)
    }

    pub fn register_snapshot(&self, seq: u64) {
        *self.snapshots.lock().entry(seq).or_default() += 1;
    }

    pub fn release_snapshot(&self, seq: u64) {
        let mut s = self.snapshots.lock();
        if let Some(n) = s.get_mut(&seq) {
            *n -= 1;
            if *n == 0 {
                s.remove(&seq);
            }
        }
    }

    pub fn oldest_snapshot(&self) -> Option<u64> {
        self.snapshots.lock().keys().next().copied()
    }
}

/// A [`NodeSource`] over one snapshot.
pub(crate) struct View<'a> {
    pub db: &'a DbInner,
    pub state: &'a State,
}

impl NodeSource for View<'_> {
    fn node(&self, id: u64) -> Result<Arc<Node>> {
        self.db.node_in(self.state, id)
    }
}

/// Refuses to open a folder that another process uses in the other mode. Embedded users
/// coordinate only inside their process, cluster users through Redis; mixing them would let
/// embedded writers ignore the swarm's leases (still safe, thanks to fencing, but every
/// commit would then race). Several processes in the same mode may share the folder.
fn take_mode_lock(vfs: &dyn Vfs, layout: &Layout, cluster: bool) -> Result<crate::vfs::FileLock> {
    let (mine, other) = if cluster { ("cluster", "embedded") } else { ("embedded", "cluster") };
    let path = |m: &str| layout.root.join(format!("{m}.lock"));
    let guard_path = layout.root.join("mode.lock");
    let io = |p: &Path, e: io::Error| Error::io(p, e);
    // The guard makes "check the other mode, then join mine" atomic between processes.
    let _guard = vfs.lock_file(&guard_path, true, true).map_err(|e| io(&guard_path, e))?;
    let other_path = path(other);
    match vfs.lock_file(&other_path, true, false).map_err(|e| io(&other_path, e))? {
        Some(l) => drop(l),
        None => return Err(Error::ModeConflict { path: layout.root.clone(), other: other.into() }),
    }
    let mine_path = path(mine);
    vfs.lock_file(&mine_path, false, false)
        .map_err(|e| io(&mine_path, e))?
        .ok_or_else(|| Error::ModeConflict { path: layout.root.clone(), other: other.into() })
}

fn read_header(vfs: &dyn Vfs, layout: &Layout) -> Result<Option<DbHeader>> {
    let path = layout.header();
    let f = match vfs.open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if !vfs.exists(&layout.root).map_err(|e| Error::io(&layout.root, e))? {
                return Ok(None);
            }
            // A folder with commits but no header is not ours to initialise.
            let commits = layout.commits();
            if vfs.exists(&commits).map_err(|e| Error::io(&commits, e))? {
                return Err(Error::corrupt(&path, "header file is missing but commit files exist"));
            }
            return Ok(None);
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    let buf = f.read_all().map_err(|e| Error::io(&path, e))?;
    record::check_prefix(&path, &buf, MAGIC_DB)?;
    let mut recs = record::records(&path, &buf);
    match recs.next() {
        Some(Ok((_, tag::HEADER, payload))) => {
            let h: DbHeader =
                postcard::from_bytes(payload).map_err(|e| Error::corrupt(&path, format!("bad header: {e}")))?;
            Ok(Some(h))
        }
        Some(Err(e)) => Err(e),
        _ => Err(Error::corrupt(&path, "missing header record")),
    }
}

fn create_header(vfs: &dyn Vfs, layout: &Layout) -> Result<[u8; 16]> {
    let root = &layout.root;
    vfs.create_dir_all(root).map_err(|e| Error::io(root, e))?;
    let header = DbHeader { db_id: *uuid::Uuid::new_v4().as_bytes(), created_ms: nodes::now_ms() };
    let mut buf = Vec::new();
    record::begin_file(&mut buf, MAGIC_DB);
    record::put_record(&mut buf, tag::HEADER, &postcard::to_allocvec(&header).expect("header serialises"));
    // Create-if-absent: two processes creating the same database at once must not both
    // believe they won.
    match vfs.put_new(&layout.header(), &buf) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return read_header(vfs, layout)?.map(|h| h.db_id).ok_or_else(|| Error::NotADatabase(root.clone()));
        }
        Err(e) => return Err(Error::io(layout.header(), e)),
    }
    Ok(header.db_id)
}
