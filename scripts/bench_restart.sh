#!/bin/sh
# Restart time of the collector's store after a full write-ahead log, before and after a
# change (docs/BENCHMARKS.md, "Restart after a full write-ahead log").
#
#   scripts/bench_restart.sh                       # BEFORE=d9ea104, 200 hosts, as documented
#   BEFORE=<commit> HOSTS=1000 WORK=/var/tmp/r scripts/bench_restart.sh
#
# Builds collector/examples/restart_bench.rs (this checkout's copy, which uses only API every
# version has) at BEFORE, in a git worktree, and at this checkout, into one target folder.
# Writes two logs once, as a crash leaves them (no checkpoint ran): a fleet (HOSTS hosts x
# SERIES series every 10 s for HOURS hours, one batch per host and tick) and one dense
# series (DENSE samples 1 ms apart, batches of 5,000). Then each version, on its own copy of
# the same log: opens it (the whole log replayed), and opens it, stops cleanly and opens it
# again. Wall seconds and CPU seconds (user + system, /usr/bin/time) of each open and stop;
# the CPU figure is the one to compare on a shared machine. Prints a Markdown table.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
BEFORE=${BEFORE:-d9ea104}
HOSTS=${HOSTS:-200}
SERIES=${SERIES:-100}
HOURS=${HOURS:-2}
DENSE=${DENSE:-200000}
WORK=${WORK:-/var/tmp/vigil-bench-restart}
mkdir -p "$WORK"
# One target folder per version: in a shared one, cargo can take the two checkouts'
# identical package for one unit and leave the other's binary in place.
target_before="$WORK/target-before"
target_after="$WORK/target-after"

echo "building restart_bench at $BEFORE and at this checkout" >&2
# BEFORE_TREE: an existing checkout of BEFORE to build in (else a worktree under WORK).
before_tree=${BEFORE_TREE:-$WORK/before-tree}
[ -d "$before_tree" ] || git -C "$here" worktree add --detach "$before_tree" "$BEFORE" >&2
cp "$here/collector/examples/restart_bench.rs" "$before_tree/collector/examples/"
(cd "$before_tree" && CARGO_TARGET_DIR="$target_before" cargo build --release -q -p vigil-collector --example restart_bench)
cp "$target_before/release/examples/restart_bench" "$WORK/restart_bench_before"
(cd "$here" && CARGO_TARGET_DIR="$target_after" cargo build --release -q -p vigil-collector --example restart_bench)
cp "$target_after/release/examples/restart_bench" "$WORK/restart_bench_after"

value() { grep "^$1: " "$2" | head -1 | cut -d' ' -f2-; }

# timed OUT COMMAND...: the command's output, then "cpu_seconds: user+system".
timed() {
  out=$1
  shift
  /usr/bin/time -f "cpu_seconds: %U %S" -o "$out.time" "$@" >"$out"
  awk '{printf "cpu_seconds: %.1f\n", $2 + $3}' "$out.time" >>"$out"
}

for case in fleet dense; do
  seed="$WORK/seed-$case"
  if [ ! -d "$seed" ]; then
    echo "writing the $case log" >&2
    if [ "$case" = fleet ]; then
      set -- --hosts "$HOSTS" --series "$SERIES" --hours "$HOURS"
    else
      set -- --hosts 1 --series 1 --tick-ms 1 --ticks "$DENSE" --per-batch 5000
    fi
    # Written aside and renamed when complete: a run stopped half-way leaves no seed behind
    # that a later run would take for a whole one.
    rm -rf "$seed.partial"
    "$WORK/restart_bench_after" write --dir "$seed.partial" --stop crash "$@" >"$WORK/$case-write.txt"
    mv "$seed.partial" "$seed"
  fi
  for version in before after; do
    echo "$version: $case" >&2
    copy="$WORK/copy"
    rm -rf "$copy" && cp -a "$seed" "$copy"
    timed "$WORK/$version-$case-crash.txt" "$WORK/restart_bench_$version" open --dir "$copy"
    rm -rf "$copy" && cp -a "$seed" "$copy"
    timed "$WORK/$version-$case-stop.txt" "$WORK/restart_bench_$version" stop --dir "$copy"
    timed "$WORK/$version-$case-restart.txt" "$WORK/restart_bench_$version" open --dir "$copy"
    rm -rf "$copy"
  done
done

f() { value "$2" "$WORK/$1.txt"; }
mib() { echo "$1" | awk '{printf "%.1f MiB", $1 / 1048576}'; }
t() { echo "$(f "$1" "$2") s ($(f "$1" cpu_seconds) s CPU)"; }
cat <<TABLE
Fleet: $HOSTS hosts x $SERIES series every 10 s for $HOURS h, $(f fleet-write samples) samples, log $(mib "$(f fleet-write wal_bytes)"). Dense: one series, $DENSE samples 1 ms apart in batches of 5,000, log $(mib "$(f dense-write wal_bytes)"). Seconds are wall time, CPU in brackets.

| | before ($BEFORE) | after |
|---|---|---|
| fleet: restart after a crash (whole log replayed) | $(t before-fleet-crash open_seconds) | $(t after-fleet-crash open_seconds) |
| fleet: clean stop (wall time of the stop alone) | $(f before-fleet-stop stop_seconds) s, log left $(mib "$(f before-fleet-stop wal_bytes_after_stop)") | $(f after-fleet-stop stop_seconds) s, log left $(mib "$(f after-fleet-stop wal_bytes_after_stop)") |
| fleet: restart after a clean stop | $(t before-fleet-restart open_seconds) | $(t after-fleet-restart open_seconds) |
| dense: restart after a crash | $(t before-dense-crash open_seconds) | $(t after-dense-crash open_seconds) |
| dense: restart after a clean stop | $(t before-dense-restart open_seconds) | $(t after-dense-restart open_seconds) |
TABLE
