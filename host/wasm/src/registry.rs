//! Plugins live in the database, in three system stores:
//!
//! | store | key | value |
//! |---|---|---|
//! | `sop.plugins` | sha256 of the component (hex) | [`PluginRecord`] (postcard) |
//! | `sop.plugin-bytes` | sha256 (hex) ++ chunk number (u32, big-endian) | up to 1 MiB of the component |
//! | `sop.plugin-names` | `name@version` | sha256 (hex) |
//!
//! Components are content-addressed: installing the same bytes twice stores them once, and
//! a hash names one exact plugin forever. Names are aliases that installs move.

use crate::{Grant, Limits, PluginError, PluginKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sop::{StoreOptions, Transaction};

pub(crate) const RECORDS: &str = "sop.plugins";
pub(crate) const BYTES: &str = "sop.plugin-bytes";
pub(crate) const NAMES: &str = "sop.plugin-names";
const CHUNK: usize = 1 << 20;

/// What the database keeps about an installed component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginRecord {
    /// Which world it implements.
    pub kind: PluginKind,
    /// The `sop:plugin` version it was built against.
    pub wit_version: String,
    /// Size of the component in bytes.
    pub size: u64,
    /// Limits declared at install.
    pub limits: Limits,
    /// Stores a compute plugin may use.
    pub grants: Vec<Grant>,
    /// Unix time of the install, in seconds.
    pub installed_at: u64,
    /// Validators only: installed as allowed to be nondeterministic (to see the clock and
    /// random numbers). Key orders never are.
    pub nondeterministic: bool,
}

/// A record as written before `nondeterministic` existed (postcard is not self-describing,
/// so a field added at the end makes old records one field short).
#[derive(Deserialize)]
struct RecordV0 {
    kind: PluginKind,
    wit_version: String,
    size: u64,
    limits: Limits,
    grants: Vec<Grant>,
    installed_at: u64,
}

fn decode_record(bytes: &[u8]) -> Result<PluginRecord, postcard::Error> {
    postcard::from_bytes::<PluginRecord>(bytes).or_else(|e| match postcard::from_bytes::<RecordV0>(bytes) {
        Ok(v) => Ok(PluginRecord {
            kind: v.kind,
            wit_version: v.wit_version,
            size: v.size,
            limits: v.limits,
            grants: v.grants,
            installed_at: v.installed_at,
            nondeterministic: false,
        }),
        Err(_) => Err(e),
    })
}

/// The sha256 of `bytes`, in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn system_options() -> StoreOptions {
    StoreOptions { value_placement: sop::ValuePlacement::Blob, ..StoreOptions::default() }
}

/// Splits `name@version`; the version defaults to none.
pub(crate) fn split_name(name: &str) -> (&str, Option<&str>) {
    match name.split_once('@') {
        Some((n, v)) => (n, Some(v)),
        None => (name, None),
    }
}

pub(crate) fn check_name(name: &str) -> Result<(), PluginError> {
    let (n, v) = split_name(name);
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !ok {
        return Err(PluginError::Invalid(format!("plugin name {n:?}: use 1-64 characters from [A-Za-z0-9._-]")));
    }
    if let Some(v) = v {
        semver::Version::parse(v).map_err(|e| PluginError::Invalid(format!("plugin version {v:?}: {e}")))?;
    }
    Ok(())
}

pub(crate) fn put(
    tx: &Transaction,
    name: &str,
    hash: &str,
    bytes: &[u8],
    record: &PluginRecord,
) -> Result<(), PluginError> {
    let records = tx.open_or_create_store(RECORDS, system_options())?;
    let chunks = tx.open_or_create_store(BYTES, system_options())?;
    let names = tx.open_or_create_store(NAMES, StoreOptions::default())?;
    let rec = postcard::to_allocvec(record).map_err(|e| PluginError::Host(e.to_string()))?;
    records.upsert(hash.as_bytes(), &rec)?;
    for (i, c) in bytes.chunks(CHUNK).enumerate() {
        chunks.upsert(&chunk_key(hash, i as u32), c)?;
    }
    names.upsert(name.as_bytes(), hash.as_bytes())?;
    Ok(())
}

