//! Compute: the host side of the `storage` interface, scoped to one transaction and to the
//! stores the plugin was granted.

use crate::bindings::compute::sop::plugin::storage::{Entries, Host, HostCursor, HostStore};
use crate::bindings::compute::sop::plugin::types::{FlatKeys, PluginError as WitError};
use crate::state::HostState;
use crate::{Grant, PluginError};
use sop::Transaction;
use std::ops::Bound;
use wasmtime::component::Resource;

/// The transaction a compute call runs in.
///
/// A raw pointer because a wasmtime store's data must be `'static` while the transaction is
/// borrowed from the caller. SAFETY: `PluginHost::run_in` creates the store, makes the one
/// synchronous call into the guest and drops the store before it returns, all while holding
/// the `&Transaction` borrow; host functions dereference the pointer only during that call,
/// on the calling thread (there is no async support, so the store never moves threads).
pub(crate) struct TxPtr(*const Transaction);

// SAFETY: see `TxPtr`: the pointer is only used on the thread that owns the borrow.
unsafe impl Send for TxPtr {}

pub(crate) struct ComputeCtx {
    tx: TxPtr,
    grants: Vec<Grant>,
}

impl ComputeCtx {
    pub fn new(tx: &Transaction, grants: Vec<Grant>) -> ComputeCtx {
        ComputeCtx { tx: TxPtr(tx), grants }
    }

    fn tx(&self) -> &Transaction {
        // SAFETY: see `TxPtr`.
        unsafe { &*self.tx.0 }
    }
}

/// An open store, as the guest holds it.
pub struct StoreHandle {
    name: String,
    write: bool,
}

/// A range being read in batches: the next batch starts after the last key returned.
pub struct CursorState {
    store: String,
    lo: Bound<Vec<u8>>,
    hi: Bound<Vec<u8>>,
    reverse: bool,
    done: bool,
}

/// What a storage call does with an engine error: errors about the guest's input go back to
/// it; errors about the database (conflicts, I/O) end the call and reach the caller intact,
/// so the retry helper still sees a conflict.
enum Fail {
    Guest(WitError),
    Trap(wasmtime::Error),
}

impl HostState {
    fn ctx(&self) -> &ComputeCtx {
        self.compute.as_ref().expect("storage is linked only for compute calls")
    }

    /// Counts a host call against the cap.
    fn tick(&mut self) -> Result<(), wasmtime::Error> {
        self.host_calls += 1;
        if self.host_calls > self.limits.host_calls {
            let e = PluginError::HostCallLimit { plugin: self.plugin.clone(), cap: self.limits.host_calls };
            return Err(self.violate(e));
        }
        Ok(())
    }

    fn engine_error(&mut self, e: sop::Error) -> Fail {
        use sop::Error::*;
        match e {
            KeyTooLarge { .. } | ValueTooLarge { .. } | EmptyKey(_) | InvalidStoreName(_) | ReadOnly => {
                Fail::Guest(WitError::InvalidInput(e.to_string()))
            }
            other => Fail::Trap(self.violate(PluginError::Engine(other))),
        }
    }

    fn with_store<T>(
        &mut self,
        h: &Resource<StoreHandle>,
        write: bool,
        f: impl FnOnce(&sop::Store<'_>) -> sop::Result<T>,
    ) -> wasmtime::Result<Result<T, WitError>> {
        self.tick()?;
        let (name, granted) = {
            let s = self.table.get(h)?;
            (s.name.clone(), s.write)
        };
        if write && !granted {
            let e = PluginError::Denied {
                plugin: self.plugin.clone(),
                detail: format!("store {name:?} is granted read-only"),
            };
            return Err(self.violate(e));
        }
        let r = self.ctx().tx().open_store(&name).and_then(|s| f(&s));
        match r {
            Ok(v) => Ok(Ok(v)),
            Err(e) => match self.engine_error(e) {
                Fail::Guest(g) => Ok(Err(g)),
                Fail::Trap(t) => Err(t),
            },
        }
    }
}

impl Host for HostState {
    fn open(&mut self, name: String) -> wasmtime::Result<Result<Resource<StoreHandle>, WitError>> {
        self.tick()?;
        let Some(g) = self.ctx().grants.iter().find(|g| g.store == name).cloned() else {
            let e =
                PluginError::Denied { plugin: self.plugin.clone(), detail: format!("store {name:?} was not granted") };
            return Err(self.violate(e));
        };
        match self.ctx().tx().store_exists(&name) {
            Ok(true) => {}
            Ok(false) => return Ok(Err(WitError::InvalidInput(format!("store {name:?} does not exist")))),
            Err(e) => {
                return match self.engine_error(e) {
                    Fail::Guest(g) => Ok(Err(g)),
                    Fail::Trap(t) => Err(t),
                };
            }
        }
        Ok(Ok(self.table.push(StoreHandle { name, write: g.write })?))
    }
}

impl HostStore for HostState {
    fn get(&mut self, h: Resource<StoreHandle>, key: Vec<u8>) -> wasmtime::Result<Result<Option<Vec<u8>>, WitError>> {
        self.with_store(&h, false, |s| Ok(s.get(&key)?.map(|v| v.to_vec())))
    }

