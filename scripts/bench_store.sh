#!/bin/sh
# Storage benchmark: Vigil's store against Prometheus' TSDB on the same generated files, at
# every size in SIZES, in one run; and the same measurements of the store at BEFORE (an
# earlier commit, built in a git worktree) for comparison of import and ingest CPU time.
#
#   scripts/bench_store.sh                   # SIZES="20x12 50x24" (hosts x hours), as in docs/BENCHMARKS.md
#   SIZES=100x24 BEFORE= WORK=/var/tmp/bench scripts/bench_store.sh   # one size, no "before"
#   FLEET_HOSTS=1000 scripts/bench_store.sh  # also the fleet memory run (off by default)
#
# Needs python3, promtool (Debian: apt-get install prometheus) and a Rust toolchain. Writes
# the generated files, the stores and the raw figures under $WORK, and prints Markdown
# tables for docs/BENCHMARKS.md. CPU seconds (user + system of the import and of the
# ingest, from /proc) are the figures to compare on a shared machine; wall times vary with
# the load. The fleet run (FLEET_HOSTS agents for FLEET_HOURS simulated hours through the
# write-ahead log) measures resident memory for the README.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
SIZES=${SIZES:-20x12 50x24}
BEFORE=${BEFORE-3c57429}
WORK=${WORK:-/tmp/vigil-bench-store}
GENERATOR=${GENERATOR:-$here/../shared/tools/gen_openmetrics.py}
[ -f "$GENERATOR" ] || GENERATOR=$here/../../shared/tools/gen_openmetrics.py   # from a worktree under /work/wt
FLEET_HOSTS=${FLEET_HOSTS:-0}
FLEET_HOURS=${FLEET_HOURS:-3}
target=${CARGO_TARGET_DIR:-$here/target}
# BEFORE gets a target folder of its own: cargo takes the two checkouts' vigil-collector for
# the same unit, so in one folder each build can leave the other's binary in place.
before_target=${BEFORE_TARGET:-$WORK/target-before}
mkdir -p "$WORK"

echo "building the benchmark" >&2
if [ -n "$BEFORE" ]; then
    # BEFORE_TREE: an existing checkout of BEFORE to build in (else a worktree under WORK).
    # This checkout's store_bench.rs is built there: it uses only API both versions have.
    before_tree=${BEFORE_TREE:-$WORK/before-tree}
    [ -d "$before_tree" ] || git -C "$here" worktree add --detach "$before_tree" "$BEFORE" >&2
    cp "$here/collector/examples/store_bench.rs" "$before_tree/collector/examples/"
    (cd "$before_tree" && CARGO_TARGET_DIR="$before_target" cargo build --release -q -p vigil-collector --example store_bench)
    cp "$before_target/release/examples/store_bench" "$WORK/store_bench_before"
fi
(cd "$here" && CARGO_TARGET_DIR="$target" cargo build --release -q -p vigil-collector --example store_bench)
cp "$target/release/examples/store_bench" "$WORK/store_bench_after"
prom_version=$(promtool --version 2>&1 | head -1)

value() { grep "^$1: " "$2" | head -1 | cut -d' ' -f2-; }
ratio() { echo "$1 $2" | awk '{printf "%.2f", $1 / $2}'; }
mib() { echo "$1" | awk '{printf "%.0f MiB", $1 / 1048576}'; }

