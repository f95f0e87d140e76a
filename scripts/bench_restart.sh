#!/bin/sh
# Restart time of the collector's store after a full write-ahead log, before and after a
# change (docs/BENCHMARKS.md, "Restart after a full write-ahead log").
#
#   scripts/bench_restart.sh                       # BEFORE=d9ea104, 200 hosts, as documented
#   BEFORE=<commit> HOSTS=1000 WORK=/var/tmp/r scripts/bench_restart.sh
#
# Builds collector/examples/restart_bench.rs (this checkout's copy, which uses only API every
# version has) at BEFORE in a temporary git worktree and at this checkout, into one target
# folder, then for each: fills a store with HOSTS hosts x SERIES series every 10 s for HOURS
# hours with no checkpoint, and times the restart after a crash (the whole log replayed),
# the clean stop and the restart after it; and the same for one dense series (DENSE samples
# 1 ms apart in batches of 5,000). Prints a Markdown table.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
BEFORE=${BEFORE:-d9ea104}
HOSTS=${HOSTS:-200}
SERIES=${SERIES:-100}
HOURS=${HOURS:-2}
DENSE=${DENSE:-200000}
WORK=${WORK:-/var/tmp/vigil-bench-restart}
mkdir -p "$WORK"
target="$WORK/target"

echo "building restart_bench at $BEFORE and at this checkout" >&2
# BEFORE_TREE: an existing checkout of BEFORE to build in (else a worktree under WORK).
before_tree=${BEFORE_TREE:-$WORK/before-tree}
[ -d "$before_tree" ] || git -C "$here" worktree add --detach "$before_tree" "$BEFORE" >&2
cp "$here/collector/examples/restart_bench.rs" "$before_tree/collector/examples/"
(cd "$before_tree" && CARGO_TARGET_DIR="$target" cargo build --release -q -p vigil-collector --example restart_bench)
cp "$target/release/examples/restart_bench" "$WORK/restart_bench_before"
(cd "$here" && CARGO_TARGET_DIR="$target" cargo build --release -q -p vigil-collector --example restart_bench)
cp "$target/release/examples/restart_bench" "$WORK/restart_bench_after"

value() { grep "^$1: " "$2" | head -1 | cut -d' ' -f2-; }

# run VERSION NAME STOP ARGS...: writes a store, stops it as STOP says, reopens it.
run() {
  version=$1 name=$2 stop=$3
  shift 3
  dir="$WORK/store-$version-$name-$stop"
  rm -rf "$dir"
  echo "$version: $name, $stop stop" >&2
  "$WORK/restart_bench_$version" write --dir "$dir" --stop "$stop" "$@" >"$WORK/$version-$name-$stop-write.txt"
  "$WORK/restart_bench_$version" open --dir "$dir" >"$WORK/$version-$name-$stop-open.txt"
  rm -rf "$dir"
}

fleet="--hosts $HOSTS --series $SERIES --hours $HOURS"
dense="--hosts 1 --series 1 --tick-ms 1 --ticks $DENSE --per-batch 5000"
for version in before after; do
  run "$version" fleet crash $fleet
  run "$version" fleet clean $fleet
  run "$version" dense crash $dense
  run "$version" dense clean $dense
done

f() { value "$2" "$WORK/$1.txt"; }
mib() { echo "$1" | awk '{printf "%.1f MiB", $1 / 1048576}'; }
cat <<EOF
Fleet: $HOSTS hosts x $SERIES series every 10 s for $HOURS h: $(f after-fleet-crash-write samples) samples, log $(mib "$(f after-fleet-crash-write wal_bytes)"). Dense: one series, $DENSE samples 1 ms apart in batches of 5,000, log $(mib "$(f after-dense-crash-write wal_bytes)").

| | before ($BEFORE) | after |
|---|---|---|
| fleet: restart after a crash (whole log replayed) | $(f before-fleet-crash-open open_seconds) s | $(f after-fleet-crash-open open_seconds) s |
| fleet: clean stop | $(f before-fleet-clean-write stop_seconds) s, log left $(mib "$(f before-fleet-clean-write wal_bytes_after_stop)") | $(f after-fleet-clean-write stop_seconds) s, log left $(mib "$(f after-fleet-clean-write wal_bytes_after_stop)") |
| fleet: restart after a clean stop | $(f before-fleet-clean-open open_seconds) s | $(f after-fleet-clean-open open_seconds) s |
| dense: restart after a crash | $(f before-dense-crash-open open_seconds) s | $(f after-dense-crash-open open_seconds) s |
| dense: restart after a clean stop | $(f before-dense-clean-open open_seconds) s | $(f after-dense-clean-open open_seconds) s |
EOF