    fn put(
        &mut self,
        h: Resource<StoreHandle>,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), WitError>> {
        self.with_store(&h, true, |s| s.upsert(&key, &value))
    }

    fn remove(&mut self, h: Resource<StoreHandle>, key: Vec<u8>) -> wasmtime::Result<Result<bool, WitError>> {
        self.with_store(&h, true, |s| s.remove(&key))
    }

    fn range(
        &mut self,
        h: Resource<StoreHandle>,
        start: Option<Vec<u8>>,
        end: Option<Vec<u8>>,
        reverse: bool,
    ) -> wasmtime::Result<Result<Resource<CursorState>, WitError>> {
        self.tick()?;
        let store = self.table.get(&h)?.name.clone();
        let lo = start.map_or(Bound::Unbounded, Bound::Included);
        let hi = end.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(Ok(self.table.push(CursorState { store, lo, hi, reverse, done: false })?))
    }

    fn drop(&mut self, h: Resource<StoreHandle>) -> wasmtime::Result<()> {
        self.table.delete(h)?;
        Ok(())
    }
}

impl HostCursor for HostState {
    fn next_batch(&mut self, h: Resource<CursorState>, max: u32) -> wasmtime::Result<Result<Entries, WitError>> {
        self.tick()?;
        let (store, lo, hi, reverse, done) = {
            let c = self.table.get(&h)?;
            (c.store.clone(), c.lo.clone(), c.hi.clone(), c.reverse, c.done)
        };
        let mut keys = FlatKeys { data: Vec::new(), ends: Vec::new() };
        let mut values = FlatKeys { data: Vec::new(), ends: Vec::new() };
        if done {
            return Ok(Ok(Entries { keys, values }));
        }
        let cap = self.limits.output_bytes;
        let max = max.clamp(1, 4096) as usize;
        let r = self.ctx().tx().open_store(&store).and_then(|s| {
            let it = if reverse { s.range_rev((lo, hi))? } else { s.range((lo, hi))? };
            let mut last: Option<bytes::Bytes> = None;
            for item in it {
                let (k, v) = item?;
                // Never split equal keys (duplicates) across batches: the next batch resumes
                // strictly after the last key.
                let full = keys.ends.len() >= max || (keys.data.len() + values.data.len()) as u64 >= cap;
                if full && last.as_ref() != Some(&k) {
                    break;
                }
                keys.data.extend_from_slice(&k);
                keys.ends.push(keys.data.len() as u32);
                values.data.extend_from_slice(&v);
                values.ends.push(values.data.len() as u32);
                last = Some(k);
            }
            Ok(last)
        });
        let last = match r {
            Ok(l) => l,
            Err(e) => {
                return match self.engine_error(e) {
                    Fail::Guest(g) => Ok(Err(g)),
                    Fail::Trap(t) => Err(t),
                };
            }
        };
        let c = self.table.get_mut(&h)?;
        match last {
            Some(k) if reverse => c.hi = Bound::Excluded(k.to_vec()),
            Some(k) => c.lo = Bound::Excluded(k.to_vec()),
            None => c.done = true,
        }
        Ok(Ok(Entries { keys, values }))
    }

    fn drop(&mut self, h: Resource<CursorState>) -> wasmtime::Result<()> {
        self.table.delete(h)?;
        Ok(())
    }
}
