#!/usr/bin/env bash
# The same fleet against Vigil's collector, Prometheus and VictoriaMetrics, one after the other.
#
# Starts a throwaway release collector (`ca init`, a collector.toml, `serve`) on 127.0.0.1,
# runs vigil-loadgen against it with AGENTS agents of SERIES series every INTERVAL for
# DURATION, stops it; then does the same against Prometheus (remote-write receiver) and
# VictoriaMetrics with the identical samples as remote-write 1.0. Each receiver gets its own
# empty data folder and is measured the same way: CPU seconds (utime+stime from /proc), peak
# resident memory (VmRSS sampled every second), and the growth of its data folder (allocated
# blocks). Prints one table per million acknowledged samples, and keeps the JSON reports.
#
# Usage: scripts/bench_fleet.sh [AGENTS] [DURATION]          # default 1000 agents, 300s
#        TARGETS="vigil prometheus" scripts/bench_fleet.sh    # a subset of vigil prometheus victoriametrics
#        SERIES=100 INTERVAL=10s DRAIN=60s LOADGEN_THREADS=1 scripts/bench_fleet.sh 10000 600
#        BACKLOG=1h scripts/bench_fleet.sh 1000 300          # each agent first replays an hour
#        VIGIL_BIN_DIR=target/release scripts/bench_fleet.sh  # binaries already built
#        OUT=/tmp/fleet-reports scripts/bench_fleet.sh        # where the JSON reports go
# The CA and the agents' certificates are kept in CA_DIR (default ~/.cache/vigil-bench-fleet)
# so that a second run does not issue 10,000 certificates again.
# Needs: cargo, curl, python3, and apt-get for prometheus and victoria-metrics if missing
# (their packaged services are stopped: the script runs the binaries itself).
set -euo pipefail

AGENTS=${1:-1000}
DURATION=${2:-300}
SERIES=${SERIES:-100}
INTERVAL=${INTERVAL:-10s}
DRAIN=${DRAIN:-60s}
LOADGEN_THREADS=${LOADGEN_THREADS:-1}
BACKLOG=${BACKLOG:-0s}
TARGETS=${TARGETS:-vigil prometheus victoriametrics}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CA_DIR=${CA_DIR:-${HOME:-/root}/.cache/vigil-bench-fleet}
WORK=$(mktemp -d -t vigil-bench-fleet.XXXXXX)
OUT=${OUT:-$WORK/reports}
mkdir -p "$OUT"
PIDS=()
# One socket per agent on each side, plus the stores' files.
ulimit -n "$(( AGENTS * 2 + 4096 ))" 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    # Reports stay when OUT is outside the work folder.
    rm -rf "$WORK/vigil" "$WORK/prometheus" "$WORK/victoriametrics"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_ready() { # URL: the receiver answers within 60 s
    for _ in $(seq 1 120); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.5
    done
    echo "no answer from $1 within 60 s; see the logs in $WORK" >&2
    return 1
}

stop_pid() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

install_peer() { # PACKAGE BINARY
    if ! command -v "$2" >/dev/null; then
        echo "installing $1" >&2
        apt-get update >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y "$1" >&2
    fi
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$1" 2>/dev/null; then
        systemctl stop "$1" || true
        systemctl disable "$1" || true
    fi
}

if [[ -z "${VIGIL_BIN_DIR:-}" ]]; then
    echo "building release binaries" >&2
    (cd "$ROOT" && cargo build --release --locked -p vigil-collector -p vigil-loadgen >&2)
fi
BIN=${VIGIL_BIN_DIR:-$ROOT/target/release}
[[ " $TARGETS " == *" prometheus "* ]] && install_peer prometheus prometheus
[[ " $TARGETS " == *" victoriametrics "* ]] && install_peer victoria-metrics victoria-metrics

if [[ ! -f "$CA_DIR/ca.pem" ]]; then
    "$BIN/vigil-collector" ca init --dir "$CA_DIR" --name "Vigil fleet benchmark CA" \
        --server-name 127.0.0.1 --server-name localhost >&2
fi

LOADGEN_ARGS=(--agents "$AGENTS" --series "$SERIES" --interval "$INTERVAL"
    --duration "${DURATION}s" --drain "$DRAIN" --threads "$LOADGEN_THREADS" --backlog "$BACKLOG")
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr); load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2

