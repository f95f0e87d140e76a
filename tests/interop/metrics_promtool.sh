#!/usr/bin/env bash
# Interop: the collector's own /metrics against Prometheus' tools. The real `vigil-collector
# serve` runs on free ports of 127.0.0.1 while a raw agent (collector/examples/
# numbered_sender.rs) sends batches over mutual TLS; then `promtool check metrics` must
# accept the scraped text with no complaint, a real `prometheus` must scrape it with the
# bearer token from a credentials_file (the scrape config docs/METRICS.md shows) and read the
# same counts, and a client user's token and no token must be refused. Needs Debian's
# `prometheus` package (prometheus and promtool). Prints "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/interop/check.bash

COUNT=${COUNT:-30}
work=$(mktemp -d)
collector_pid=""
prometheus_pid=""
cleanup() {
  for pid in $collector_pid $prometheus_pid; do
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  # KEEP=1 keeps the logs, the scrape and the store for a look.
  [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

build() {
  cargo build --locked -p vigil-collector --bin vigil-collector --example numbered_sender \
    >"$work/build.log" 2>&1 || { tail -20 "$work/build.log"; return 1; }
}
check "the collector and the numbered sender build" build
collector_bin=target/debug/vigil-collector
sender_bin=target/debug/examples/numbered_sender

grpc_port=$(free_port)
http_port=$(free_port)
metrics_url="http://127.0.0.1:$http_port/metrics"
setup() {
  # `demo` writes a CA, the collector's and an agent's certificates; its store is not used.
  "$collector_bin" demo --data "$work/pki" --duration 1s --grpc 127.0.0.1:0 \
    >"$work/demo.log" 2>&1 || { tail "$work/demo.log"; return 1; }
  cat >"$work/collector.toml" <<TOML
data_dir = "$work/data"
[grpc]
listen = "127.0.0.1:$grpc_port"
cert = "$work/pki/collector.pem"
key = "$work/pki/collector-key.pem"
client_ca = "$work/pki/ca.pem"
[http]
listen = "127.0.0.1:$http_port"
TOML
  "$collector_bin" users add --config "$work/collector.toml" scraper --role technician \
    --no-password >/dev/null 2>&1 &&
    "$collector_bin" users token --config "$work/collector.toml" scraper \
      >"$work/scraper.token" 2>/dev/null &&
    "$collector_bin" users add --config "$work/collector.toml" acme-it --role client \
      --client acme --no-password >/dev/null 2>&1 &&
    "$collector_bin" users token --config "$work/collector.toml" acme-it \
      >"$work/client.token" 2>/dev/null || return 1
  chmod 600 "$work/scraper.token"
  VIGIL_LOG=info "$collector_bin" serve --config "$work/collector.toml" >"$work/collector.log" 2>&1 &
  collector_pid=$!
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "$metrics_url" && return 0
    sleep 0.2
  done
  tail "$work/collector.log"
  return 1
}
check "the collector serves with a technician's and a client user's API tokens" setup

send() {
  "$sender_bin" --collector "https://127.0.0.1:$grpc_port" --cert "$work/pki/agent.pem" \
    --key "$work/pki/agent-key.pem" --ca "$work/pki/ca.pem" --count "$COUNT" --rate 50 \
    --progress "$work/progress" --deadline-seconds 120 >"$work/sender.out" 2>"$work/sender.log" ||
    { tail "$work/sender.log"; return 1; }
  grep -q "^acked: $COUNT$" "$work/progress" || { cat "$work/progress"; return 1; }
}
check "a raw agent's $COUNT batches are acknowledged" send

# The value of the sample named exactly $1 in the scrape.
value_of() { awk -v series="$1" '$1 == series { print $2 }' "$work/metrics.txt"; }

scrape() {
  local status
  status=$(curl -s -o "$work/metrics.txt" -w '%{http_code}' \
    -H "Authorization: Bearer $(cat "$work/scraper.token")" "$metrics_url")
  [ "$status" = 200 ] || { echo "HTTP $status"; cat "$work/metrics.txt"; return 1; }
  [ "$(value_of vigil_ingest_batches_total)" = "$COUNT" ] &&
    [ "$(value_of vigil_ingest_samples_total)" = "$COUNT" ] &&
    [ "$(value_of vigil_ingest_ack_duration_seconds_count)" = "$COUNT" ] ||
    { grep '^vigil_ingest' "$work/metrics.txt"; return 1; }
}
check "a technician's token scrapes /metrics with every batch, sample and ack counted" scrape

promtool_accepts() {
  # promtool prints each lint problem and exits non-zero on any.
  promtool check metrics <"$work/metrics.txt" >"$work/promtool.out" 2>&1 &&
    [ ! -s "$work/promtool.out" ] || { cat "$work/promtool.out"; return 1; }
}
check "promtool check metrics accepts /metrics with no complaint" promtool_accepts

refused() { # expected status, curl arguments...
  local expected=$1 status
  shift
  status=$(curl -s -o "$work/refused.txt" -w '%{http_code}' "$@" "$metrics_url")
  [ "$status" = "$expected" ] || { echo "HTTP $status"; cat "$work/refused.txt"; return 1; }
}
check "a client user's token gets 403" \
  refused 403 -H "Authorization: Bearer $(cat "$work/client.token")"
check "no token gets 401" refused 401

prometheus_port=$(free_port)
prometheus_url="http://127.0.0.1:$prometheus_port"
start_prometheus() {
  cat >"$work/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: vigil
    authorization:
      credentials_file: $work/scraper.token
    static_configs:
      - targets: ["127.0.0.1:$http_port"]
YAML
  prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prometheus" \
    --web.listen-address="127.0.0.1:$prometheus_port" >"$work/prometheus.log" 2>&1 &
  prometheus_pid=$!
  for _ in $(seq 1 60); do
    curl -fs -o /dev/null "$prometheus_url/-/ready" && return 0
    sleep 0.5
  done
  tail "$work/prometheus.log"
  return 1
}
check "prometheus starts with a scrape config using the token's credentials_file" start_prometheus

# The first value of an instant query against prometheus, or nothing.
query() {
  curl -s "$prometheus_url/api/v1/query" --data-urlencode "query=$1" |
    python3 -c 'import json, sys; r = json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")'
}
prometheus_scrapes() {
  for _ in $(seq 1 60); do
    [ "$(query 'up{job="vigil"}')" = 1 ] &&
      [ "$(query 'vigil_ingest_batches_total{job="vigil"}')" = "$COUNT" ] && return 0
    sleep 0.5
  done
  curl -s "$prometheus_url/api/v1/targets" | head -c 2000
  return 1
}
check "prometheus scrapes vigil and reads the same batch count" prometheus_scrapes

finish