fn chunk_key(hash: &str, i: u32) -> Vec<u8> {
    let mut k = hash.as_bytes().to_vec();
    k.extend_from_slice(&i.to_be_bytes());
    k
}

/// The record of a hash, if installed.
pub(crate) fn record(tx: &Transaction, hash: &str) -> Result<Option<PluginRecord>, PluginError> {
    if !tx.store_exists(RECORDS)? {
        return Ok(None);
    }
    match tx.open_store(RECORDS)?.get(hash.as_bytes())? {
        Some(v) => decode_record(&v)
            .map(Some)
            .map_err(|e| PluginError::Host(format!("plugin record {hash} does not decode: {e}"))),
        None => Ok(None),
    }
}

/// The component bytes of a hash, checked against it.
pub(crate) fn bytes(tx: &Transaction, name: &str, hash: &str, size: u64) -> Result<Vec<u8>, PluginError> {
    let chunks = tx.open_store(BYTES)?;
    let mut out = Vec::with_capacity(size as usize);
    let (lo, hi) = (chunk_key(hash, 0), chunk_key(hash, u32::MAX));
    for item in chunks.range(&lo[..]..=&hi[..])? {
        out.extend_from_slice(&item?.1);
    }
    let found = sha256_hex(&out);
    if found != hash {
        return Err(PluginError::HashMismatch { name: name.into(), expected: hash.into(), found });
    }
    Ok(out)
}

/// Resolves `name@version` exactly, or `name` to its highest installed version.
pub(crate) fn resolve(tx: &Transaction, name: &str) -> Result<Option<(String, String)>, PluginError> {
    if !tx.store_exists(NAMES)? {
        return Ok(None);
    }
    let names = tx.open_store(NAMES)?;
    if let (_, Some(_)) = split_name(name) {
        return Ok(names.get(name.as_bytes())?.map(|h| (name.to_string(), String::from_utf8_lossy(&h).into_owned())));
    }
    Ok(versions(tx, name)?.into_iter().max_by(|a, b| a.0.cmp(&b.0)).map(|(_, alias, hash)| (alias, hash)))
}

/// Every installed version of `name`: (version, alias, hash).
pub(crate) fn versions(tx: &Transaction, name: &str) -> Result<Vec<(semver::Version, String, String)>, PluginError> {
    let mut out = Vec::new();
    if !tx.store_exists(NAMES)? {
        return Ok(out);
    }
    let prefix = format!("{name}@");
    for item in tx.open_store(NAMES)?.range(prefix.as_bytes()..)? {
        let (k, h) = item?;
        let Some(v) = k.strip_prefix(prefix.as_bytes()) else { break };
        if let Ok(v) = semver::Version::parse(&String::from_utf8_lossy(v)) {
            out.push((v, String::from_utf8_lossy(&k).into_owned(), String::from_utf8_lossy(&h).into_owned()));
        }
    }
    Ok(out)
}

/// Every alias: (alias, hash).
pub(crate) fn aliases(tx: &Transaction) -> Result<Vec<(String, String)>, PluginError> {
    if !tx.store_exists(NAMES)? {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for item in tx.open_store(NAMES)?.iter()? {
        let (k, h) = item?;
        out.push((String::from_utf8_lossy(&k).into_owned(), String::from_utf8_lossy(&h).into_owned()));
    }
    Ok(out)
}

/// Removes an alias, and the component when no alias is left for it.
pub(crate) fn unlink(tx: &Transaction, alias: &str, hash: &str) -> Result<(), PluginError> {
    tx.open_store(NAMES)?.remove(alias.as_bytes())?;
    if aliases(tx)?.iter().any(|(_, h)| h == hash) {
        return Ok(());
    }
    if let Some(rec) = record(tx, hash)? {
        tx.open_store(RECORDS)?.remove(hash.as_bytes())?;
        let chunks = tx.open_store(BYTES)?;
        for i in 0..rec.size.div_ceil(CHUNK as u64).max(1) {
            chunks.remove(&chunk_key(hash, i as u32))?;
        }
    }
    Ok(())
}
