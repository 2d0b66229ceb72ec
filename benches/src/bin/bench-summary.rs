//! Prints the tables of `BENCHMARKS.md` from criterion's results: the median of every benchmark
//! (criterion's `median.point_estimate` in `target/criterion/*/*/*/new/estimates.json`), the
//! paired runs of the memory and file benches (`target/tmp/kv-benches-*-paired.json`), and the
//! ratios the goals are stated in.
//!
//! `cargo run -p kv-benches --bin bench-summary [-- CRITERION_DIR]`
//! (default: `$CARGO_TARGET_DIR/criterion`, else `target/criterion` of the workspace).

use std::path::{Path, PathBuf};

/// The memory goal: ours at most this many times moka's time per operation.
const MEMORY_GOAL: f64 = 1.5;
/// The file goal: ours at most this much slower than raw redb.
const FILE_GOAL: f64 = 0.20;

struct Results {
    dir: PathBuf,
    missing: Vec<String>,
}

impl Results {
    /// The median in nanoseconds of `group/function/param`, if that benchmark was run.
    fn median(&mut self, group: &str, function: &str, param: &str) -> Option<f64> {
        let path = self
            .dir
            .join(group)
            .join(function)
            .join(param)
            .join("new/estimates.json");
        let parsed = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|json| json["median"]["point_estimate"].as_f64());
        if parsed.is_none() {
            self.missing.push(format!("{group}/{function}/{param}"));
        }
        parsed
    }
}

fn time(ns: Option<f64>) -> String {
    match ns {
        None => "n/a".into(),
        Some(ns) if ns < 1e3 => format!("{ns:.1} ns"),
        Some(ns) if ns < 1e6 => format!("{:.2} µs", ns / 1e3),
        Some(ns) if ns < 1e9 => format!("{:.2} ms", ns / 1e6),
        Some(ns) => format!("{:.2} s", ns / 1e9),
    }
}

fn ratio(ours: Option<f64>, peer: Option<f64>) -> Option<f64> {
    Some(ours? / peer?)
}

fn x(r: Option<f64>) -> String {
    r.map_or("n/a".into(), |r| format!("{r:.2}x"))
}

/// Whether a goal is met, judged on both measures: "yes" or "no" when they agree (or only one
/// exists), "unclear" when they disagree (the machine was too noisy to tell).
fn verdict(criterion: Option<bool>, paired: Option<bool>) -> &'static str {
    match (criterion, paired) {
        (None, None) => "n/a",
        (Some(true), Some(true)) | (Some(true), None) | (None, Some(true)) => "yes",
        (Some(false), Some(false)) | (Some(false), None) | (None, Some(false)) => "**no**",
        _ => "unclear",
    }
}

