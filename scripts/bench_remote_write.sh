#!/usr/bin/env bash
# Remote-write export: how many samples per second a collector sends to VictoriaMetrics, and
# the collector CPU it costs. Three runs of the same vigil-loadgen load (AGENTS agents of
# SERIES series every INTERVAL for DURATION seconds) against a fresh release collector each:
#   plain     — no [[remote_write]]: the collector's CPU for ingest alone;
#   live      — exporting to a running VictoriaMetrics while the load runs: the extra CPU;
#   catch-up  — VictoriaMetrics down during the load, started after it: the whole backlog
#               is read from the kept log and sent while nothing else happens, so its
#               samples per second and CPU are export alone.
# CPU is the collector's utime+stime from /proc over each phase. Prints a markdown table.
#
# Usage: scripts/bench_remote_write.sh [AGENTS] [DURATION]   # default 200 agents, 60 s
#        SERIES=100 INTERVAL=1s SHARDS=4 VIGIL_BIN_DIR=target/release scripts/bench_remote_write.sh
# Needs: cargo, curl, python3, victoria-metrics.
set -euo pipefail

AGENTS=${1:-200}
DURATION=${2:-60}
SERIES=${SERIES:-100}
INTERVAL=${INTERVAL:-1s}
SHARDS=${SHARDS:-4}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${VIGIL_BIN_DIR:-$ROOT/target/release}
WORK=$(mktemp -d -t vigil-bench-rw.XXXXXX)
PIDS=()
ulimit -n "$(( AGENTS * 2 + 4096 ))" 2>/dev/null || true
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${VIGIL_BIN_DIR:-}" ]; then
    (cd "$ROOT" && cargo build --release --locked -p vigil-collector -p vigil-loadgen) >&2
fi
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
wait_port() {
    for _ in $(seq 1 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}
ticks=$(getconf CLK_TCK)
cpu_seconds() { # PID: utime+stime so far
    awk -v t="$ticks" '{ print ($14 + $15) / t }' "/proc/$1/stat"
}
now() { date +%s.%N; }

"$BIN/vigil-collector" ca init --dir "$WORK/ca" --name "Vigil bench CA" --server-name 127.0.0.1 >/dev/null 2>&1
vm_port=$(free_port)
vm_url="http://127.0.0.1:$vm_port"
start_vm() {
    victoria-metrics -httpListenAddr="127.0.0.1:$vm_port" -storageDataPath="$WORK/vm-$1" \
        -retentionPeriod=100y -search.latencyOffset=1s >"$WORK/vm-$1.log" 2>&1 &
    vm=$!
    PIDS+=("$vm")
    for _ in $(seq 1 150); do curl -fs -o /dev/null "$vm_url/health" && return 0; sleep 0.2; done
    return 1
}
stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
vm_count() {
    curl -fs "$vm_url/api/v1/query" --data-urlencode 'query=sum(count_over_time({host=~"lg-host-.*"}[2h]))' |
        python3 -c 'import json, sys; r = json.load(sys.stdin)["data"]["result"]; print(int(float(r[0]["value"][1])) if r else 0)'
}

start_collector() { # NAME, with_export (0/1)
    grpc=$(free_port)
    {
        printf 'data_dir = "%s"\n[grpc]\nlisten = "127.0.0.1:%s"\n' "$WORK/data-$1" "$grpc"
        printf 'cert = "%s/ca/collector.pem"\nkey = "%s/ca/collector-key.pem"\nclient_ca = "%s/ca/ca.pem"\n' "$WORK" "$WORK" "$WORK"
        printf '[http]\nlisten = "127.0.0.1:%s"\n' "$(free_port)"
        if [ "$2" = 1 ]; then
            printf '[[remote_write]]\nurl = "%s/api/v1/write"\nshards = %s\nmax_backoff = "1s"\nmax_queue_bytes = 8589934592\n' "$vm_url" "$SHARDS"
        fi
    } >"$WORK/$1.toml"
    VIGIL_LOG=warn "$BIN/vigil-collector" serve --config "$WORK/$1.toml" >"$WORK/$1.log" 2>&1 &
    collector=$!
    PIDS+=("$collector")
    wait_port "$grpc"
}
run_load() { # NAME
    "$BIN/vigil-loadgen" --ca-dir "$WORK/ca" --collector "https://127.0.0.1:$grpc" \
        --agents "$AGENTS" --series "$SERIES" --interval "$INTERVAL" --duration "${DURATION}s" \
        --drain 60s --progress 0s --report "$WORK/$1.json" >/dev/null 2>"$WORK/$1-loadgen.err"
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["acked_samples"])' "$WORK/$1.json"
}
wait_exported() { # TARGET_COUNT: at most 10 minutes
    for _ in $(seq 1 1200); do
        [ "$(vm_count 2>/dev/null || echo 0)" -ge "$1" ] && return 0
        sleep 0.5
    done
    echo "victoria-metrics has $(vm_count) of $1 samples after 10 minutes" >&2
    return 1
}

# plain
start_collector plain 0
c0=$(cpu_seconds "$collector"); t0=$(now)
plain_samples=$(run_load plain)
plain_cpu=$(python3 -c "print($(cpu_seconds "$collector") - $c0)"); plain_wall=$(python3 -c "print($(now) - $t0)")
stop_pid "$collector"

# live
start_vm live
start_collector live 1
c0=$(cpu_seconds "$collector"); t0=$(now)
live_samples=$(run_load live)
wait_exported "$live_samples"
live_cpu=$(python3 -c "print($(cpu_seconds "$collector") - $c0)"); live_wall=$(python3 -c "print($(now) - $t0)")
stop_pid "$collector"
stop_pid "$vm"

# catch-up
start_collector catchup 1
catchup_samples=$(run_load catchup)
c0=$(cpu_seconds "$collector")
start_vm catchup
t0=$(now)
wait_exported "$catchup_samples"
catchup_wall=$(python3 -c "print($(now) - $t0)")
catchup_cpu=$(python3 -c "print($(cpu_seconds "$collector") - $c0)")
stop_pid "$collector"
stop_pid "$vm"

python3 - "$AGENTS" "$SERIES" "$INTERVAL" "$DURATION" "$SHARDS" \
    "$plain_samples" "$plain_cpu" "$plain_wall" "$live_samples" "$live_cpu" "$live_wall" \
    "$catchup_samples" "$catchup_cpu" "$catchup_wall" <<'PY'
import sys
agents, series, interval, duration, shards = sys.argv[1:6]
ps, pc, pw, ls, lc, lw, cs, cc, cw = map(float, sys.argv[6:15])
print(f"{agents} agents x {series} series every {interval} for {duration} s; {shards} shards; receiver VictoriaMetrics")
print()
print("| run | samples | collector CPU s | CPU s per 1M samples | wall s | exported samples/s |")
print("|---|---:|---:|---:|---:|---:|")
print(f"| plain (no export) | {ps:,.0f} | {pc:.1f} | {pc / ps * 1e6:.1f} | {pw:.0f} | – |")
print(f"| live export | {ls:,.0f} | {lc:.1f} | {lc / ls * 1e6:.1f} | {lw:.0f} | – |")
print(f"| catch-up (export alone) | {cs:,.0f} | {cc:.1f} | {cc / cs * 1e6:.1f} | {cw:.1f} | {cs / cw:,.0f} |")
print()
print(f"export's share of live CPU: {(lc / ls - pc / ps) * 1e6:.1f} CPU s per 1M samples "
      f"({(lc / ls) / (pc / ps) - 1:+.0%} over ingest alone)")
PY
