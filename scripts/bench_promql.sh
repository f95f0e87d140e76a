#!/usr/bin/env bash
# Query latency: Vigil's PromQL against Prometheus 2.42 on the same data, for the queries a
# host page in Grafana sends (range queries over the whole data span, step 30 s, one host).
#
#   scripts/bench_promql.sh                     # 10 hosts, 6 hours, 40 rounds
#   HOSTS=20 HOURS=12 ROUNDS=100 WORK=/var/tmp/bench-promql scripts/bench_promql.sh
#
# Imports one generated OpenMetrics file into both (vigil-collector import; promtool tsdb
# create-blocks-from openmetrics), serves them on 127.0.0.1 (collector/examples/promql_serve
# built with --release; prometheus), checks that both give the same answers, then sends the
# page's queries in turn to one and the other, ROUNDS times, one request at a time, and prints
# a Markdown table of p50/p99 per query and for the whole page (its queries one after another).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
HOSTS=${HOSTS:-10}
HOURS=${HOURS:-6}
ROUNDS=${ROUNDS:-40}
WORK=${WORK:-/tmp/vigil-bench-promql}
rm -rf "$WORK"
mkdir -p "$WORK"
vigil_pid=""
prometheus_pid=""
cleanup() {
  for pid in $vigil_pid $prometheus_pid; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

echo "building" >&2
(cd "$root" && cargo build --release -q -p vigil-collector --example promql_serve --bin vigil-collector)
release="${CARGO_TARGET_DIR:-$root/target}/release"

data_start=$(( ($(date +%s) / 3600 - HOURS - 1) * 3600 ))
data_end=$(( data_start + HOURS * 3600 ))
python3 "$root/tests/interop/gen_openmetrics.py" --hosts "$HOSTS" --hours "$HOURS" \
  --interval 10 --seed 1 --start "$data_start" --out "$WORK/metrics.om" >&2
"$release/vigil-collector" import --data "$WORK/vigil" "$WORK/metrics.om" >"$WORK/import.log" 2>&1
promtool tsdb create-blocks-from openmetrics "$WORK/metrics.om" "$WORK/prometheus" \
  >"$WORK/promtool.log" 2>&1

"$release/examples/promql_serve" "$WORK/vigil" >"$WORK/vigil.log" 2>&1 &
vigil_pid=$!
port=$(free_port)
printf 'global:\n  scrape_interval: 1h\n' >"$WORK/prometheus.yml"
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prometheus" \
  --storage.tsdb.retention.time=100y --web.listen-address="127.0.0.1:$port" \
  >"$WORK/prometheus.log" 2>&1 &
prometheus_pid=$!
for _ in $(seq 1 120); do
  vigil_url=$(sed -n 's/^listening on //p' "$WORK/vigil.log")
  [ -n "$vigil_url" ] && curl -fs -o /dev/null "http://127.0.0.1:$port/-/ready" && break
  sleep 0.5
done

python3 - "$vigil_url" "http://127.0.0.1:$port" "$data_start" "$data_end" "$ROUNDS" "$HOSTS" "$HOURS" <<'EOF'
import json, sys, time, urllib.parse, urllib.request

vigil, prom, start, end, rounds, hosts, hours = sys.argv[1:8]
start, end, rounds = int(start), int(end), int(rounds)
# The first host of the generated file (names depend on the seed).
with urllib.request.urlopen(prom + "/api/v1/label/host/values") as r:
    host = json.load(r)["data"][0]
page = [
    ("cpu", 'system_cpu_utilization_ratio{host="%s"}'),
    ("memory used share", 'system_memory_usage_bytes{host="%s",state="used"} / on(host) system_memory_limit_bytes{host="%s"}'),
    ("filesystem used share", 'system_filesystem_usage_bytes{host="%s",state="used"} / on(host, mountpoint) system_filesystem_limit_bytes{host="%s"}'),
    ("network bytes/s", 'sum by (direction) (rate(system_network_io_bytes_total{host="%s"}[5m]))'),
    ("disk bytes/s", 'sum by (direction) (rate(system_disk_io_bytes_total{host="%s"}[5m]))'),
    ("load", 'system_load_average_1m{host="%s"}'),
    ("temperature", 'max by (sensor) (system_temperature_celsius{host="%s"})'),
    ("top processes", 'topk(5, max_over_time(process_memory_rss_bytes{host="%s"}[5m]))'),
    ("services down", 'service_up{host="%s"} == 0'),
    ("uptime (instant)", 'system_uptime_seconds{host="%s"}'),
]

def request(base, name, query):
    if name.endswith("(instant)"):
        path, params = "/api/v1/query", {"query": query, "time": end}
    else:
        path, params = "/api/v1/query_range", {"query": query, "start": start, "end": end, "step": 30}
    began = time.perf_counter()
    with urllib.request.urlopen(base + path + "?" + urllib.parse.urlencode(params), timeout=120) as r:
        body = json.load(r)
    return time.perf_counter() - began, body

def canonical(body):
    result = body["data"]["result"]
    return sorted(json.dumps(item, sort_keys=True) for item in result)

queries = [(name, text.replace("%s", host)) for name, text in page]
for name, query in queries:  # warm-up, and the same answers from both
    _, a = request(vigil, name, query)
    _, b = request(prom, name, query)
    if not a["data"]["result"] and name != "services down":
        sys.exit("%s: empty answer, the benchmark would measure nothing" % name)
    if canonical(a) != canonical(b):
        print("answers differ for %s" % name, file=sys.stderr)
times = {side: {name: [] for name, _ in queries} for side in ("vigil", "prometheus")}
pages = {"vigil": [], "prometheus": []}
for _ in range(rounds):
    for side, base in (("vigil", vigil), ("prometheus", prom)):
        total = 0.0
        for name, query in queries:
            elapsed, _ = request(base, name, query)
            times[side][name].append(elapsed)
            total += elapsed
        pages[side].append(total)

def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] * 1000

print("%s hosts x %s hours, 10 s interval; host %s; range %s h, step 30 s; %d rounds" % (hosts, hours, host, hours, rounds))
print()
print("| query | Vigil p50 | Vigil p99 | Prometheus p50 | Prometheus p99 |")
print("|---|---|---|---|---|")
for name, _ in queries:
    v, p = times["vigil"][name], times["prometheus"][name]
    print("| %s | %.1f ms | %.1f ms | %.1f ms | %.1f ms |" % (name, pct(v, 50), pct(v, 99), pct(p, 50), pct(p, 99)))
v, p = pages["vigil"], pages["prometheus"]
print("| **whole page** | **%.1f ms** | **%.1f ms** | **%.1f ms** | **%.1f ms** |" % (pct(v, 50), pct(v, 99), pct(p, 50), pct(p, 99)))
EOF
