#!/usr/bin/env bash
# Interop: the agent built for Windows (x86_64-pc-windows-gnu, Debian's MinGW-w64 as linker)
# runs under Wine and reports metrics. Needs: rustup target x86_64-pc-windows-gnu,
# gcc-mingw-w64-x86-64, wine64. Prints "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
passed=0
failed=0
check() { # name, command...
  local name=$1; shift
  if "$@"; then echo "ok   $name"; passed=$((passed + 1)); else echo "FAIL $name"; failed=$((failed + 1)); fi
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
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

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
