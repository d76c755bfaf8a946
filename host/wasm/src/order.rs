//! Key orders: a plugin's encoding, served to the engine as a [`sop::OrderCodec`].

use crate::bindings::order::KeyOrderPluginPre;
use crate::bindings::order::sop::plugin::types::{FlatKeys, PluginError as WitError};
use crate::plugin::Loaded;
use crate::state::HostState;
use crate::{PluginError, PluginKind};
use parking_lot::Mutex;
use std::sync::Arc;
use wasmtime::Store;

/// Calls an instance serves before it is replaced, so guest-side leaks stay bounded.
const MAX_USES: u64 = 100_000;

struct Warm {
    store: Store<HostState>,
    bindings: crate::bindings::order::KeyOrderPlugin,
    uses: u64,
}

/// A key-order plugin, ready to encode. Instances are reused across calls (a key order is
/// a pure function, so nothing leaks between callers) and discarded after any failure.
pub struct WasmOrder {
    loaded: Arc<Loaded>,
    pre: KeyOrderPluginPre<HostState>,
    idle: Mutex<Vec<Warm>>,
}

impl WasmOrder {
    pub(crate) fn new(loaded: Arc<Loaded>) -> Result<WasmOrder, PluginError> {
        if loaded.kind != PluginKind::KeyOrder {
            return Err(PluginError::WrongKind {
                plugin: loaded.name.clone(),
                expected: PluginKind::KeyOrder,
                found: loaded.kind,
            });
        }
        let pre = KeyOrderPluginPre::new(loaded.pre.clone())
            .map_err(|e| PluginError::Invalid(crate::runtime::one_line(&e)))?;
        Ok(WasmOrder { loaded, pre, idle: Mutex::new(Vec::new()) })
    }

