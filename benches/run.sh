#!/usr/bin/env bash
# Runs every benchmark of kv-benches once, then prints the summary tables of BENCHMARKS.md
# (medians from target/criterion, the paired file-backend run, the ratios against the peers)
# and the memory-per-entry table. Takes about 6 minutes on 2 cores.
#
#   benches/run.sh                      # everything
#   benches/run.sh memory list          # only these (memory, file, list, per-entry), then the
#                                       # summary of whatever target/criterion holds
#
# The smoke run CI makes (every criterion bench once, small setups, the benches' assertions):
#   cargo test -p kv-benches --bench '*'
#
# Everything is built first, then the built executables are run, so a source tree that changes
# during the run (or stops compiling) does not mix builds. Longer measurements for a final
# table: KV_BENCH_WARMUP_SECS, KV_BENCH_MEASURE_SECS and KV_BENCH_SAMPLES override every
# bench's criterion settings; KV_BENCH_PAIRED_ROUNDS the paired file run (default 40).
set -euo pipefail
cd "$(dirname "$0")/.."

what=("$@")
if [ ${#what[@]} -eq 0 ]; then
  what=(memory file list per-entry)
fi

echo "== build"
json=$(cargo bench -p kv-benches --bench memory --bench file --bench list --no-run \
  --message-format=json-render-diagnostics)
json+=$'\n'$(cargo build --release -p kv-benches --bin bench-summary --example memory-per-entry \
  --message-format=json-render-diagnostics)
# The executable cargo just built for target `$1` (a bench, bin or example).
exe() {
  printf '%s\n' "$json" | grep -o "\"executable\":\"[^\"]*/$1\(-[0-9a-f]*\)\?\"" | tail -n 1 |
    cut -d'"' -f4
}

echo "== machine"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "cpus: $(nproc); $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //')"
echo "memory: $(free -h 2>/dev/null | awk '/^Mem:/ {print $2}')"
echo "rustc: $(rustc --version)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime)"

per_entry=0
for bench in "${what[@]}"; do
  case "$bench" in
    memory | file | list)
      echo "== bench $bench"
      "$(exe "$bench")" --bench
      ;;
    per-entry) per_entry=1 ;;
    *) echo "unknown benchmark: $bench (memory, file, list, per-entry)" >&2; exit 2 ;;
  esac
done

echo
echo "== summary (medians from target/criterion)"
"$(exe bench-summary)"

if [ "$per_entry" -eq 1 ]; then
  echo
  echo "== memory per entry"
  "$(exe memory-per-entry)"
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime)"
