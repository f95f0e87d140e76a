#!/usr/bin/env bash
# Interop: remote-write export to real receivers from Debian, on free ports of 127.0.0.1.
#  1. A collector under vigil-loadgen's load (mutual TLS) exports to Prometheus 2.42
#     (--web.enable-remote-write-receiver) and to VictoriaMetrics at once; what both hold
#     (Prometheus' /api/v1/query of a range selector, VictoriaMetrics' /api/v1/export) equals
#     what Vigil stored (`vigil-collector query --format json`), sample for sample.
#  2. Both receivers are stopped under load for a while, and the collector is stopped
#     cleanly and started again meanwhile; when they come back, everything is there, with no
#     sample lost and none twice (VictoriaMetrics keeps duplicates, so it would show them).
#  3. Two collectors, each with a client of its own and a real enrolled agent, both export
#     to one VictoriaMetrics: one PromQL query there returns both clients' hosts.
# Needs Debian's `prometheus` and `victoria-metrics`, cargo, python3, curl. Prints
# "N passed, M failed"; KEEP=1 keeps the work folder.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/interop/check.bash

AGENTS=${AGENTS:-6}
SERIES=${SERIES:-20}
OUTAGE=${OUTAGE:-20}
work=$(mktemp -d "${TMPDIR:-/tmp}/vigil-rwrite.XXXXXX")
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

# Waits (at most 30 s) until URL answers 2xx.
wait_ready() { # url
  for _ in $(seq 1 150); do
    curl -fs -o /dev/null "$1" && return 0
    sleep 0.2
  done
  echo "$1 is not ready after 30 s" >&2
  return 1
}