    fn warm(&self) -> Result<Warm, PluginError> {
        if let Some(w) = self.idle.lock().pop() {
            return Ok(w);
        }
        let mut store = self.loaded.store();
        let bindings = self.pre.instantiate(&mut store).map_err(|e| self.loaded.failure(&mut store, e))?;
        Ok(Warm { store, bindings, uses: 0 })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Warm) -> wasmtime::Result<T>) -> Result<T, PluginError> {
        self.loaded.guarded(|| self.call(f))
    }

    fn call<T>(&self, f: impl FnOnce(&mut Warm) -> wasmtime::Result<T>) -> Result<T, PluginError> {
        let mut w = self.warm()?;
        self.loaded.arm(&mut w.store);
        match f(&mut w) {
            Ok(v) => {
                w.uses += 1;
                if w.uses < MAX_USES {
                    self.idle.lock().push(w);
                }
                Ok(v)
            }
            // The instance may be in any state after a trap: drop it.
            Err(e) => Err(self.loaded.failure(&mut w.store, e)),
        }
    }

    /// The plugin's name and whether its order is injective.
    pub fn info(&self) -> Result<(String, bool), PluginError> {
        let i = self.with(|w| w.bindings.sop_plugin_key_order().call_info(&mut w.store))?;
        Ok((i.name, i.injective))
    }

    /// The plugin's own comparison (the escape hatch, and the reference its encoding is
    /// checked against).
    pub fn compare(&self, a: &[u8], b: &[u8]) -> Result<std::cmp::Ordering, PluginError> {
        let c = self.with(|w| w.bindings.sop_plugin_key_order().call_compare(&mut w.store, a, b))?;
        Ok(c.cmp(&0))
    }

    /// Sort keys of many keys, in one call.
    pub fn encode_many(&self, keys: &[&[u8]]) -> Result<Vec<Vec<u8>>, PluginError> {
        let mut flat = FlatKeys { data: Vec::with_capacity(keys.iter().map(|k| k.len()).sum()), ends: Vec::new() };
        for k in keys {
            flat.data.extend_from_slice(k);
            flat.ends.push(flat.data.len() as u32);
        }
        let out = self.with(|w| w.bindings.sop_plugin_key_order().call_encode(&mut w.store, &flat))?;
        let plugin = &self.loaded.name;
        let out = out.map_err(|e| PluginError::Guest { plugin: plugin.clone(), message: wit_message(e) })?;
        let cap = self.loaded.limits.output_bytes;
        if out.data.len() as u64 > cap {
            return Err(PluginError::OutputTooLarge { plugin: plugin.clone(), len: out.data.len() as u64, cap });
        }
        if out.ends.len() != keys.len() {
            return Err(PluginError::Guest {
                plugin: plugin.clone(),
                message: format!("returned {} sort keys for {} keys", out.ends.len(), keys.len()),
            });
        }
        let mut start = 0usize;
        let mut res = Vec::with_capacity(keys.len());
        for &e in &out.ends {
            let e = e as usize;
            if e < start || e > out.data.len() {
                return Err(PluginError::Guest {
                    plugin: plugin.clone(),
                    message: "malformed sort-key offsets".into(),
                });
            }
            res.push(out.data[start..e].to_vec());
            start = e;
        }
        Ok(res)
    }

    /// Checks, on a sample of keys, that the encoding is deterministic (two fresh instances
    /// agree) and agrees with the plugin's own comparison. Run at install; a codec that
    /// fails would silently misorder a store.
    pub(crate) fn verify(&self) -> Result<(), PluginError> {
        let samples = sample_keys();
        let refs: Vec<&[u8]> = samples.iter().map(|k| k.as_slice()).collect();
        // Keys the order rejects (not UTF-8, not JSON...) are left out, one by one.
        let mut keys = Vec::new();
        let mut enc = Vec::new();
        for k in &refs {
            match self.encode_many(&[k]) {
                Ok(mut e) => {
                    keys.push(*k);
                    enc.push(e.remove(0));
                }
                Err(PluginError::Guest { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let fresh = WasmOrder::new(self.loaded.clone())?;
        if fresh.encode_many(&keys)? != enc {
            return Err(self.not_preserving("two instances encode the same keys differently".into()));
        }
        for i in 0..keys.len() {
            for j in 0..keys.len() {
                let by_codec = enc[i].cmp(&enc[j]);
                let by_compare = self.compare(keys[i], keys[j])?;
                if by_codec != by_compare {
                    return Err(self.not_preserving(format!(
                        "compare({:?}, {:?}) is {by_compare:?} but their encodings compare {by_codec:?}",
                        String::from_utf8_lossy(keys[i]),
                        String::from_utf8_lossy(keys[j])
                    )));
                }
            }
        }
        Ok(())
    }

    fn not_preserving(&self, detail: String) -> PluginError {
        PluginError::NotOrderPreserving { plugin: self.loaded.name.clone(), detail }
    }
}

pub(crate) fn wit_message(e: WitError) -> String {
    match e {
        WitError::InvalidInput(m) => format!("invalid input: {m}"),
        WitError::Denied(m) => format!("denied: {m}"),
        WitError::Limit(m) => format!("limit: {m}"),
        WitError::Internal(m) => m,
    }
}

/// Keys of the shapes orders are written for: text in several scripts and cases, prefixes,
/// raw bytes, numbers, JSON objects.
fn sample_keys() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let words = [
        "", "a", "A", "ab", "aB", "b", "B", "Zebra", "zebra", "straße", "STRASSE", "ǅemal", "Ωmega", "ωmega", "日本",
        "10", "9", "-1", "a\u{0}b", "a\u{0}",
    ];
    out.extend(words.iter().map(|w| w.as_bytes().to_vec()));
    out.extend([vec![0u8], vec![0, 0], vec![0xff], vec![0xff, 0], vec![1, 2, 3], vec![0x80, 0x81]]);
    for id in ["1", "2", "10", "-5", "2.5", "\"a\"", "\"B\"", "null", "true", "false"] {
        out.push(format!("{{\"id\":{id}}}").into_bytes());
        out.push(format!("{{\"id\":{id},\"x\":1}}").into_bytes());
    }
    out.push(b"{}".to_vec());
    // A deterministic pseudo-random tail.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for n in 0..24 {
        let len = n % 7;
        out.push(
            (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if n % 2 == 0 { b'a' + (x % 26) as u8 } else { x as u8 }
                })
                .collect(),
        );
    }
    out
}

impl sop::OrderCodec for WasmOrder {
    fn id(&self) -> &str {
        &self.loaded.hash
    }

    fn encode(&self, key: &[u8], out: &mut Vec<u8>) -> Result<(), sop::ExtError> {
        let mut v = self.encode_many(&[key])?;
        out.append(&mut v[0]);
        Ok(())
    }

    fn encode_batch(&self, keys: &[&[u8]]) -> Result<Vec<Vec<u8>>, sop::ExtError> {
        Ok(self.encode_many(keys)?)
    }
}
