#!/usr/bin/env python3
"""SOP-Go (the reference implementation of SOP) on the `sop bench` workload.

Drives SOP's Go engine through the `sop4py` wheel (pip install sop4py==2.3.3; the Python
module is `sop`) in standalone mode: no Redis, in-process caches and locks, one process.
Runs the same phases as `sop bench` and prints one JSON object on stdout:

    {"insert": ops/s, "read": ..., "scan": ..., "update": ..., "delete": ..., "commit1": ...,
     "peak_rss_mb": MiB}

Progress and errors go to stderr. `sop bench --with-sop-go` runs this script; it also runs
on its own: python3 bench/sop_go.py --n 10000 --dir /tmp/x

Differences from the Rust engines, forced by the binding:
* Keys and values cross the FFI as JSON strings, so keys are 16-character hex strings
  (8 random bytes) and values are value-size hex characters: same sizes, not same bytes.
* Every call is one ctypes call with a JSON payload; the API favours lists, so each batch is
  one call (`add`, `update`, `remove` of a list), reads call `get_values` with `--batch`
  keys at a time (all in one read transaction), and the scan pages 1,000 items per call.
* SOP-Go never calls fsync: its commits are not durable, unlike every other engine's.
* SlotLength is 1000 (`new_btree`'s default and SOP's README setting), values in the node.
"""

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time

