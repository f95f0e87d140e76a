#!/bin/sh
# Storage benchmark: Vigil's store against Prometheus' TSDB on the same generated file.
#
#   scripts/bench_store.sh                      # 50 hosts, 24 hours, as in docs/BENCHMARKS.md
#   HOSTS=100 HOURS=24 WORK=/var/tmp/bench scripts/bench_store.sh
#
# Needs python3, promtool (Debian: apt-get install prometheus) and a Rust toolchain. Writes
# the generated file, both stores and the raw figures under $WORK, and prints a Markdown
# table for docs/BENCHMARKS.md. The fleet run (FLEET_HOSTS agents for FLEET_HOURS simulated
# hours through the write-ahead log) measures resident memory for the README.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
HOSTS=${HOSTS:-50}
HOURS=${HOURS:-24}
WORK=${WORK:-/tmp/vigil-bench-store}
GENERATOR=${GENERATOR:-$here/../shared/tools/gen_openmetrics.py}
FLEET_HOSTS=${FLEET_HOSTS:-1000}
FLEET_HOURS=${FLEET_HOURS:-3}
mkdir -p "$WORK"
om="$WORK/metrics-${HOSTS}h-${HOURS}h.om"

if [ ! -s "$om" ]; then
    echo "generating $om" >&2
    python3 "$GENERATOR" --hosts "$HOSTS" --hours "$HOURS" --out "$om" >&2
fi

echo "building the benchmark" >&2
(cd "$here" && cargo build --release -q -p vigil-collector --example store_bench)
bench="$here/target/release/examples/store_bench"
if [ -n "${CARGO_TARGET_DIR:-}" ]; then bench="$CARGO_TARGET_DIR/release/examples/store_bench"; fi

echo "promtool tsdb create-blocks-from openmetrics" >&2
rm -rf "$WORK/prometheus"
prom_start=$(date +%s.%N)
promtool tsdb create-blocks-from openmetrics "$om" "$WORK/prometheus" > "$WORK/promtool.log" 2>&1
prom_end=$(date +%s.%N)
prom_bytes=$(du -sb "$WORK/prometheus" | cut -f1)
prom_version=$(promtool --version 2>&1 | head -1)

echo "vigil: import, query, ingest" >&2
"$bench" file --om "$om" --work "$WORK" > "$WORK/vigil-file.txt"
echo "vigil: fleet of $FLEET_HOSTS hosts for $FLEET_HOURS h" >&2
"$bench" fleet --hosts "$FLEET_HOSTS" --hours "$FLEET_HOURS" --work "$WORK" > "$WORK/vigil-fleet.txt"

value() { grep "^$1: " "$2" | head -1 | cut -d' ' -f2-; }
f="$WORK/vigil-file.txt"
g="$WORK/vigil-fleet.txt"
samples=$(value samples "$f")
prom_seconds=$(echo "$prom_end $prom_start" | awk '{printf "%.1f", $1 - $2}')
prom_rate=$(echo "$samples $prom_seconds" | awk '{printf "%.0f", $1 / $2}')
prom_bps=$(echo "$prom_bytes $samples" | awk '{printf "%.3f", $1 / $2}')
vigil_bps=$(value import_bytes_per_sample "$f")
ratio=$(echo "$vigil_bps $prom_bps" | awk '{printf "%.2f", $1 / $2}')
mib() { echo "$1" | awk '{printf "%.0f MiB", $1 / 1048576}'; }

cat <<EOF
File: $(basename "$om"), $samples samples, $(value series "$f") series ($HOSTS hosts, $HOURS h at 10 s). $prom_version.

| | Prometheus (promtool) | Vigil |
|---|---|---|
| bytes on disk | $prom_bytes | $(value import_bytes_on_disk "$f") |
| bytes per sample | $prom_bps | $vigil_bps ($ratio×) |
| import time | $prom_seconds s | $(value import_seconds "$f") s |
| import samples/s | $prom_rate | $(value import_samples_per_second "$f") |
| ingest samples/s through the WAL ($(value ingest_writers "$f") writers, one batch per tick, each acknowledged) | – | $(value ingest_samples_per_second "$f") ($(value ingest_batches_per_second "$f") batches/s) |
| bytes per sample after live ingest and a final checkpoint | – | $(value ingest_bytes_per_sample "$f") |
| 30-day single-series query, raw ($(value query_raw_samples "$f") samples) | – | $(value query_30d_raw_ms "$f") ms |
| 30-day single-series query, rollups ($(value query_30d_rollup_points "$f") points) | – | $(value query_30d_rollup_ms "$f") ms |

Vigil's bytes on disk, by kind: chunks $(value import_chunk_bytes "$f") ($(value import_chunk_bytes_per_sample "$f") B/sample), rollups $(value import_rollup_bytes "$f"), series index $(value import_index_bytes "$f"); the rest is sled's own. Peak RSS of the import: $(mib "$(value import_peak_rss_bytes "$f")").

Fleet: $(value fleet_hosts "$g") hosts × ~60 series every 10 s for $(value fleet_simulated_hours "$g") simulated hours, $(value fleet_samples_per_second "$g") samples/s; resident memory at the end $(mib "$(value fleet_rss_end_bytes "$g")"), peak $(mib "$(value fleet_rss_peak_bytes "$g")"); head at the end $(mib "$(value fleet_head_bytes_end "$g")"), peak $(mib "$(value fleet_peak_head_bytes "$g")").
EOF
