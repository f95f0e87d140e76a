#!/usr/bin/env bash
# Interop: Vigil's PromQL against Prometheus 2.42 on the same data. One OpenMetrics file
# (tests/interop/gen_openmetrics.py: a few hosts, three hours) is imported into Vigil
# (`vigil-collector import`) and into Prometheus (`promtool tsdb create-blocks-from
# openmetrics`); `prometheus` serves its blocks and collector/examples/promql_serve.rs serves
# Vigil's query API, both on free ports of 127.0.0.1. promql_compare.py runs every query
# against both and compares; then `promtool query instant|range` runs against Vigil, and
# unsupported PromQL must get Prometheus' bad_data error. Needs Debian's `prometheus`
# package (prometheus and promtool). Prints "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/interop/check.bash

HOSTS=${HOSTS:-3}
HOURS=${HOURS:-3}
work=$(mktemp -d)
vigil_pid=""
prometheus_pid=""
cleanup() {
  for pid in $vigil_pid $prometheus_pid; do
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  # KEEP=1 keeps the data and the logs for a look.
  [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

build() {
  cargo build --locked -p vigil-collector --bin vigil-collector --example promql_serve \
    >"$work/build.log" 2>&1 || { tail -20 "$work/build.log"; return 1; }
}
check "the collector and promql_serve build" build
collector_bin=target/debug/vigil-collector
serve_bin=target/debug/examples/promql_serve

# Recent data, on whole hours, so that no retention applies to it on either side.
data_start=$(( ($(date +%s) / 3600 - HOURS - 1) * 3600 ))
data_end=$(( data_start + HOURS * 3600 ))
generate() {
  python3 tests/interop/gen_openmetrics.py --hosts "$HOSTS" --hours "$HOURS" --interval 15 \
    --seed 7 --clients 2 --start "$data_start" --out "$work/metrics.om" >"$work/gen.log" 2>&1
}
check "an OpenMetrics file of $HOSTS hosts over $HOURS hours is generated" generate

import_vigil() {
  "$collector_bin" import --data "$work/vigil" "$work/metrics.om" >"$work/import.log" 2>&1 ||
    { tail "$work/import.log"; return 1; }
}
check "vigil-collector import reads the file" import_vigil

import_prometheus() {
  promtool tsdb create-blocks-from openmetrics "$work/metrics.om" "$work/prometheus" \
    >"$work/promtool-import.log" 2>&1 || { tail "$work/promtool-import.log"; return 1; }
}
check "promtool creates blocks from the same file" import_prometheus

# Waits until URL answers 200, for at most 30 s.
wait_ready() { # url
  for _ in $(seq 1 60); do
    curl -fs -o /dev/null "$1" && return 0
    sleep 0.5
  done
  return 1
}

start_vigil() {
  "$serve_bin" "$work/vigil" >"$work/vigil.log" 2>&1 &
  vigil_pid=$!
  for _ in $(seq 1 60); do
    vigil_url=$(sed -n 's/^listening on //p' "$work/vigil.log")
    [ -n "$vigil_url" ] && break
    sleep 0.5
  done
  [ -n "$vigil_url" ] && wait_ready "$vigil_url/api/v1/status/buildinfo" || { cat "$work/vigil.log"; return 1; }
}
vigil_url=""
check "vigil serves the query API on 127.0.0.1" start_vigil

prometheus_port=$(free_port)
prometheus_url="http://127.0.0.1:$prometheus_port"
start_prometheus() {
  printf 'global:\n  scrape_interval: 1h\n' >"$work/prometheus.yml"
  prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prometheus" \
    --storage.tsdb.retention.time=100y --web.listen-address="127.0.0.1:$prometheus_port" \
    >"$work/prometheus.log" 2>&1 &
  prometheus_pid=$!
  wait_ready "$prometheus_url/-/ready" || { tail "$work/prometheus.log"; return 1; }
}
check "prometheus serves the imported blocks on 127.0.0.1" start_prometheus

compare() {
  python3 tests/interop/promql_compare.py "$vigil_url" "$prometheus_url" "$data_start" "$data_end" \
    | tee "$work/compare.log" | grep -v '^[0-9]* passed, [0-9]* failed$'
  [ "${PIPESTATUS[0]}" -eq 0 ]
}
check "the same queries give the same series and values on vigil and prometheus" compare

promtool_instant() {
  promtool query instant --time="$((data_start + 3600))" "$vigil_url" \
    'sum by (host) (rate(system_network_io_bytes_total[5m]))' >"$work/promtool.out" 2>&1 &&
    grep -q '=>' "$work/promtool.out" || { cat "$work/promtool.out"; return 1; }
}
check "promtool query instant works against vigil" promtool_instant

promtool_range() {
  promtool query range --start="$((data_start + 3600))" --end="$((data_start + 5400))" \
    --step=5m "$vigil_url" 'avg(system_cpu_utilization_ratio)' >"$work/promtool-range.out" 2>&1 &&
    grep -q '=>' "$work/promtool-range.out" || { cat "$work/promtool-range.out"; return 1; }
}
check "promtool query range works against vigil" promtool_range

unsupported() {
  local body
  body=$(curl -s "$vigil_url/api/v1/query" \
    --data-urlencode 'query=histogram_quantile(0.9, rate(x_bucket[5m]))')
  echo "$body" | grep -q '"errorType":"bad_data"' &&
    echo "$body" | grep -q 'histogram_quantile() is not supported' || { echo "$body"; return 1; }
}
check "unsupported promql gets prometheus' bad_data error naming what is not supported" unsupported

finish