for size in $SIZES; do
    hosts=${size%x*}
    hours=${size#*x}
    om="$WORK/metrics-${hosts}h-${hours}h.om"
    if [ ! -s "$om" ]; then
        echo "generating $om" >&2
        python3 "$GENERATOR" --hosts "$hosts" --hours "$hours" --out "$om" >&2
    fi
    echo "$size: promtool tsdb create-blocks-from openmetrics" >&2
    rm -rf "$WORK/prometheus"
    prom_start=$(date +%s.%N)
    /usr/bin/time -f "%U %S" -o "$WORK/promtool-$size.time" \
        promtool tsdb create-blocks-from openmetrics "$om" "$WORK/prometheus" >"$WORK/promtool-$size.log" 2>&1
    prom_end=$(date +%s.%N)
    prom_bytes=$(du -sb "$WORK/prometheus" | cut -f1)
    rm -rf "$WORK/prometheus"
    prom_cpu=$(awk '{printf "%.1f", $1 + $2}' "$WORK/promtool-$size.time")

    for version in after before; do
        [ "$version" = after ] || [ -n "$BEFORE" ] || continue
        echo "$size: vigil ($version): import, query, ingest" >&2
        "$WORK/store_bench_$version" file --om "$om" --work "$WORK/run" >"$WORK/vigil-$size-$version.txt"
        rm -rf "$WORK/run"
    done

    f="$WORK/vigil-$size-after.txt"
    samples=$(value samples "$f")
    prom_seconds=$(echo "$prom_end $prom_start" | awk '{printf "%.1f", $1 - $2}')
    prom_bps=$(echo "$prom_bytes $samples" | awk '{printf "%.3f", $1 / $2}')
    vigil_bps=$(value import_bytes_per_sample "$f")
    if [ -n "$BEFORE" ]; then
        b="$WORK/vigil-$size-before.txt"
        before_col=" $BEFORE |"
        before_head="|---|---|---|---|"
        before_bytes=" $(value import_bytes_on_disk "$b") |"
        before_bps=" $(value import_bytes_per_sample "$b") ($(ratio "$(value import_bytes_per_sample "$b")" "$prom_bps")×) |"
        before_import=" $(value import_seconds "$b") s wall, $(value import_cpu_seconds "$b") s CPU |"
        before_ingest=" $(value ingest_samples_per_second "$b"), $(value ingest_cpu_seconds "$b") s CPU |"
        before_live=" $(value ingest_bytes_per_sample "$b") |"
        before_raw=" $(value query_30d_raw_ms "$b") ms |"
        before_rollup=" $(value query_30d_rollup_ms "$b") ms |"
    else
        before_col="" before_head="|---|---|---|" before_bytes="" before_bps="" before_import=""
        before_ingest="" before_live="" before_raw="" before_rollup=""
    fi
    cat <<EOF

File: $(basename "$om"), $samples samples, $(value series "$f") series ($hosts hosts, $hours h at 10 s). $prom_version.

| | Prometheus (promtool) |$before_col Vigil |
$before_head
| bytes on disk | $prom_bytes |$before_bytes $(value import_bytes_on_disk "$f") |
| bytes per sample | $prom_bps |$before_bps $vigil_bps ($(ratio "$vigil_bps" "$prom_bps")×) |
| import | $prom_seconds s wall, $prom_cpu s CPU |$before_import $(value import_seconds "$f") s wall, $(value import_cpu_seconds "$f") s CPU |
| ingest samples/s through the WAL ($(value ingest_writers "$f") writers, each batch acknowledged) | – |$before_ingest $(value ingest_samples_per_second "$f"), $(value ingest_cpu_seconds "$f") s CPU |
| bytes per sample after live ingest and a final checkpoint | – |$before_live $(value ingest_bytes_per_sample "$f") |
| 30-day single-series query, raw ($(value query_raw_samples "$f") samples) | – |$before_raw $(value query_30d_raw_ms "$f") ms |
| 30-day single-series query, rollups ($(value query_30d_rollup_points "$f") points) | – |$before_rollup $(value query_30d_rollup_ms "$f") ms |

Vigil's bytes by kind: chunk files $(value import_chunk_file_bytes "$f") ($(value import_chunk_bytes_per_sample "$f") B/sample, $(value import_n_chunks "$f") chunks), chunk locations $(value import_chunk_index_bytes "$f"), rollups (files and locations) $(value import_rollup_bytes "$f"), series index (keys and values) $(value import_index_bytes "$f"); sled's files $(value import_sled_bytes "$f") in all (the series index and sled's own overhead), the log $(value import_wal_bytes "$f"). Peak RSS of the import: $(mib "$(value import_peak_rss_bytes "$f")").
EOF
done

if [ "$FLEET_HOSTS" -gt 0 ]; then
    echo "vigil: fleet of $FLEET_HOSTS hosts for $FLEET_HOURS h" >&2
    g="$WORK/vigil-fleet.txt"
    "$WORK/store_bench_after" fleet --hosts "$FLEET_HOSTS" --hours "$FLEET_HOURS" --work "$WORK/run" >"$g"
    rm -rf "$WORK/run"
    cat <<EOF

Fleet: $(value fleet_hosts "$g") hosts × ~60 series every 10 s for $(value fleet_simulated_hours "$g") simulated hours, $(value fleet_samples_per_second "$g") samples/s; resident memory at the end $(mib "$(value fleet_rss_end_bytes "$g")"), peak $(mib "$(value fleet_rss_peak_bytes "$g")"); head at the end $(mib "$(value fleet_head_bytes_end "$g")"), peak $(mib "$(value fleet_peak_head_bytes "$g")").
EOF
fi