# Waits (at most 30 s) until something accepts TCP connections on 127.0.0.1:PORT.
wait_port() {
  for _ in $(seq 1 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.2
  done
  echo "nothing listens on 127.0.0.1:$1 after 30 s" >&2
  return 1
}

# ---- the receivers --------------------------------------------------------------------

prometheus_port=$(free_port)
prometheus_url="http://127.0.0.1:$prometheus_port"
printf 'global:\n  scrape_interval: 1h\n' >"$work/prometheus.yml"
start_prometheus() {
  prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prometheus" \
    --web.enable-remote-write-receiver --web.listen-address="127.0.0.1:$prometheus_port" \
    >>"$work/prometheus.log" 2>&1 &
  prometheus_pid=$!
  pids+=("$prometheus_pid")
  wait_ready "$prometheus_url/-/ready" || { tail "$work/prometheus.log"; return 1; }
}
vm_port=$(free_port)
vm_url="http://127.0.0.1:$vm_port"
start_victoria() {
  victoria-metrics -httpListenAddr="127.0.0.1:$vm_port" -storageDataPath="$work/victoria" \
    -retentionPeriod=100y -search.latencyOffset=1s >>"$work/victoria.log" 2>&1 &
  vm_pid=$!
  pids+=("$vm_pid")
  wait_ready "$vm_url/health" || { tail "$work/victoria.log"; return 1; }
}
stop_receivers() {
  kill -TERM "$prometheus_pid" "$vm_pid" 2>/dev/null
  wait "$prometheus_pid" "$vm_pid" 2>/dev/null
  return 0
}
check "prometheus 2.42 receives remote-write on 127.0.0.1" start_prometheus
check "victoria-metrics receives remote-write on 127.0.0.1" start_victoria

# ---- the collector under load ---------------------------------------------------------

"$bin/vigil-collector" ca init --dir "$work/ca" --name "Vigil remote-write test CA" \
  --server-name 127.0.0.1 >"$work/ca.log" 2>&1 || { cat "$work/ca.log"; exit 1; }
grpc_port=$(free_port)
cat >"$work/collector.toml" <<EOF
data_dir = "$work/data"
[grpc]
listen = "127.0.0.1:$grpc_port"
cert = "$work/ca/collector.pem"
key = "$work/ca/collector-key.pem"
client_ca = "$work/ca/ca.pem"
[http]
listen = "127.0.0.1:$(free_port)"
[[remote_write]]
name = "prometheus"
url = "$prometheus_url/api/v1/write"
match = ['{host=~"lg-host-.*"}']
max_backoff = "2s"
[[remote_write]]
name = "victoria"
url = "$vm_url/api/v1/write"
shards = 2
max_backoff = "2s"
EOF
start_collector() {
  VIGIL_LOG=info "$bin/vigil-collector" serve --config "$work/collector.toml" \
    >>"$work/collector.log" 2>&1 &
  collector=$!
  pids+=("$collector")
  wait_port "$grpc_port"
}
stop_collector() { # graceful: SIGTERM, and wait for it
  kill -TERM "$collector" 2>/dev/null
  wait "$collector" 2>/dev/null
  return 0
}
check "the collector serves with two [[remote_write]] receivers" start_collector

run_load() { # seconds of live load, report file
  "$bin/vigil-loadgen" --ca-dir "$work/ca" --collector "https://127.0.0.1:$grpc_port" \
    --agents "$AGENTS" --series "$SERIES" --interval 1s --duration "${1}s" --drain 60s \
    --progress 0s --report "$2" >>"$work/loadgen.out" 2>>"$work/loadgen.err"
}

# The number of samples VictoriaMetrics holds for the load's hosts.
vm_samples() {
  curl -fs "$vm_url/api/v1/export" --data-urlencode 'match[]={host=~"lg-host-.*"}' |
    python3 -c 'import json, sys; print(sum(len(json.loads(l)["values"]) for l in sys.stdin if l.strip()))'
}

# The number of samples Prometheus holds for the load's hosts.
prometheus_samples() {
  curl -fs "$prometheus_url/api/v1/query" --data-urlencode 'query=sum(count_over_time({host=~"lg-host-.*"}[2h]))' |
    python3 -c 'import json, sys; r = json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)'
}

# Waits until both receivers' counts have not moved for 3 s (at most 2 minutes): the
# exporters have caught up.
wait_caught_up() {
  local last=-1 same=0 now
  for _ in $(seq 1 240); do
    now="$(vm_samples 2>/dev/null || echo -1)/$(prometheus_samples 2>/dev/null || echo -1)"
    if [ "$now" = "$last" ] && [ "${now%%/*}" -gt 0 ] 2>/dev/null; then
      same=$((same + 1))
      [ "$same" -ge 6 ] && return 0
    else
      same=0
    fi
    last=$now
    sleep 0.5
  done
  return 1
}

# Compares Vigil's store (read with the collector stopped) with both receivers, sample for
# sample: the same (labels, timestamp, value) everywhere, and nothing twice.
compare() { # label for the printout
  stop_collector
  "$bin/vigil-collector" query --data "$work/data" '{host=~"lg-host-.*"}' --since 2h \
    --format json >"$work/vigil.json" 2>"$work/query.err" || { cat "$work/query.err"; return 1; }
  start_collector || return 1
  curl -fs "$vm_url/api/v1/export" --data-urlencode 'match[]={host=~"lg-host-.*"}' \
    >"$work/victoria.jsonl" || return 1
  curl -fs "$prometheus_url/api/v1/query" --data-urlencode 'query={host=~"lg-host-.*"}[2h]' \
    >"$work/prometheus.json" || return 1
  python3 - "$work" "$1" <<'PY'
import collections, json, math, sys
work, label = sys.argv[1], sys.argv[2]

def gathered(triples):
    """Per series (sorted labels): how often each timestamp came, and its value."""
    counts = collections.defaultdict(collections.Counter)
    values = collections.defaultdict(dict)
    for metric, timestamp_ms, value in triples:
        series = tuple(sorted(metric.items()))
        counts[series][timestamp_ms] += 1
        values[series][timestamp_ms] = float(value)
    return counts, values

vigil = gathered((s["metric"], round(float(t) * 1000), v)
                 for s in json.load(open(f"{work}/vigil.json")) for t, v in s["values"])
victoria = gathered((s["metric"], t, v)
                    for line in open(f"{work}/victoria.jsonl") if line.strip()
                    for s in [json.loads(line)] for t, v in zip(s["timestamps"], s["values"]))
prometheus = gathered((s["metric"], round(float(t) * 1000), v)
                      for s in json.load(open(f"{work}/prometheus.json"))["data"]["result"]
                      for t, v in s["values"])
n_vigil = sum(sum(c.values()) for c in vigil[0].values())
ok = n_vigil > 0
# Prometheus keeps float64 exactly; VictoriaMetrics stores values as decimals of 12 to 15
# significant digits, by design, so its values are compared to 1e-9 relative.
for name, (counts, values), tolerance in (("prometheus", prometheus, 0.0),
                                          ("victoria-metrics", victoria, 1e-9)):
    lost = duplicates = extra = differ = 0
    for series, ours in vigil[0].items():
        theirs = counts.get(series, collections.Counter())
        lost += sum(1 for t in ours if t not in theirs)
        duplicates += sum(n - 1 for n in theirs.values() if n > 1)
        extra += sum(1 for t in theirs if t not in ours)
        for t in ours:
            if t in theirs:
                a, b = vigil[1][series][t], values[series][t]
                if not (a == b or math.isclose(a, b, rel_tol=tolerance, abs_tol=1e-12 if tolerance else 0)):
                    differ += 1
    extra += sum(sum(c.values()) for series, c in counts.items() if series not in vigil[0])
    n_other = sum(sum(c.values()) for c in counts.values())
    print(f"{label}: vigil stored {n_vigil} samples in {len(vigil[0])} series; {name} holds {n_other}: "
          f"lost {lost}, duplicates {duplicates}, not in vigil {extra}, other value {differ}")
    ok = ok and lost == 0 and duplicates == 0 and extra == 0 and differ == 0
sys.exit(0 if ok else 1)
PY
}

check "vigil-loadgen's load is acknowledged" run_load 20 "$work/load1.json"
check "the exporters catch up" wait_caught_up
check "prometheus and victoria-metrics hold exactly what vigil stored" compare "part 1"

# ---- 2. receivers down under load, the collector restarted meanwhile -----------------

run_load $((OUTAGE + 20)) "$work/load2.json" &
load=$!
pids+=("$load")
sleep 5
stop_receivers
echo "receivers stopped for $OUTAGE s under load"
sleep $((OUTAGE / 2))
stop_collector
start_collector
sleep $((OUTAGE - OUTAGE / 2))
start_prometheus && start_victoria
echo "receivers started again"
check "vigil-loadgen's load during the outage is acknowledged" wait "$load"
check "the exporters catch up after the outage" wait_caught_up
retried() {
  grep -q 'remote-write send failed; retrying' "$work/collector.log"
}
check "the exporters retried while the receivers were down" retried
check "after the outage and a restart, nothing is lost or duplicated" compare "part 2"
stop_collector

# ---- 3. two collectors, two clients, one VictoriaMetrics -----------------------------

two_collectors() {
  local name client grpc enroll token
  for name in north south; do
    grpc=$(free_port)
    enroll=$(free_port)
    cat >"$work/$name.toml" <<EOF
data_dir = "$work/$name-data"
[grpc]
listen = "127.0.0.1:$grpc"
cert = "$work/ca/collector.pem"
key = "$work/ca/collector-key.pem"
client_ca = "$work/ca/ca.pem"
[enroll]
listen = "127.0.0.1:$enroll"
ca_cert = "$work/ca/ca.pem"
ca_key = "$work/ca/ca-key.pem"
[http]
listen = "127.0.0.1:$(free_port)"
[[remote_write]]
url = "$vm_url/api/v1/write"
EOF
    VIGIL_LOG=info "$bin/vigil-collector" serve --config "$work/$name.toml" \
      >"$work/$name-collector.log" 2>&1 &
    pids+=($!)
    wait_port "$grpc" || return 1
    client="$name-clinic"
    token=$("$bin/vigil-collector" token create --config "$work/$name.toml" --client "$client" \
      2>/dev/null | grep '^vgl1')
    "$bin/vigil-agent" enroll --collector "https://127.0.0.1:$grpc" --token "$token" \
      --config-dir "$work/$name-agent" --hostname "$name-pc-01" >"$work/$name-enroll.log" 2>&1 ||
      { cat "$work/$name-enroll.log"; return 1; }
    sed -i 's/^interval = .*/interval = "1s"/' "$work/$name-agent/agent.toml"
    { echo "state_dir = \"$work/$name-agent/state\""; cat "$work/$name-agent/agent.toml"; } \
      >"$work/$name-agent/agent.toml.new" && mv "$work/$name-agent/agent.toml.new" "$work/$name-agent/agent.toml"
    VIGIL_LOG=info "$bin/vigil-agent" run --config "$work/$name-agent/agent.toml" \
      >"$work/$name-agent.log" 2>&1 &
    pids+=($!)
  done
}
check "two collectors, each with a client and an enrolled agent, export to one victoria-metrics" two_collectors

both_clients() {
  local query='count by (client, host) (count_over_time({client=~"north-clinic|south-clinic"}[10m]))'
  for _ in $(seq 1 60); do
    curl -fs "$vm_url/api/v1/query" --data-urlencode "query=$query" >"$work/fleet.json" &&
      python3 - "$work/fleet.json" <<'PY' && return 0
import json, sys
result = json.load(open(sys.argv[1]))["data"]["result"]
hosts = sorted((r["metric"].get("client"), r["metric"].get("host")) for r in result)
print("victoria-metrics sees", hosts)
sys.exit(0 if hosts == [("north-clinic", "north-pc-01"), ("south-clinic", "south-pc-01")] else 1)
PY
    sleep 1
  done
  return 1
}
check "one promql query on victoria-metrics returns both clients' hosts" both_clients

finish
