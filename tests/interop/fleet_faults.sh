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

# ---- 2. the network cut between real agents and the collector ------------------------

# A TCP proxy on 127.0.0.1 that this script controls: SIGUSR1 cuts every connection and
# refuses new ones (accepted and closed at once), SIGUSR2 lets them through again.
cat >"$work/proxy.py" <<'PY'
import asyncio, signal, sys
listen_port, target_port = int(sys.argv[1]), int(sys.argv[2])
state = {"cut": False, "writers": set()}

async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()

async def handle(client_reader, client_writer):
    if state["cut"]:
        client_writer.transport.abort()
        return
    try:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
    except OSError:
        client_writer.transport.abort()
        return
    state["writers"].update({client_writer, server_writer})
    await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))
    state["writers"].difference_update({client_writer, server_writer})

def cut():
    state["cut"] = True
    for writer in list(state["writers"]):
        writer.transport.abort()
    state["writers"].clear()
    print("cut", flush=True)

def restore():
    state["cut"] = False
    print("restored", flush=True)

async def main():
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, cut)
    loop.add_signal_handler(signal.SIGUSR2, restore)
    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    async with server:
        await server.serve_forever()

asyncio.run(main())
PY


grpc_port=$(free_port)
proxy_port=$(free_port)
webhook_port=$(free_port)
: >"$work/webhook.jsonl"
# The webhook the collector delivers alerts to: one request body a line.
record_webhook "$webhook_port" "$work/webhook.jsonl" &
pids+=($!)
python3 "$work/proxy.py" "$proxy_port" "$grpc_port" >"$work/proxy.log" 2>&1 &
proxy=$!
pids+=("$proxy")
cat >"$work/cut.toml" <<TOML
data_dir = "$work/cut-data"
[grpc]
listen = "127.0.0.1:$grpc_port"
cert = "$work/ca/collector.pem"
key = "$work/ca/collector-key.pem"
client_ca = "$work/ca/ca.pem"
[alerts]
evaluation_interval = "5s"
[notify]
[notify.routing]
on_call = ["recorder"]
normal = ["recorder"]
[[notify.channel]]
name = "recorder"
type = "webhook"
url = "http://127.0.0.1:$webhook_port/alerts"
hmac_key = "fault-test-key"
TOML
wait_port "$webhook_port"
# The recorder reads what the collector sends: one test alert through the channel first.
recorder_reads_a_test_alert() {
  "$bin/vigil-collector" notify test --config "$work/cut.toml" >"$work/notify-test.log" 2>&1 &&
    grep -q '"alertname": *"notify_test"' "$work/webhook.jsonl"
}
check "the recording webhook receives the collector's test alert" recorder_reads_a_test_alert
start_collector "$work/cut.toml" "$work/cut-collector.log"
wait_port "$grpc_port"
wait_port "$proxy_port"

