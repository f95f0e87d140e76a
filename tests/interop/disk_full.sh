#!/usr/bin/env bash
# Interop: a full disk under a running collector. The real `vigil-collector serve` keeps its
# data directory on a small tmpfs; a raw agent (collector/examples/numbered_sender.rs) sends
# batches numbered 1..N over mutual TLS and, like an agent's spool, keeps and resends what is
# not acknowledged. Midway the disk is filled: ingest must refuse (a retryable error, the
# collector still running), then, once space is freed, resume by itself with no restart. At
# the end every number must be stored exactly once, and the MSP must have heard of it: a
# webhook receiver records the collector's StorageWriteFailing alert and its resolve. Runs as
# root (mount); prints the counts and "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/interop/check.bash

COUNT=${COUNT:-400}
RATE=${RATE:-40}
work=$(mktemp -d)
disk="$work/disk"
collector_pid=""
sender_pid=""
receiver_pid=""
cleanup() {
  for pid in $sender_pid $collector_pid $receiver_pid; do
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  mountpoint -q "$disk" && umount "$disk"
  # KEEP=1 keeps the logs and the store for a look.
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

mount_small_disk() {
  mkdir -p "$disk" && mount -t tmpfs -o size=16m vigil-disk-full "$disk"
}
check "a 16 MiB tmpfs is mounted for the data directory" mount_small_disk

port=$(free_port)
hook_port=$(free_port)
# A webhook receiver off the small disk: one JSON body per line.
record_webhook "$hook_port" "$work/webhook.jsonl" &
receiver_pid=$!
setup() {
  # `demo` writes a CA, the collector's and an agent's certificates; its store is not used.
  "$collector_bin" demo --data "$work/pki" --duration 1s --grpc 127.0.0.1:0 \
    >"$work/demo.log" 2>&1 || { tail "$work/demo.log"; return 1; }
  cat >"$work/collector.toml" <<TOML
data_dir = "$disk/data"
[grpc]
listen = "127.0.0.1:$port"
cert = "$work/pki/collector.pem"
key = "$work/pki/collector-key.pem"
client_ca = "$work/pki/ca.pem"
[alerts]
evaluation_interval = "1s"
[notify]
backoff_min = "1s"
backoff_max = "2s"
[notify.routing]
on_call = ["recorder"]
normal = ["recorder"]
[[notify.channel]]
name = "recorder"
type = "webhook"
url = "http://127.0.0.1:$hook_port/vigil"
TOML
  VIGIL_LOG=info "$collector_bin" serve --config "$work/collector.toml" >"$work/collector.log" 2>&1 &
  collector_pid=$!
  for _ in $(seq 1 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1).close()" \
      2>/dev/null && return 0
    sleep 0.2
  done
  tail "$work/collector.log"
  return 1
}
check "the collector serves with its data directory on the small disk" setup

progress() { # the sender's counter named $1
  sed -n "s/^$1: //p" "$work/progress" 2>/dev/null || echo 0
}
wait_until() { # seconds, command...
  local seconds=$1
  shift
  for _ in $(seq 1 $((seconds * 5))); do
    "$@" && return 0
    sleep 0.2
  done
  return 1
}
acked_at_least() { [ "$(progress acked)" -ge "$1" ]; }
refused_at_least() { [ "$(progress refusals)" -ge "$1" ]; }

"$sender_bin" --collector "https://127.0.0.1:$port" --cert "$work/pki/agent.pem" \
  --key "$work/pki/agent-key.pem" --ca "$work/pki/ca.pem" --count "$COUNT" --rate "$RATE" \
  --progress "$work/progress" --deadline-seconds 600 >"$work/sender.out" 2>"$work/sender.log" &
sender_pid=$!

check "batches are acknowledged while the disk has room" wait_until 60 acked_at_least $((COUNT / 4))

fill_disk() {
  # Until the file system says no more (dd's error is the point).
  dd if=/dev/zero of="$disk/filler" bs=64k >/dev/null 2>&1
  [ "$(df --output=avail "$disk" | tail -1 | tr -d ' ')" -lt 64 ]
}
check "the disk is filled" fill_disk

refuses() {
  wait_until 30 refused_at_least 1 || { echo "     no refusal"; tail -5 "$work/sender.log"; return 1; }
  kill -0 "$collector_pid" || { echo "     the collector exited"; tail "$work/collector.log"; return 1; }
  grep -q "the write-ahead log failed" "$work/collector.log" ||
    { echo "     the collector did not log the failure"; tail "$work/collector.log"; return 1; }
  # While the disk stays full nothing more is acknowledged; the sender keeps its batches.
  local acked
  acked=$(progress acked)
  sleep 3
  [ "$(progress acked)" = "$acked" ] ||
    { echo "     acknowledged $acked, then $(progress acked) on a full disk"; return 1; }
  grep -q "UNAVAILABLE\|Unavailable" "$work/sender.log" ||
    { echo "     refusals were not retryable:"; tail -5 "$work/sender.log"; return 1; }
  echo "     refused at batch $((acked + 1)), $(progress refusals) refusals so far"
}
check "ingest refuses with a retryable error and the collector keeps running" refuses

rm -f "$disk/filler"

resumes() {
  wait "$sender_pid"
  local status=$?
  sender_pid=""
  [ "$status" = 0 ] || { echo "     the sender failed:"; tail -5 "$work/sender.log"; return 1; }
  kill -0 "$collector_pid" || { echo "     the collector is gone"; return 1; }
  grep -q "the write-ahead log writes again" "$work/collector.log" ||
    { echo "     no recovery in the log"; tail "$work/collector.log"; return 1; }
}
check "once space is freed ingest resumes by itself, with the same collector process" resumes

storage_alert() { # state: firing or resolved
  grep '"StorageWriteFailing"' "$work/webhook.jsonl" 2>/dev/null | grep -q "\"status\":\"$1\""
}
msp_alerted() {
  wait_until 60 storage_alert firing ||
    { echo "     no StorageWriteFailing alert reached the webhook"; tail -3 "$work/webhook.jsonl" 2>/dev/null; return 1; }
  wait_until 60 storage_alert resolved ||
    { echo "     the StorageWriteFailing alert was not resolved"; return 1; }
}
check "the MSP hears of it: a StorageWriteFailing alert, then its resolve" msp_alerted

stop_collector() {
  kill -TERM "$collector_pid"
  wait "$collector_pid"
  local status=$?
  collector_pid=""
  [ "$status" = 0 ] || { echo "     exit status $status"; tail "$work/collector.log"; return 1; }
}
check "the collector stops cleanly" stop_collector

count() {
  "$collector_bin" query --data "$disk/data" disk_full_probe --since 1d --format json \
    >"$work/stored.json" 2>"$work/query.log" || { cat "$work/query.log"; return 1; }
  python3 - "$work/stored.json" "$COUNT" "$(progress sent)" "$(progress acked)" >"$work/counts" <<'PY' || return 1
import json, sys
series = json.load(open(sys.argv[1]))
count, sent, acked = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
values = [float(point[1]) for s in series for point in s["values"]]
numbers = {int(v) for v in values}
stored = len(values)
duplicates = stored - len(numbers)
lost = len(set(range(1, acked + 1)) - numbers)
print(f"sent: {sent}")
print(f"acknowledged: {acked}")
print(f"stored: {stored}")
print(f"duplicates: {duplicates}")
print(f"lost: {lost}")
ok = acked == count and stored == count and duplicates == 0 and lost == 0 and numbers <= set(range(1, count + 1))
sys.exit(0 if ok else 1)
PY
  local status=$?
  sed 's/^/     /' "$work/counts"
  [ "$status" = 0 ]
}
check "every number is stored exactly once: 0 lost, 0 duplicated" count

undamaged() {
  if grep -Ei "damaged|quarantin|panicked" "$work/collector.log" "$work/query.log"; then
    return 1
  fi
}
check "the store was never damaged nor moved aside" undamaged

finish
