//! `sop bench swarm --simulate N,…`: a discrete-event model of the swarm's commit path, to
//! predict where aggregate throughput stops growing with the number of processes
//! (`docs/SCALING.md` explains the model and its calibration).
//!
//! Writers (processes × threads) each prepare a transaction (CPU), then wait for a commit.
//! One commit at a time holds the lease: it takes every transaction waiting anywhere (its own
//! process's queue plus up to 64 offered batches), validates and merges them (CPU on the
//! publisher), and publishes one file (the medium's durable-publication latency). Processes
//! that offered a batch learn the verdict by polling (a Redis round trip and two metadata
//! reads per poll). CPU is shared per host; the coordinator and the medium's metadata
//! operations are queues whose latency grows with their load.

use serde::Serialize;

/// Calibration of the model.
#[derive(Clone, Debug, Serialize)]
pub struct Calib {
    /// Durable publication of one commit file (sync of its data, then of its name), seconds.
    pub publish_s: f64,
    /// Coordinator (Redis) round trip, seconds.
    pub rtt_s: f64,
    /// CPU to run one transaction at its writer (reads, building the write set), seconds.
    pub txn_cpu_s: f64,
    /// CPU the publisher spends per transaction (read its batch, validate, merge, encode).
    pub merge_cpu_s: f64,
    /// Fixed CPU and I/O per commit file (catch-up of the previous one, listing, install).
    pub commit_fixed_s: f64,
    /// Writer threads per process.
    pub threads: usize,
    /// Processes per host (each host has its own cores).
    pub procs_per_host: usize,
    /// Cores per host.
    pub cores: f64,
    /// Coordinator operations per second it can serve.
    pub redis_ops_per_s: f64,
    /// Metadata operations (stat, list) per second the shared medium can serve.
    pub meta_ops_per_s: f64,
}

/// Prediction for one process count.
#[derive(Debug, Serialize)]
pub struct Prediction {
    pub procs: usize,
    pub commits_per_s: f64,
    /// Transactions per commit file.
    pub group: f64,
    /// What limits the rate most at this size.
    pub bound: &'static str,
}

/// Offered batches one commit takes in (as `contribute.rs`).
const BATCHES_PER_COMMIT: f64 = 64.0;
/// Contributor poll interval (as `contribute.rs`).
const POLL_S: f64 = 0.0002;

/// Predicts the aggregate commit rate of `procs` processes.
pub fn predict(c: &Calib, procs: usize) -> Prediction {
    let writers = (procs * c.threads) as f64;
    let hosts = (procs as f64 / c.procs_per_host as f64).ceil().max(1.0);
    // Fixed point on the rate: contention (CPU, coordinator, metadata) depends on it.
    let mut x = 1.0 / (c.publish_s + c.commit_fixed_s + c.txn_cpu_s);
    let mut bound = "flush";
    let mut last_group = 1.0;
    for _ in 0..200 {
        // Waiting processes poll: one coordinator call and two metadata reads per poll.
        let pollers = (procs as f64 - 1.0).max(0.0);
        let redis_load = (pollers / (POLL_S + c.rtt_s) + 2.0 * x) / c.redis_ops_per_s;
        let meta_load = (2.0 * pollers / (POLL_S + c.rtt_s) + 4.0 * x) / c.meta_ops_per_s;
        let rtt = c.rtt_s / (1.0 - redis_load.min(0.99));
        let meta_wait = 1.0 / c.meta_ops_per_s / (1.0 - meta_load.min(0.99));
        // CPU: every transaction costs txn_cpu at its writer and merge_cpu at a publisher.
        let cpu_load = x * (c.txn_cpu_s + c.merge_cpu_s) / (hosts * c.cores);
        let slow = 1.0 / (1.0 - cpu_load.min(0.95));
        // A commit cycle takes in every writer that is waiting (closed system): with cycle
        // time C and preparation time Z, a group holds about N·C/(C+Z) transactions.
        let prep = c.txn_cpu_s * slow + POLL_S / 2.0 + rtt + meta_wait;
        let cap = BATCHES_PER_COMMIT * c.threads as f64 + c.threads as f64;
        let mut group = 1.0f64;
        let mut cycle = 0.0;
        for _ in 0..100 {
            cycle = 2.0 * rtt + c.publish_s + c.commit_fixed_s * slow + 2.0 * meta_wait + c.merge_cpu_s * slow * group;
            group = (writers * cycle / (cycle + prep)).clamp(1.0, cap.min(writers));
        }
        last_group = group;
        let next = group / cycle;
        let new_x = 0.5 * x + 0.5 * next;
        bound = if cpu_load > 0.9 {
            "CPU"
        } else if redis_load > 0.8 {
            "coordinator"
        } else if meta_load > 0.8 {
            "metadata"
        } else if group >= cap - 0.5 {
            "batches per commit"
        } else if c.merge_cpu_s * group > c.publish_s {
            "publisher CPU"
        } else {
            "flush"
        };
        if (new_x - x).abs() < 1e-6 * x {
            break;
        }
        x = new_x;
    }
    Prediction { procs, commits_per_s: x, group: last_group, bound }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calib() -> Calib {
        Calib {
            publish_s: 0.0015,
            rtt_s: 0.0001,
            txn_cpu_s: 0.0002,
            merge_cpu_s: 0.00005,
            commit_fixed_s: 0.0003,
            threads: 2,
            procs_per_host: 4,
            cores: 2.0,
            redis_ops_per_s: 100_000.0,
            meta_ops_per_s: 200_000.0,
        }
    }

    #[test]
    fn more_processes_give_more_until_something_saturates() {
        let c = calib();
        let r: Vec<f64> = [1, 2, 4, 10, 100, 1000].iter().map(|&p| predict(&c, p).commits_per_s).collect();
        assert!(r[1] > r[0] && r[2] > r[1], "{r:?}");
        // Past saturation it must not keep growing linearly.
        assert!(r[5] < r[4] * 10.0 * 0.5, "{r:?}");
    }

    #[test]
    fn a_slower_medium_moves_the_knee_out_but_lowers_the_rate() {
        let fast = calib();
        let slow = Calib { publish_s: 0.03, ..calib() };
        assert!(predict(&slow, 1).commits_per_s < predict(&fast, 1).commits_per_s);
        let gain = |c: &Calib| predict(c, 8).commits_per_s / predict(c, 1).commits_per_s;
        assert!(gain(&slow) > gain(&fast));
    }
}
