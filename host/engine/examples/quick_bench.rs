//! A quick single-process measurement: `cargo run --release -p sop --example quick_bench [N] [SLOT]`.
//! The full comparison with peers is `sop bench`.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::time::Instant;

fn main() -> sop::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let slot: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(64);
    // Repeats of the read phase, to profile the read path.
    let rounds: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sop::Database::create(dir.path())?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut keys: Vec<[u8; 16]> = (0..n).map(|_| rng.random()).collect();
    let val = [7u8; 100];
    db.transact(|tx| tx.create_store("b", sop::StoreOptions { slot_length: slot, ..Default::default() }).map(|_| ()))?;
    let t = Instant::now();
    for chunk in keys.chunks(1000) {
        let tx = db.begin_write()?;
        let s = tx.open_store("b")?;
        for k in chunk {
            s.upsert(k, &val)?;
        }
        tx.commit()?;
    }
    let ins = n as f64 / t.elapsed().as_secs_f64();
    keys.shuffle(&mut rng);
    let t = Instant::now();
    for _ in 0..rounds {
        let tx = db.begin_read()?;
        let s = tx.open_store("b")?;
        for k in &keys {
            assert!(s.get(k)?.is_some());
        }
    }
    let read = (n * rounds) as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    {
        let tx = db.begin_read()?;
        let c = tx.open_store("b")?.iter()?.count();
        assert_eq!(c, n);
    }
    let scan = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for chunk in keys.chunks(1000) {
        let tx = db.begin_write()?;
        let s = tx.open_store("b")?;
        for k in chunk {
            s.remove(k)?;
        }
        tx.commit()?;
    }
    let del = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let single = 2000;
    for i in 0..single {
        let tx = db.begin_write()?;
        tx.open_store("b")?.upsert(&(i as u64).to_be_bytes(), &val)?;
        tx.commit()?;
    }
    let c1 = single as f64 / t.elapsed().as_secs_f64();
    println!(
        "n={n} slot={slot}: insert {ins:.0}/s read {read:.0}/s scan {scan:.0}/s delete {del:.0}/s commit1 {c1:.0}/s"
    );
    println!("{:?}", db.stats());
    Ok(())
}
