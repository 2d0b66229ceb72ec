//! Recording answers and latencies, and the report: Markdown for people, JSON for tests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::targets::Outcome;

#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    by_op: BTreeMap<&'static str, u64>,
    unexpected: u64,
    samples: Vec<String>,
}

/// Every target's answers since the last reset.
#[derive(Clone)]
pub struct Recorder {
    names: Arc<Vec<&'static str>>,
    tallies: Arc<Vec<Mutex<Tally>>>,
}

/// One target's side of a [`Recorder`].
#[derive(Clone)]
pub struct TargetRecorder {
    recorder: Recorder,
    index: usize,
}

impl TargetRecorder {
    /// Records one answer.
    pub fn record(&self, outcome: Outcome, latency: Duration) {
        let mut tally = self.recorder.tally(self.index);
        tally.latencies.push(latency);
        *tally.by_op.entry(outcome.op).or_default() += 1;
        if let Some(problem) = outcome.unexpected {
            tally.unexpected += 1;
            if tally.samples.len() < 10 {
                tally.samples.push(problem);
            }
        }
    }
}

impl Recorder {
    /// A recorder for targets with these names.
    pub fn new(names: &[&'static str]) -> Recorder {
        Recorder {
            names: Arc::new(names.to_vec()),
            tallies: Arc::new(names.iter().map(|_| Mutex::default()).collect()),
        }
    }

    fn tally(&self, index: usize) -> std::sync::MutexGuard<'_, Tally> {
        self.tallies[index]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The recorder of target `index`.
    pub fn target(&self, index: usize) -> TargetRecorder {
        TargetRecorder {
            recorder: self.clone(),
            index,
        }
    }

    /// Forgets the warm-up.
    pub fn reset(&self) {
        for index in 0..self.names.len() {
            *self.tally(index) = Tally::default();
        }
    }
}

struct TargetReport {
    name: &'static str,
    requests: u64,
    per_second: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
    by_op: BTreeMap<&'static str, u64>,
    unexpected: u64,
    samples: Vec<String>,
    rss_first: Option<u64>,
    rss_last: Option<u64>,
}

/// The outcome of a run.
pub struct Report {
    seconds: f64,
    window: f64,
    targets: Vec<TargetReport>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The mean of the samples taken in `[from, to)` seconds.
fn mean_rss(samples: &[(f64, Option<u64>)], from: f64, to: f64) -> Option<u64> {
    let values: Vec<u64> = samples
        .iter()
        .filter(|(t, _)| *t >= from && *t < to)
        .filter_map(|(_, rss)| *rss)
        .collect();
    (!values.is_empty()).then(|| values.iter().sum::<u64>() / values.len() as u64)
}

impl Report {
    /// Summarises `recorder` over `elapsed`, with memory samples `(seconds, kv-server RSS,
    /// demo RSS)` compared between the first and the last `window` seconds.
    pub fn new(
        recorder: &Recorder,
        elapsed: Duration,
        memory: &[(f64, Option<u64>, Option<u64>)],
        window: f64,
    ) -> Report {
        let seconds = elapsed.as_secs_f64();
        let targets = recorder
            .names
            .iter()
            .enumerate()
            .map(|(index, &name)| {
                let mut tally = recorder.tally(index);
                tally.latencies.sort_unstable();
                let samples: Vec<(f64, Option<u64>)> = memory
                    .iter()
                    .map(|(t, kv, demo)| (*t, if index == 0 { *kv } else { *demo }))
                    .collect();
                TargetReport {
                    name,
                    requests: tally.latencies.len() as u64,
                    per_second: tally.latencies.len() as f64 / seconds,
                    p50: percentile(&tally.latencies, 0.50),
                    p99: percentile(&tally.latencies, 0.99),
                    max: tally.latencies.last().copied().unwrap_or_default(),
                    by_op: tally.by_op.clone(),
                    unexpected: tally.unexpected,
                    samples: tally.samples.clone(),
                    rss_first: mean_rss(&samples, 0.0, window),
                    rss_last: mean_rss(&samples, seconds - window, f64::MAX),
                }
            })
            .collect();
        Report {
            seconds,
            window,
            targets,
        }
    }

    /// A Markdown table.
    pub fn markdown(&self) -> String {
        let mib =
            |b: Option<u64>| b.map_or("-".to_owned(), |b| format!("{:.1}", b as f64 / 1048576.0));
        let mut out = format!(
            "\n{:.0} s measured; memory: mean RSS of the first and last {:.0} s\n\n\
             | target | requests | req/s | p50 ms | p99 ms | max ms | unexpected | RSS first MiB | RSS last MiB |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
            self.seconds, self.window
        );
        for t in &self.targets {
            out.push_str(&format!(
                "| {} | {} | {:.0} | {:.2} | {:.2} | {:.1} | {} | {} | {} |\n",
                t.name,
                t.requests,
                t.per_second,
                t.p50.as_secs_f64() * 1e3,
                t.p99.as_secs_f64() * 1e3,
                t.max.as_secs_f64() * 1e3,
                t.unexpected,
                mib(t.rss_first),
                mib(t.rss_last),
            ));
        }
        for t in &self.targets {
            let ops: Vec<String> = t.by_op.iter().map(|(op, n)| format!("{op} {n}")).collect();
            out.push_str(&format!("\n{}: {}", t.name, ops.join(", ")));
            for sample in &t.samples {
                out.push_str(&format!("\n  unexpected: {sample}"));
            }
        }
        out
    }

    /// The same figures as JSON.
    pub fn json(&self) -> Value {
        let targets: Vec<Value> = self
            .targets
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "requests": t.requests,
                    "per_second": t.per_second,
                    "p50_ms": t.p50.as_secs_f64() * 1e3,
                    "p99_ms": t.p99.as_secs_f64() * 1e3,
                    "max_ms": t.max.as_secs_f64() * 1e3,
                    "by_op": t.by_op,
                    "unexpected": t.unexpected,
                    "unexpected_samples": t.samples,
                    "rss_first_bytes": t.rss_first,
                    "rss_last_bytes": t.rss_last,
                })
            })
            .collect();
        json!({"seconds": self.seconds, "window_seconds": self.window, "targets": targets})
    }

    /// What failed the run: unexpected answers, memory growth, a target that got no load.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for t in &self.targets {
            if t.requests == 0 {
                problems.push(format!("{}: no requests completed", t.name));
            }
            if t.unexpected > 0 {
                problems.push(format!("{}: {} unexpected answers", t.name, t.unexpected));
            }
            match (t.rss_first, t.rss_last) {
                (Some(first), Some(last)) => {
                    let allowed = first + first / 4 + 8 * 1024 * 1024;
                    if last > allowed {
                        problems.push(format!(
                            "{}: memory grew from {first} to {last} bytes",
                            t.name
                        ));
                    }
                }
                _ => problems.push(format!("{}: no memory samples", t.name)),
            }
        }
        problems
    }
}