STORE = "bench"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def peak_rss_mb():
    """Peak resident memory of this process (VmHWM), in MiB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_data(n, value_size, seed):
    rng = random.Random(seed)
    keys, seen = [], set()
    while len(keys) < n:
        k = "%016x" % rng.getrandbits(64)
        if k not in seen:
            seen.add(k)
            keys.append(k)
    return keys, new_values(n, value_size, rng)


def new_values(n, value_size, rng):
    chars = (value_size + 1) // 2
    return [rng.randbytes(chars).hex()[:value_size] for _ in range(n)]


def chunks(seq, size):
    for i in range(0, len(seq), size):
        yield seq[i:i + size]


class SopGo:
    """One SOP-Go database (a stores folder) with one unique B-tree."""

    def __init__(self, sop, folder, slot_length):
        from sop.transaction import DatabaseType

        self.sop = sop
        os.makedirs(folder, exist_ok=True)
        self.ctx = sop.Context()
        self.db = sop.Database(sop.DatabaseOptions(stores_folders=[folder], type=DatabaseType.Standalone))
        t = self.begin(write=True)
        opts = sop.BtreeOptions(is_unique=True, slot_length=slot_length, is_value_data_in_node_segment=True)
        self.db.new_btree(self.ctx, STORE, t, opts)
        t.commit(self.ctx)

    def begin(self, write):
        mode = self.sop.TransactionMode.ForWriting if write else self.sop.TransactionMode.ForReading
        return self.db.begin_transaction(self.ctx, mode=mode.value)

    def write(self, what, items):
        """One transaction: `what` (add/update/remove) of a list, which must fully succeed."""
        t = self.begin(write=True)
        st = self.db.open_btree(self.ctx, STORE, t)
        ok = getattr(st, what)(self.ctx, items)
        if not ok:
            t.rollback(self.ctx)
            raise RuntimeError(f"SOP-Go {what} of {len(items)} items did not succeed for every item")
        t.commit(self.ctx)

    def read(self, keys, expect, batch):
        """One read transaction: every key, `batch` per call, each value checked."""
        Item = self.sop.Item
        t = self.begin(write=False)
        st = self.db.open_btree(self.ctx, STORE, t)
        for ks in chunks(keys, batch):
            got = st.get_values(self.ctx, [Item(key=k) for k in ks]) or []
            if len(got) != len(ks):
                raise RuntimeError(f"SOP-Go get_values returned {len(got)} items for {len(ks)} keys")
            for k, it in zip(ks, got):
                if it.value != expect[k]:
                    raise RuntimeError(f"SOP-Go read a wrong or missing value for key {k}")
        t.commit(self.ctx)

    def scan(self, value_size):
        """One read transaction: every item in key order; returns the count.

        `get_items` pages from the cursor; after the last item it wraps around to the first
        one (a page that ends exactly at the last item is followed by the first page again),
        so pages are sized by the store's item count and a page that starts at or below the
        previous key ends the scan. The caller compares the count with what it wrote, so a
        wrong metadata count or a missing item still fails.
        """
        t = self.begin(write=False)
        st = self.db.open_btree(self.ctx, STORE, t)
        count, prev = 0, None
        total = st.count()
        if total > 0 and st.first(self.ctx):
            while count < total:
                page = st.get_items(self.ctx, self.sop.PagingInfo(page_size=min(1000, total - count)))
                if not page or (prev is not None and page[0].key <= prev):
                    break
                for it in page:
                    if prev is not None and it.key <= prev:
                        raise RuntimeError("SOP-Go scan returned keys out of order")
                    if len(it.value) != value_size:
                        raise RuntimeError("SOP-Go scan returned a value of the wrong size")
                    prev = it.key
                    count += 1
        t.commit(self.ctx)
        return count


def timed(label, count, fn):
    t = time.perf_counter()
    fn()
    rate = count / max(time.perf_counter() - t, 1e-9)
    log(f"  sop_go {label}: {rate:,.0f}/s")
    return rate


def run(a):
    try:
        import sop
        from sop import Logger, LogLevel
    except ImportError as e:
        raise SystemExit(f"error: cannot import the sop4py wheel ({e}); install it with pip install sop4py==2.3.3")
    Logger.configure(LogLevel.Warn)  # the Go side logs INFO lines to stderr by default
    Item = sop.Item

    keys, values = make_data(a.n, a.value_size, 1)
    value_of = dict(zip(keys, values))
    main = SopGo(sop, os.path.join(a.dir, "main"), a.slot_length)
    ops = {}

    ops["insert"] = timed("insert", a.n, lambda: [
        main.write("add", [Item(key=k, value=value_of[k]) for k in ks]) for ks in chunks(keys, a.batch)
    ])

    order = keys[:]
    random.Random(2).shuffle(order)
    ops["read"] = timed("read", a.n, lambda: main.read(order, value_of, a.batch))

    result = {}
    ops["scan"] = timed("scan", a.n, lambda: result.__setitem__("count", main.scan(a.value_size)))
    if result["count"] != a.n:
        raise RuntimeError(f"SOP-Go scan found {result['count']} items, expected {a.n}")

    value_of = dict(zip(keys, new_values(a.n, a.value_size, random.Random(3))))
    order = keys[:]
    random.Random(3).shuffle(order)
    ops["update"] = timed("update", a.n, lambda: [
        main.write("update", [Item(key=k, value=value_of[k]) for k in ks]) for ks in chunks(order, a.batch)
    ])
    order = keys[:]
    random.Random(5).shuffle(order)
    main.read(order, value_of, a.batch)  # untimed: every update took

    order = keys[:]
    random.Random(4).shuffle(order)
    ops["delete"] = timed("delete", a.n, lambda: [main.write("remove", ks) for ks in chunks(order, a.batch)])
    left = main.scan(a.value_size)
    if left != 0:
        raise RuntimeError(f"SOP-Go has {left} items left after deleting every key")

    single = SopGo(sop, os.path.join(a.dir, "single"), a.slot_length)
    ops["commit1"] = timed("commit1", a.single, lambda: [
        single.write("add", [Item(key=k, value=value_of[k])]) for k in keys[:a.single]
    ])
    count = single.scan(a.value_size)
    if count != a.single:
        raise RuntimeError(f"SOP-Go single commits left {count} items, expected {a.single}")

    ops["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return {k: (round(v, 1) if isinstance(v, float) else v) for k, v in ops.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=100_000, help="number of keys")
    p.add_argument("--batch", type=int, default=1_000, help="items per commit (and per read call)")
    p.add_argument("--single", type=int, default=2_000, help="single-item commits in a fresh database")
    p.add_argument("--value-size", type=int, default=100, help="value size in bytes")
    p.add_argument("--dir", help="database folder (default: a temporary folder)")
    p.add_argument("--slot-length", type=int, default=1000, help="SOP-Go SlotLength (default 1000)")
    a = p.parse_args()
    if a.n < 1 or a.batch < 1 or a.single < 1 or a.single > a.n or a.value_size < 0:
        p.error("--n, --batch and --single must be at least 1, --single at most --n")
    tmp = None
    if a.dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="sop-go-bench-")
        a.dir = tmp.name
    try:
        out = run(a)
    except Exception as e:  # one clear line, not a traceback
        print(f"error: SOP-Go benchmark failed: {e}", file=sys.stderr)
        return 1
    finally:
        if tmp is not None:
            tmp.cleanup()
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
