//! `cache_hit_us`: what a `#[step(cache)]` hit costs against running a trivial step, and the
//! disk an entry takes. Two experiments make the same calls of a trivial step, one cached: the
//! cached one runs twice on one store (the second run is all hits), the plain one once; the
//! difference per call is the price of a hit.

use std::path::Path;
use std::time::{Duration, Instant};

use crystallize::prelude::*;
use crystallize::session::Session;

/// Calls of the step per unit.
pub const CALLS: u64 = 50;

/// The trivial step, cached.
#[step(cache)]
fn tiny_cached(x: u64) -> u64 {
    x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 7
}

/// The same step, not cached.
#[step]
fn tiny_plain(x: u64) -> u64 {
    x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 7
}

#[experiment(replicates = 10, seed = 7, smoke_test = false)]
fn cached_calls(ctx: &mut Ctx) {
    let sum = (0..CALLS).fold(0u64, |sum, i| sum.wrapping_add(tiny_cached(i)));
    ctx.record("sum", sum as f64);
}

#[experiment(replicates = 10, seed = 7, smoke_test = false)]
fn plain_calls(ctx: &mut Ctx) {
    let sum = (0..CALLS).fold(0u64, |sum, i| sum.wrapping_add(tiny_plain(i)));
    ctx.record("sum", sum as f64);
}

fn run(name: &str, store: &Path, replicates: u64) -> (Duration, f64) {
    let started = Instant::now();
    let finished = Session::named(name).store(store).replicates(replicates).jobs(1).run().expect("the bench runs");
    let elapsed = started.elapsed();
    let sum = finished.results.units.iter().filter_map(|u| u.metrics.get("sum")).sum();
    (elapsed, sum)
}

/// Measures and reports `cache_*` values; the best of `repeat` rounds.
pub fn cache_cost(scratch: &Path, replicates: u64, repeat: usize) {
    let calls = replicates * CALLS;
    let (mut plain, mut miss, mut hit) = (Duration::MAX, Duration::MAX, Duration::MAX);
    let mut entry_bytes = 0.0;
    let mut entry_disk = 0.0;
    for _ in 0..repeat {
        let store = scratch.join("cache-store");
        let _ = std::fs::remove_dir_all(&store);
        let (plain_time, plain_sum) = run("plain_calls", &store, replicates);
        let (miss_time, miss_sum) = run("cached_calls", &store, replicates);
        let (hit_time, hit_sum) = run("cached_calls", &store, replicates);
        assert!(plain_sum == miss_sum && miss_sum == hit_sum, "the cache served the values the step computes");
        plain = plain.min(plain_time);
        miss = miss.min(miss_time);
        hit = hit.min(hit_time);
        let (bytes, disk, files) = disk_use(&store.join("cache"));
        assert_eq!(files, calls, "one entry per call");
        entry_bytes = bytes as f64 / files as f64;
        entry_disk = disk as f64 / files as f64;
        let _ = std::fs::remove_dir_all(&store);
    }
    let per_call = |d: Duration| d.as_secs_f64() * 1e6 / calls as f64;
    eprintln!(
        "cache: {calls} calls; plain {:.2} µs/call, miss (compute + store) {:.2}, hit {:.2}",
        per_call(plain),
        per_call(miss),
        per_call(hit)
    );
    println!("cache_calls={calls}");
    println!("cache_plain_us_per_call={:.3}", per_call(plain));
    println!("cache_miss_us={:.3}", per_call(miss) - per_call(plain));
    println!("cache_hit_us={:.3}", per_call(hit) - per_call(plain));
    println!("cache_entry_bytes={entry_bytes:.0}");
    println!("cache_entry_disk_bytes={entry_disk:.0}");
}

/// Bytes of the entry files under `dir`, the disk blocks they take, and how many there are.
fn disk_use(dir: &Path) -> (u64, u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let (mut bytes, mut disk, mut files) = (0, 0, 0);
    for shard in std::fs::read_dir(dir).into_iter().flatten().filter_map(Result::ok) {
        if shard.file_name().len() != 2 {
            continue;
        }
        for entry in std::fs::read_dir(shard.path()).into_iter().flatten().filter_map(Result::ok) {
            if let Ok(meta) = entry.metadata() {
                bytes += meta.len();
                disk += meta.blocks() * 512;
                files += 1;
            }
        }
    }
    (bytes, disk, files)
}
