#!/usr/bin/env bash
# Footprint of the Vigil agent beside Prometheus' node_exporter on the same machine.
#
# Runs a release collector and a release agent (10 s interval) over mutual TLS on 127.0.0.1,
# and node_exporter on 127.0.0.1 scraped every 10 s by a curl loop (the way Prometheus would),
# for DURATION seconds (default 150). Then prints, for the agent and node_exporter:
#   - resident memory at the end (VmRSS) and its peak (VmHWM), from /proc/PID/status;
#   - CPU seconds per hour: utime+stime of the process and of its finished children
#     (the agent's systemctl runs) from /proc/PID/stat over the measured window (after a
#     15 s warm-up), scaled to an hour;
#   - bytes on the wire per report: the TCP payload (TLS records, both directions) of the
#     agent's connection, from `ss -ti` bytes_acked/bytes_received, divided by the reports
#     stored in the window; for node_exporter, the bytes curl downloads per scrape (gzip, as
#     Prometheus asks for it, once per interval; the plain size from one scrape after).
# The collector's numbers are printed too, for context.
#
# Usage: scripts/bench_footprint.sh [DURATION_SECONDS]
#        AGENT_BIN=/path/to/vigil-agent scripts/bench_footprint.sh   # measure another agent build
#        VIGIL_BIN_DIR=target/release scripts/bench_footprint.sh     # binaries already built
# Needs: cargo, curl, ss (iproute2), and apt-get to install prometheus-node-exporter if it
# is missing (the package's service is stopped and disabled again: the script runs the
# binary itself).
set -euo pipefail

DURATION=${1:-150}
WARMUP=15
INTERVAL=10
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d -t vigil-bench.XXXXXX)
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

NODE_EXPORTER=$(command -v prometheus-node-exporter || true)
if [[ -z "$NODE_EXPORTER" ]]; then
    echo "installing prometheus-node-exporter" >&2
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y prometheus-node-exporter
    # The package may start its own service; this benchmark runs the binary itself.
    if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus-node-exporter 2>/dev/null; then
        systemctl stop prometheus-node-exporter || true
        systemctl disable prometheus-node-exporter || true
    fi
    NODE_EXPORTER=$(command -v prometheus-node-exporter)
fi

if [[ -z "${VIGIL_BIN_DIR:-}" ]]; then
    echo "building release binaries (the agent as shipped: profile 'agent')" >&2
    (cd "$ROOT" && cargo build --release --locked -p vigil-collector >&2)
    if [[ -z "${AGENT_BIN:-}" ]]; then
        (cd "$ROOT" && cargo build --profile agent --locked -p vigil-agent >&2)
        AGENT_BIN=$ROOT/target/agent/vigil-agent
    fi
fi
BIN=${VIGIL_BIN_DIR:-$ROOT/target/release}
AGENT_BIN=${AGENT_BIN:-$BIN/vigil-agent}

GRPC_PORT=$(free_port)
NODE_PORT=$(free_port)

# Certificates and configs from the demo, then the real `serve` and `run` on them.
"$BIN/vigil-collector" demo --data "$WORK/vigil" --duration 1s --grpc "127.0.0.1:$GRPC_PORT" \
    >"$WORK/demo.out" 2>"$WORK/demo.err"
sed -i "s/^interval = .*/interval = \"${INTERVAL}s\"/" "$WORK/vigil/agent.toml"

VIGIL_LOG=warn "$BIN/vigil-collector" serve --config "$WORK/vigil/collector.toml" 2>"$WORK/collector.err" &
COLLECTOR_PID=$!
PIDS+=("$COLLECTOR_PID")
sleep 1
VIGIL_LOG=warn "$AGENT_BIN" run --config "$WORK/vigil/agent.toml" 2>"$WORK/agent.err" &
AGENT_PID=$!
PIDS+=("$AGENT_PID")
"$NODE_EXPORTER" --web.listen-address="127.0.0.1:$NODE_PORT" 2>"$WORK/node_exporter.err" &
NODE_PID=$!
PIDS+=("$NODE_PID")

# Prometheus' way: one scrape every 10 s, gzip accepted. The plain size is taken once after
# the window, so that the peer is not scraped more often than Prometheus would.
(
    while true; do
        curl -s -o /dev/null -H 'Accept-Encoding: gzip' -w '%{size_download}\n' \
            "http://127.0.0.1:$NODE_PORT/metrics" >>"$WORK/scrape_gzip_bytes" || true
        sleep "$INTERVAL"
    done
) &
SCRAPER_PID=$!
PIDS+=("$SCRAPER_PID")

