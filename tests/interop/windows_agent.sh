#!/usr/bin/env bash
# Interop: the agent built for Windows (x86_64-pc-windows-gnu, Debian's MinGW-w64 as linker)
# runs under Wine and reports metrics. Needs: rustup target x86_64-pc-windows-gnu,
# gcc-mingw-w64-x86-64, wine64. Prints "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/interop/check.bash

work=$(mktemp -d)
export WINEPREFIX="$work/wineprefix" WINEDEBUG=-all

build() {
  cargo build --locked -p vigil-agent --target x86_64-pc-windows-gnu >"$work/build.log" 2>&1 \
    || { tail -20 "$work/build.log"; return 1; }
  cp target/x86_64-pc-windows-gnu/debug/vigil-agent.exe "$work/"
}
check "the agent cross-builds for Windows" build

# Wine 8 lacks bcryptprimitives.dll!ProcessPrng, which Rust's Windows standard library
# imports; a test-only stand-in next to the .exe lets it load.
stand_in() {
  x86_64-w64-mingw32-gcc -shared -O2 -o "$work/bcryptprimitives.dll" \
    tests/interop/windows/bcryptprimitives.c tests/interop/windows/bcryptprimitives.def -ladvapi32
}
check "the ProcessPrng stand-in builds" stand_in

collect() {
  (cd "$work" && timeout 300 wine ./vigil-agent.exe collect --once --format json) \
    >"$work/collect.json" 2>"$work/collect.log" || { tail -20 "$work/collect.log"; return 1; }
  python3 - "$work/collect.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
names = {series["name"] for series in report["series"]}
assert report["inventory"]["os_name"] == "Windows", report["inventory"]
for wanted in ("system_memory_usage_bytes", "system_memory_limit_bytes", "system_uptime_seconds"):
    assert wanted in names, (wanted, sorted(names))
assert "system_load_average_1m" not in names, "Windows has no load average"
print(f"     {len(report['series'])} series from the Windows agent under Wine")
PY
}
check "vigil-agent.exe collect --once --format json runs under Wine and prints metrics" collect

# The agent as a Windows service under Wine's Service Control Manager: `install` creates and
# starts it, it reports to a collector on 127.0.0.1 and logs to a file (a service has no
# console), and `uninstall` stops it — the collector hears the goodbye — and removes it and
# every file.
collector_pid=
stop_everything() {
  [ -n "$collector_pid" ] && kill "$collector_pid" 2>/dev/null && wait "$collector_pid" 2>/dev/null
  collector_pid=
  wineserver -k 2>/dev/null
  rm -rf "$work"
}
trap stop_everything EXIT

wait_for() { # what, command...: up to 60 s
  local what=$1; shift
  for _ in $(seq 1 120); do "$@" && return 0; sleep 0.5; done
  echo "     timed out waiting until $what" >&2
  return 1
}

service() {
  cargo build --locked -p vigil-collector >"$work/build-collector.log" 2>&1 \
    || { tail -20 "$work/build-collector.log"; return 1; }
  local port; port=$(free_port)
  target/debug/vigil-collector demo --data "$work/vigil" --duration 1s --grpc "127.0.0.1:$port" \
    >"$work/demo.log" 2>&1 || { tail -20 "$work/demo.log"; return 1; }
  VIGIL_LOG=info target/debug/vigil-collector serve --config "$work/vigil/collector.toml" \
    >"$work/collector.log" 2>&1 &
  collector_pid=$!
  # Wine keeps services only while its server runs; a persistent server stands in for Windows.
  wineserver -p
  local folder="$WINEPREFIX/drive_c/ProgramData/Vigil/agent"
  mkdir -p "$folder"
  cp "$work/vigil/agent.pem" "$work/vigil/agent-key.pem" "$work/vigil/ca.pem" "$folder/"
  sed 's/^interval = .*/interval = "1s"/' "$work/vigil/agent.toml" >"$folder/agent.toml"

  (cd "$work" && timeout 120 wine ./vigil-agent.exe install) >"$work/install.log" 2>&1 \
    || { cat "$work/install.log"; return 1; }
  grep -q "installed and started" "$work/install.log" || { cat "$work/install.log"; return 1; }
  wait_for "the service reports to the collector" grep -q "agent connected" "$work/collector.log" \
    || { tail "$work/collector.log"; return 1; }
  wait_for "the service logs to its file" \
    sh -c "grep -qs 'vigil-agent service running' '$folder'/logs/vigil-agent.*.log" \
    || { ls -R "$folder"; return 1; }
  wait_for "the collector stores the service's first batch" \
    grep -q '"last_batch_ms": [0-9]' "$work/vigil/presence.json" || return 1
  (cd "$work" && timeout 120 wine ./vigil-agent.exe uninstall) >"$work/uninstall.log" 2>&1 \
    || { cat "$work/uninstall.log"; return 1; }
  grep -q "agent is going away reason=ServiceStop" "$work/collector.log" \
    || { echo "     the collector heard no goodbye"; tail "$work/collector.log"; return 1; }
  [ ! -e "$folder" ] || { echo "     uninstall left files:"; find "$folder"; return 1; }
  if timeout 60 wine sc query vigil-agent 2>/dev/null | grep -q STATE; then
    echo "     the service is still registered"; return 1
  fi
  kill "$collector_pid" && wait "$collector_pid" 2>/dev/null
  collector_pid=
  local stored
  stored=$(target/debug/vigil-collector query --data "$work/vigil" 'system_uptime_seconds{host="vm"}' \
    --since 1h --format json 2>"$work/query.log" | python3 -c 'import json, sys; print(sum(len(s["values"]) for s in json.load(sys.stdin)))')
  echo "     the Windows service stored $stored ticks of system_uptime_seconds"
  [ "$stored" -ge 1 ]
}
check "vigil-agent.exe install runs the agent as a Windows service that reports, logs to a file and uninstalls cleanly" service

finish