run_vigil() {
    local port dir pid
    port=$(free_port)
    dir=$WORK/vigil
    mkdir -p "$dir"
    cat >"$dir/collector.toml" <<EOF
data_dir = "$dir/data"
[grpc]
listen = "127.0.0.1:$port"
cert = "$CA_DIR/collector.pem"
key = "$CA_DIR/collector-key.pem"
client_ca = "$CA_DIR/ca.pem"
EOF
    VIGIL_LOG=warn "$BIN/vigil-collector" serve --config "$dir/collector.toml" 2>"$WORK/vigil.err" &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1 120); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.5
    done
    echo "== vigil: collector pid $pid on 127.0.0.1:$port" >&2
    "$BIN/vigil-loadgen" --ca-dir "$CA_DIR" --collector "https://127.0.0.1:$port" \
        --collector-pid "$pid" --data-dir "$dir/data" --report "$OUT/vigil.json" \
        "${LOADGEN_ARGS[@]}" >&2
    stop_pid "$pid"
}

run_prometheus() {
    local port dir pid
    port=$(free_port)
    dir=$WORK/prometheus
    mkdir -p "$dir/data"
    printf 'global:\n  scrape_interval: 10s\n' >"$dir/prometheus.yml"
    prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
        --web.listen-address="127.0.0.1:$port" --web.enable-remote-write-receiver \
        2>"$WORK/prometheus.err" &
    pid=$!
    PIDS+=("$pid")
    wait_ready "http://127.0.0.1:$port/-/ready"
    echo "== prometheus $(prometheus --version 2>&1 | head -1 | cut -d' ' -f3): pid $pid on 127.0.0.1:$port" >&2
    "$BIN/vigil-loadgen" --target prometheus-remote-write "http://127.0.0.1:$port/api/v1/write" \
        --collector-pid "$pid" --data-dir "$dir/data" --report "$OUT/prometheus.json" \
        "${LOADGEN_ARGS[@]}" >&2
    stop_pid "$pid"
}

run_victoriametrics() {
    local port dir pid
    port=$(free_port)
    dir=$WORK/victoriametrics
    mkdir -p "$dir/data"
    victoria-metrics -storageDataPath="$dir/data" -httpListenAddr="127.0.0.1:$port" \
        -retentionPeriod=100y 2>"$WORK/victoriametrics.err" &
    pid=$!
    PIDS+=("$pid")
    wait_ready "http://127.0.0.1:$port/health"
    echo "== victoriametrics $(dpkg-query -W -f '${Version}' victoria-metrics 2>/dev/null): pid $pid on 127.0.0.1:$port" >&2
    "$BIN/vigil-loadgen" --target prometheus-remote-write "http://127.0.0.1:$port/api/v1/write" \
        --collector-pid "$pid" --data-dir "$dir/data" --report "$OUT/victoriametrics.json" \
        "${LOADGEN_ARGS[@]}" >&2
    stop_pid "$pid"
}

for target in $TARGETS; do
    "run_$target"
done

python3 - "$OUT" $TARGETS <<'EOF'
import json, os, sys
out, targets = sys.argv[1], sys.argv[2:]
rows = []
for name in targets:
    path = os.path.join(out, f"{name}.json")
    if os.path.exists(path):
        rows.append((name, json.load(open(path))))
if not rows:
    sys.exit("no reports")
first = rows[0][1]
print(f"{first['agents']} agents x {first['series_per_agent']} series every {first['interval_seconds']:g} s "
      f"for {first['duration_seconds']:g} s; reports in {out}")
print()
print("| receiver | acked samples | rejected | unacked batches | CPU s / 1M samples | peak RSS | disk bytes / 1M samples | ack p50 / p99 / max (ms) | after warm-up p50 / p99 (ms) | loadgen CPU s |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for name, r in rows:
    c = r.get("collector") or {}
    lat = r["ack_latency_ms"]
    warm = r.get("ack_latency_after_warmup_ms", lat)
    cpu = c.get("cpu_seconds_per_million_samples")
    disk = c.get("disk_bytes_per_million_samples")
    rss = c.get("peak_rss_bytes")
    print(f"| {name} | {r['acked_samples']:,} | {r['rejected_samples']:,} | {r['unacknowledged_batches']:,} "
          f"| {cpu:.2f} | {rss / 1048576:.0f} MiB | {disk:,.0f} | {lat['p50']:.1f} / {lat['p99']:.1f} / {lat['max']:.0f} "
          f"| {warm['p50']:.1f} / {warm['p99']:.1f} | {r['loadgen']['cpu_seconds']:.1f} |" if cpu is not None and disk is not None and rss else f"| {name} | {r['acked_samples']:,} | – | – | – | – | – | – | – | – |")
print()
for name, r in rows:
    c = r.get("collector") or {}
    print(f"{name}: {c.get('cpu_seconds', 0):.1f} CPU s over {r['elapsed_seconds']:.0f} s "
          f"({c.get('cpu_seconds', 0) / max(r['elapsed_seconds'], 1e-9):.2f} cores), "
          f"{r['acked_samples_per_second']:,.0f} samples/s, disk growth {c.get('disk_growth_bytes', 0):,} B, "
          f"reconnects {r['reconnects']}")
EOF