/// The results of a bench's paired run, written next to the criterion directory
/// (`TARGET/tmp/kv-benches-NAME-paired.json`).
fn paired_results(criterion_dir: &Path, name: &str) -> Option<serde_json::Value> {
    let path = criterion_dir
        .parent()?
        .join("tmp")
        .join(format!("kv-benches-{name}-paired.json"));
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn default_dir() -> PathBuf {
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("target/criterion")
}

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(default_dir);
    let mut r = Results {
        dir,
        missing: Vec::new(),
    };

    let memory_paired = paired_results(&r.dir, "memory");
    println!("### Memory backend vs moka and dashmap (median time per operation)\n");
    println!(
        "Goal: ours ≤ {MEMORY_GOAL}x moka per operation. Two threads: time per operation on each \
         of two threads working on the same map at once. ours/moka (criterion): ratio of the \
         criterion medians; (paired): median of the per-round ratios of the paired run. Goal met: \
         yes / no when both measures agree, unclear when they disagree.\n"
    );
    println!(
        "| op | threads | keys | ours | moka | dashmap | ours/moka (criterion) | \
         ours/moka (paired) | ours/dashmap (paired) | goal met |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for op in ["get", "put"] {
        for threads in ["1t", "2t"] {
            for keys in ["1000", "1000000"] {
                let group = format!("memory-{op}-{threads}");
                let ours = r.median(&group, "ours", keys);
                let moka = r.median(&group, "moka", keys);
                let dash = r.median(&group, "dashmap", keys);
                let paired = memory_paired
                    .as_ref()
                    .map(|p| &p[format!("{group}/{keys}")]["median_ratio_of_first_to"]);
                let p_moka = paired.and_then(|p| p["moka"].as_f64());
                let p_dash = paired.and_then(|p| p["dashmap"].as_f64());
                let vs_moka = ratio(ours, moka);
                println!(
                    "| {op} | {} | {keys} | {} | {} | {} | {} | {} | {} | {} |",
                    &threads[..1],
                    time(ours),
                    time(moka),
                    time(dash),
                    x(vs_moka),
                    x(p_moka),
                    x(p_dash),
                    verdict(
                        vs_moka.map(|v| v <= MEMORY_GOAL),
                        p_moka.map(|v| v <= MEMORY_GOAL)
                    ),
                );
            }
        }
    }
    if memory_paired.is_none() {
        r.missing
            .push("memory paired run (target/tmp/kv-benches-memory-paired.json)".into());
    }

    println!("\n### File backend vs raw redb (10 000 keys, 100-byte values)\n");
    println!(
        "Goal: overhead ≤ {:.0} % over raw redb. Puts are durable (one fsync per put). \
         criterion: medians of separate criterion runs. paired: contenders alternated in short \
         batches; overhead = median of the per-round ratios. Goal met: yes / no when both measures agree, \
         unclear when they disagree.\n",
        FILE_GOAL * 100.0
    );
    let paired = paired_results(&r.dir, "file");
    println!(
        "| op | ours (criterion) | redb (criterion) | overhead (criterion) | ours (paired) | \
         redb (paired) | overhead (paired) | goal met | redb via spawn_blocking (criterion / paired) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |");
    for op in ["get", "put"] {
        let group = format!("file-{op}");
        let ours = r.median(&group, "ours", "10000");
        let raw = r.median(&group, "redb", "10000");
        let p = paired.as_ref().map(|p| &p[op]);
        let p_ns = |name: &str| p.and_then(|p| p["median_ns_per_op"][name].as_f64());
        let p_overhead = p
            .and_then(|p| p["median_ratio_of_first_to"]["redb"].as_f64())
            .map(|v| v - 1.0);
        let blocking = if op == "put" {
            format!(
                "{} / {}",
                time(r.median(&group, "redb-blocking", "10000")),
                time(p_ns("redb-blocking"))
            )
        } else {
            "-".into()
        };
        let overhead = ratio(ours, raw).map(|v| v - 1.0);
        let pct = |o: Option<f64>| o.map_or("n/a".into(), |o| format!("{:+.1} %", o * 100.0));
        println!(
            "| {op} | {} | {} | {} | {} | {} | {} | {} | {blocking} |",
            time(ours),
            time(raw),
            pct(overhead),
            time(p_ns("ours")),
            time(p_ns("redb")),
            pct(p_overhead),
            verdict(
                overhead.map(|o| o <= FILE_GOAL),
                p_overhead.map(|o| o <= FILE_GOAL)
            ),
        );
    }
    if paired.is_none() {
        r.missing
            .push("file paired run (target/tmp/kv-benches-file-paired.json)".into());
    }

    println!("\n### Listing 100 000 keys in pages of 1000 (whole walk, 100 pages; median)\n");
    println!("| backend | whole walk | per page | per key |");
    println!("| --- | ---: | ---: | ---: |");
    for (label, function) in [
        ("memory", "memory"),
        ("file", "file"),
        ("raw redb (reference)", "redb"),
    ] {
        let walk = r.median("list-100k-pages-1000", function, "100000");
        println!(
            "| {label} | {} | {} | {} |",
            time(walk),
            time(walk.map(|w| w / 100.0)),
            time(walk.map(|w| w / 100_000.0)),
        );
    }

    if !r.missing.is_empty() {
        println!("\n(not run yet: {})", r.missing.join(", "));
    }
}
