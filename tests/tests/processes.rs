//! Several OS processes share one database folder with no coordinator but the file system:
//! exclusive publication of commit files is the fence, so concurrent commits from different
//! processes merge or conflict exactly as threads do.

use std::process::{Command, Output};

fn worker(dir: &std::path::Path, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_sop-worker"))
        .arg(dir)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn worker")
}

fn check(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "worker failed: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn processes_merge_into_a_brand_new_store_without_seeding() {
    let dir = tempfile::tempdir().unwrap();
    let (k, n) = (4u64, 300u64);
    let kids: Vec<_> =
        (0..k).map(|id| worker(dir.path(), &["insert", &id.to_string(), &n.to_string(), "5", "8"])).collect();
    let mut merges = 0;
    for c in kids {
        let line = check(c.wait_with_output().unwrap());
        merges += line.split_whitespace().nth(3).and_then(|m| m.parse::<u64>().ok()).unwrap_or(0);
    }
    let db = sop::Database::open(dir.path()).unwrap();
    let tx = db.begin_read().unwrap();
    let s = tx.open_store("s").unwrap();
    assert_eq!(s.count().unwrap(), k * n);
    for id in 0..k {
        for j in 0..n {
            let v = s.get(&(id * 1_000_000 + j).to_be_bytes()).unwrap();
            assert_eq!(v.as_deref(), Some(&j.to_le_bytes()[..]), "worker {id} key {j}");
        }
    }
    assert!(db.verify().unwrap().is_ok());
    eprintln!("{} commits merged in flight across processes", merges);
}

#[test]
fn processes_increment_one_counter_without_losing_any() {
    let dir = tempfile::tempdir().unwrap();
    let (k, n) = (4u64, 50u64);
    let kids: Vec<_> = (0..k).map(|_| worker(dir.path(), &["incr", &n.to_string()])).collect();
    for c in kids {
        check(c.wait_with_output().unwrap());
    }
    let db = sop::Database::open(dir.path()).unwrap();
    let v = db.begin_read().unwrap().open_store("s").unwrap().get(b"c").unwrap().unwrap();
    assert_eq!(u64::from_le_bytes(v[..8].try_into().unwrap()), k * n);
}
