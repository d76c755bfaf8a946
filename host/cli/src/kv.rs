//! Quick manual work: `sop store create|list|remove`, `sop get|put|del|scan`.

use crate::conn::Conn;
use anyhow::{Context, Result, bail};
use sop::{StoreOptions, ValuePlacement};
use std::path::PathBuf;

/// Parses a key or value given on the command line: `0x`-prefixed hex, or UTF-8 text.
pub fn parse_bytes(s: &str) -> Result<Vec<u8>> {
    match s.strip_prefix("0x") {
        Some(hex) => {
            if hex.len() % 2 != 0 {
                bail!("hex value {s:?} has an odd number of digits");
            }
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).with_context(|| format!("{s:?} is not valid hex")))
                .collect()
        }
        None => Ok(s.as_bytes().to_vec()),
    }
}

/// Shows bytes as text when they are printable UTF-8, else as `0x` hex.
pub fn show_bytes(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) if !s.starts_with("0x") && s.chars().all(|c| !c.is_control()) => s.to_owned(),
        _ => format!("0x{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
    }
}

#[derive(clap::Subcommand)]
pub enum StoreCmd {
    /// Creates a store.
    Create {
        dir: PathBuf,
        store: String,
        /// Keys are unique (default: duplicates allowed only with --duplicates).
        #[arg(long, conflicts_with = "duplicates")]
        unique: bool,
        /// Allow duplicate keys.
        #[arg(long)]
        duplicates: bool,
        /// Items per node.
        #[arg(long, default_value_t = StoreOptions::default().slot_length)]
        slot_length: u32,
        /// Where values live.
        #[arg(long, value_enum, default_value = "node")]
        value_placement: Placement,
        /// Order keys with this key-order plugin (`name` or `name@version`). The store pins
        /// the plugin's exact hash for its whole life.
        #[arg(long, value_name = "PLUGIN")]
        order: Option<String>,
        /// Check every commit writing this store with this validator plugin (resolved by
        /// name at each commit, so reinstalling it upgrades the rules).
        #[arg(long, value_name = "PLUGIN")]
        validator: Option<String>,
    },
    /// Lists stores with their item counts.
    List { dir: PathBuf },
    /// Removes a store and all its items.
    Remove { dir: PathBuf, store: String },
}

#[derive(clap::ValueEnum, Clone, Copy)]
pub enum Placement {
    Node,
    Blob,
}

pub fn store(cmd: StoreCmd, conn: &Conn) -> Result<()> {
    match cmd {
        StoreCmd::Create { dir, store, unique: _, duplicates, slot_length, value_placement, order, validator } => {
            let db = conn.open(&dir, true)?;
            let host = crate::conn::host()?;
            let order = match &order {
                Some(p) => host.key_order(&db, p)?,
                None => sop::KeyOrder::Bytewise,
            };
            if let Some(v) = &validator {
                host.check_validator(&db, v)?;
            }
            let options = StoreOptions {
                order,
                validator,
                slot_length,
                unique: !duplicates,
                value_placement: match value_placement {
                    Placement::Node => ValuePlacement::InNode,
                    Placement::Blob => ValuePlacement::Blob,
                },
                ..StoreOptions::default()
            };
            db.transact(|tx| tx.create_store(&store, options.clone()).map(|_| ()))?;
            println!("created store {store:?}");
        }
        StoreCmd::List { dir } => {
            let db = conn.open(&dir, false)?;
            let tx = db.begin_read()?;
            for m in tx.store_metas() {
                println!("{}\t{} items", m.name, m.count);
            }
        }
        StoreCmd::Remove { dir, store } => {
            let db = conn.open(&dir, false)?;
            db.transact(|tx| tx.remove_store(&store))?;
            println!("removed store {store:?}");
        }
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct GetArgs {
    dir: PathBuf,
    store: String,
    key: String,
}

pub fn get(a: GetArgs, conn: &Conn) -> Result<()> {
    let db = conn.open(&a.dir, false)?;
    let tx = db.begin_read()?;
    match tx.open_store(&a.store)?.get(&parse_bytes(&a.key)?)? {
        Some(v) => println!("{}", show_bytes(&v)),
        None => bail!("key {} is not in store {:?}", a.key, a.store),
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct PutArgs {
    dir: PathBuf,
    store: String,
    key: String,
    value: String,
}

pub fn put(a: PutArgs, conn: &Conn) -> Result<()> {
    let db = conn.open(&a.dir, true)?;
    let (k, v) = (parse_bytes(&a.key)?, parse_bytes(&a.value)?);
    db.transact(|tx| tx.open_or_create_store(&a.store, StoreOptions::default())?.upsert(&k, &v))?;
    Ok(())
}

#[derive(clap::Args)]
pub struct DelArgs {
    dir: PathBuf,
    store: String,
    key: String,
}

pub fn del(a: DelArgs, conn: &Conn) -> Result<()> {
    let db = conn.open(&a.dir, false)?;
    let k = parse_bytes(&a.key)?;
    if !db.transact(|tx| tx.open_store(&a.store)?.remove(&k))? {
        bail!("key {} is not in store {:?}", a.key, a.store);
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct ScanArgs {
    dir: PathBuf,
    store: String,
    /// First key (inclusive).
    #[arg(long)]
    from: Option<String>,
    /// Last key (exclusive).
    #[arg(long)]
    to: Option<String>,
    /// Descending order.
    #[arg(long)]
    reverse: bool,
    /// At most this many items.
    #[arg(long)]
    limit: Option<usize>,
}

pub fn scan(a: ScanArgs, conn: &Conn) -> Result<()> {
    use std::ops::Bound;
    let db = conn.open(&a.dir, false)?;
    let tx = db.begin_read()?;
    let s = tx.open_store(&a.store)?;
    let lo = a.from.as_deref().map(parse_bytes).transpose()?.map_or(Bound::Unbounded, Bound::Included);
    let hi = a.to.as_deref().map(parse_bytes).transpose()?.map_or(Bound::Unbounded, Bound::Excluded);
    let it = if a.reverse { s.range_rev::<Vec<u8>>((lo, hi))? } else { s.range::<Vec<u8>>((lo, hi))? };
    for r in it.take(a.limit.unwrap_or(usize::MAX)) {
        let (k, v) = r?;
        println!("{}\t{}", show_bytes(&k), show_bytes(&v));
    }
    Ok(())
}