# Three real agents with the identities of the first three simulated hosts (from the load
# generator's certificate cache), each with its own spool, ticking every 2 s.
n_agents=3
python3 - "$work" "$n_agents" <<'PY'
import glob, json, os, sys
work, n = sys.argv[1], int(sys.argv[2])
identities = json.load(open(glob.glob(f"{work}/ca/loadgen-certs/agents-*.json")[0]))
for index, identity in enumerate(identities[:n]):
    folder = f"{work}/agent{index}"
    os.makedirs(folder, exist_ok=True)
    open(f"{folder}/agent.pem", "w").write(identity["cert_pem"])
    key = os.open(f"{folder}/agent-key.pem", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(key, identity["key_pem"].encode())
    os.close(key)
    print(identity["host"], file=open(f"{folder}/host", "w"))
PY
agent_pids=()
for index in $(seq 0 $((n_agents - 1))); do
  folder=$work/agent$index
  cat >"$folder/agent.toml" <<TOML
collector = "https://127.0.0.1:$proxy_port"
interval = "2s"
state_dir = "$folder/state"
[tls]
cert = "$folder/agent.pem"
key = "$folder/agent-key.pem"
ca = "$work/ca/ca.pem"
TOML
  VIGIL_LOG=debug "$bin/vigil-agent" run --config "$folder/agent.toml" >"$folder/agent.log" 2>&1 &
  agent_pids+=($!)
  pids+=($!)
done

sleep 20
cut_start_ms=$(date +%s%3N)
kill -USR1 "$proxy"
echo "network cut for $CUT s (scaled down from minutes)"
sleep "$CUT"
kill -USR2 "$proxy"
cut_end_ms=$(date +%s%3N)
connected_before=()
for index in $(seq 0 $((n_agents - 1))); do
  connected_before+=("$(grep -c ': connected' "$work/agent$index/agent.log")")
done
# Each agent comes back after its backoff (at most a minute, jittered): wait (at most 75 s)
# until all have connected again, then let the spooled ticks go and a few live ones follow.
all_reconnected() {
  for index in $(seq 0 $((n_agents - 1))); do
    [ "$(grep -c ': connected' "$work/agent$index/agent.log")" -gt "${connected_before[$index]}" ] ||
      return 1
  done
}
for _ in $(seq 1 75); do
  all_reconnected && break
  sleep 1
done
echo "agents connected again $(( ($(date +%s%3N) - cut_end_ms) / 1000 )) s after the restore"
sleep 10
for pid in "${agent_pids[@]}"; do
  kill -TERM "$pid" 2>/dev/null
done
for pid in "${agent_pids[@]}"; do
  wait "$pid" 2>/dev/null
done
# The last evaluations and deliveries, before the collector stops.
sleep 6
stop_collector

"$bin/vigil-collector" query --data "$work/cut-data" '{host=~"lg-host-0000[1-3]"}' --since 1h \
  --format json >"$work/cut-store.json" 2>"$work/cut-query.err"

# Per agent, from its log: sent = the series of every tick it collected, acknowledged = all
# but the batches its spool still held when it stopped; against the store: every tick on the
# 2 s grid between the agent's first and last stored one is there, once per series.
compare_agents_with_store() {
  python3 - "$work" "$n_agents" "$cut_start_ms" "$cut_end_ms" <<'PY'
import collections, json, re, sys
work, n_agents, cut_start, cut_end = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ansi = re.compile(r"\x1b\[[0-9;]*m")
per_host = collections.defaultdict(dict)
for series in json.load(open(f"{work}/cut-store.json")):
    key = tuple(sorted(series["metric"].items()))
    counts = collections.Counter(round(float(t) * 1000) for t, _ in series["values"])
    per_host[series["metric"]["host"]][key] = counts
sent = acknowledged = stored = duplicates = lost = 0
problems = []
for index in range(n_agents):
    host = open(f"{work}/agent{index}/host").read().strip()
    log = ansi.sub("", open(f"{work}/agent{index}/agent.log").read())
    ticks = [int(n) for n in re.findall(r"collected seq=\d+ n_series=(\d+)", log)]
    stop = re.findall(r"agent stopped.*?unacknowledged=(\d+)|unacknowledged=(\d+).*?agent stopped", log)
    if not stop:
        problems.append(f"{host}: the agent did not log its stop")
        unacknowledged = 0
    else:
        unacknowledged = int(next(n for n in stop[-1] if n))
    acked_ticks = ticks[: len(ticks) - unacknowledged]
    series = per_host.get(host, {})
    stored_per_tick = collections.Counter()
    for counts in series.values():
        duplicates += sum(n - 1 for n in counts.values() if n > 1)
        stored_per_tick.update(counts.keys())
    grid = sorted(stored_per_tick)
    missing = []
    if grid:
        missing = [t for t in range(grid[0], grid[-1] + 1, 2000) if t not in stored_per_tick]
    during_cut = [t for t in grid if cut_start <= t <= cut_end]
    if not during_cut:
        problems.append(f"{host}: no tick from the cut was stored (nothing spooled)")
    if len(acked_ticks) != len(grid):
        problems.append(f"{host}: {len(acked_ticks)} ticks acknowledged, {len(grid)} stored")
        if missing:
            problems.append(f"{host}: {len(missing)} ticks of the grid missing, the first at {missing[0]} ms")
    elif missing:
        # As many ticks stored as collected: the gaps are ticks the agent skipped (a busy
        # machine), not ticks lost on the way.
        print(f"{host}: {len(missing)} ticks of the grid never collected (the machine was busy)")
    host_stored = sum(stored_per_tick.values()) - sum(n - 1 for c in series.values() for n in c.values() if n > 1)
    print(f"{host}: {len(ticks)} ticks collected, {len(during_cut)} from the cut stored, {unacknowledged} unacknowledged at the stop")
    sent += sum(ticks)
    acknowledged += sum(acked_ticks)
    stored += host_stored
    lost += max(sum(acked_ticks) - host_stored, 0)
print(f"sent {sent}, acknowledged {acknowledged}, stored {stored}, duplicates {duplicates}, lost {lost}")
for problem in problems[:10]:
    print(problem)
ok = acknowledged > 0 and stored == acknowledged and duplicates == 0 and lost == 0 and not problems
sys.exit(0 if ok else 1)
PY
}
check "the agents spooled through the cut and every tick is stored exactly once" \
  compare_agents_with_store

# No alert storm: a cut shorter than HostSilent's 5 minutes justifies no alert, and late
# samples must not open stale ones: no silent-host or site alert. A longer cut justifies
# one silent alert per host or site, delivered once.
no_alert_storm() {
  python3 - "$work/webhook.jsonl" "$CUT" <<'PY'
import collections, json, sys
silent_justified = int(sys.argv[2]) >= 300
firing = []
for line in open(sys.argv[1]):
    try:
        message = json.loads(line)
    except ValueError:
        continue
    for alert in message.get("alerts", []):
        if alert.get("status") == "firing" and alert.get("labels", {}).get("alertname") != "notify_test":
            labels = alert.get("labels", {})
            firing.append((labels.get("alertname", "?"), labels.get("host", "")))
print(f"{len(firing)} firing alert deliveries recorded: {sorted(set(firing))}")
silent = collections.Counter(f for f in firing if "Silent" in f[0] or "Site" in f[0])
if silent and not silent_justified:
    sys.exit(1)
sys.exit(1 if any(n > 1 for n in silent.values()) else 0)
PY
}
check "no silent-host alert or alert storm after the cut" no_alert_storm

finish