# utime + stime, and the same of children waited for (the agent's `systemctl` and `smartctl`
# runs count as the agent's).
cpu_ticks() { awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat"; }
status_kb() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"; }
# TCP payload bytes of the agent's connection to the collector: sent (acked) + received.
agent_wire_bytes() {
    ss -tinH state established "( dport = :$GRPC_PORT )" 2>/dev/null |
        grep -o 'bytes_\(acked\|received\):[0-9]*' | awk -F: '{ sum += $2 } END { print sum + 0 }'
}
reports_stored() {
    "$BIN/vigil-collector" query --data "$WORK/vigil" 'vigil_agent_spool_dropped_batches_total' \
        --since 1h --format json 2>/dev/null |
        python3 -c 'import json, sys; print(sum(len(s["values"]) for s in json.load(sys.stdin)))' 2>/dev/null || echo 0
}

sleep "$WARMUP"
for pid in "$AGENT_PID" "$NODE_PID" "$COLLECTOR_PID"; do
    kill -0 "$pid" 2>/dev/null || { echo "a process died during warm-up; see $WORK" >&2; cat "$WORK"/*.err >&2; exit 1; }
done
T0=$(date +%s.%N)
AGENT_CPU0=$(cpu_ticks "$AGENT_PID")
NODE_CPU0=$(cpu_ticks "$NODE_PID")
COLLECTOR_CPU0=$(cpu_ticks "$COLLECTOR_PID")
WIRE0=$(agent_wire_bytes)
SCRAPES0=$(wc -l <"$WORK/scrape_gzip_bytes")

echo "measuring for ${DURATION}s" >&2
sleep "$DURATION"

T1=$(date +%s.%N)
AGENT_CPU1=$(cpu_ticks "$AGENT_PID")
NODE_CPU1=$(cpu_ticks "$NODE_PID")
COLLECTOR_CPU1=$(cpu_ticks "$COLLECTOR_PID")
WIRE1=$(agent_wire_bytes)
SCRAPES1=$(wc -l <"$WORK/scrape_gzip_bytes")
kill "$SCRAPER_PID" 2>/dev/null || true
curl -s -o /dev/null -w '%{size_download}\n' "http://127.0.0.1:$NODE_PORT/metrics" >"$WORK/scrape_plain_bytes"
declare -A RSS HWM
for name in agent node collector; do
    case $name in
        agent) pid=$AGENT_PID ;;
        node) pid=$NODE_PID ;;
        collector) pid=$COLLECTOR_PID ;;
    esac
    RSS[$name]=$(status_kb "$pid" VmRSS)
    HWM[$name]=$(status_kb "$pid" VmHWM)
done
AGENT_THREADS=$(status_kb "$AGENT_PID" Threads)
NODE_THREADS=$(status_kb "$NODE_PID" Threads)

# Reports stored during the window: ticks on the 10 s grid between T0 and T1. The store is
# only read after the agent stops, so count the grid points instead and check against it.
kill "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null || true
kill "$COLLECTOR_PID"
wait "$COLLECTOR_PID" 2>/dev/null || true
REPORTS_TOTAL=$(reports_stored)
REPORTS_WINDOW=$(python3 -c "import math; print(math.floor($T1 / $INTERVAL) - math.floor($T0 / $INTERVAL))")

CLK_TCK=$(getconf CLK_TCK)
python3 - "$CLK_TCK" "$T0" "$T1" \
    "$AGENT_CPU0" "$AGENT_CPU1" "$NODE_CPU0" "$NODE_CPU1" "$COLLECTOR_CPU0" "$COLLECTOR_CPU1" \
    "${RSS[agent]}" "${HWM[agent]}" "${RSS[node]}" "${HWM[node]}" "${RSS[collector]}" "${HWM[collector]}" \
    "$WIRE0" "$WIRE1" "$REPORTS_WINDOW" "$REPORTS_TOTAL" \
    "$WORK/scrape_gzip_bytes" "$WORK/scrape_plain_bytes" "$SCRAPES0" "$SCRAPES1" \
    "$AGENT_THREADS" "$NODE_THREADS" "$("$NODE_EXPORTER" --version 2>&1 | head -1)" <<'EOF'
import sys
a = sys.argv[1:]
tck = float(a[0]); t0, t1 = float(a[1]), float(a[2]); window = t1 - t0
def per_hour(c0, c1): return (int(c1) - int(c0)) / tck / window * 3600
agent_cpu = per_hour(a[3], a[4]); node_cpu = per_hour(a[5], a[6]); coll_cpu = per_hour(a[7], a[8])
mb = lambda kb: int(kb) / 1024
agent_rss, agent_hwm, node_rss, node_hwm, coll_rss, coll_hwm = map(mb, a[9:15])
wire = int(a[16]) - int(a[15]); reports = int(a[17]); total_reports = a[18]
def mean_of(path, skip):
    values = [int(v) for v in open(path).read().split()][int(skip):]
    return sum(values) / len(values) if values else float("nan")
gzip_bytes = mean_of(a[19], a[21]); plain_bytes = mean_of(a[20], 0)
print(f"window: {window:.0f} s, agent reports in it: {reports} (stored in all: {total_reports}), "
      f"scrapes in it: {int(a[22]) - int(a[21])}; threads: agent {a[23]}, node_exporter {a[24]}; {a[25]}")
print()
print("| | vigil-agent (10 s) | node_exporter (scraped every 10 s) | agent / node_exporter |")
print("|---|---:|---:|---:|")
print(f"| RSS at end (VmRSS) | {agent_rss:.1f} MiB | {node_rss:.1f} MiB | {agent_rss / node_rss:.2f} |")
print(f"| peak RSS (VmHWM) | {agent_hwm:.1f} MiB | {node_hwm:.1f} MiB | {agent_hwm / node_hwm:.2f} |")
print(f"| CPU per hour (utime+stime) | {agent_cpu:.1f} s | {node_cpu:.1f} s | {agent_cpu / node_cpu:.2f} |" if node_cpu > 0 else
      f"| CPU per hour (utime+stime) | {agent_cpu:.1f} s | {node_cpu:.1f} s | – |")
per_report = wire / reports if reports else float("nan")
print(f"| bytes on the wire per report | {per_report:.0f} B (TLS, both directions) | {gzip_bytes:.0f} B gzip / {plain_bytes:.0f} B plain (HTTP body) | {per_report / gzip_bytes:.2f} (vs gzip) |")
print()
print(f"collector (for context): RSS {coll_rss:.1f} MiB, peak {coll_hwm:.1f} MiB, CPU {coll_cpu:.1f} s/h")
EOF
