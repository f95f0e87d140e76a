#!/usr/bin/env bash
# Interop: the agent's Debian package, built by cargo-deb from agent/Cargo.toml's metadata,
# holds what it should and installs and purges cleanly with the real dpkg: the system user
# and state folder appear on install, and nothing of the agent is left after a purge.
# Needs: cargo-deb, dpkg, adduser; runs as root. Prints "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/interop/check.bash

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
deb="$work/vigil-agent.deb"

# The test build is packaged: what is checked here is the package, not the optimiser.
build() {
  cargo build --locked -p vigil-agent >"$work/build.log" 2>&1 &&
    cargo deb -p vigil-agent --profile dev --no-build -o "$deb" >>"$work/build.log" 2>&1 ||
    { tail -20 "$work/build.log"; return 1; }
}
check "cargo deb builds the agent's package" build

contents() {
  dpkg-deb -c "$deb" | awk '{ print $1, $6 }' >"$work/contents"
  local wanted
  for wanted in "-rwxr-xr-x ./usr/bin/vigil-agent" \
    "-rw-r--r-- ./lib/systemd/system/vigil-agent.service" \
    "-rwxr-xr-x ./usr/lib/systemd/system-sleep/vigil-agent" \
    "-rw-r--r-- ./usr/share/doc/vigil-agent/agent.toml.example"; do
    grep -qxF -- "$wanted" "$work/contents" || { echo "     missing: $wanted"; cat "$work/contents"; return 1; }
  done
  cmp <(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./lib/systemd/system/vigil-agent.service) \
    deploy/systemd/vigil-agent.service &&
    dpkg-deb -f "$deb" Depends | grep -q "adduser" &&
    dpkg-deb -f "$deb" Depends | grep -q "systemd" &&
    dpkg-deb -I "$deb" postinst prerm postrm >/dev/null
}
check "the package holds the binary, the unit, the sleep hook, the example config and its scripts" contents

install_and_purge() {
  if dpkg -s vigil-agent >/dev/null 2>&1 || getent passwd vigil-agent >/dev/null; then
    echo "     this machine already has a vigil-agent package or user; not touching it"
    return 1
  fi
  dpkg -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; return 1; }
  local ok=0
  getent passwd vigil-agent | grep -q ":/var/lib/vigil-agent:/usr/sbin/nologin$" || { echo "     no system user"; ok=1; }
  [ "$(stat -c '%U:%G %a' /var/lib/vigil-agent)" = "vigil-agent:vigil-agent 750" ] || { echo "     state folder: $(stat -c '%U:%G %a' /var/lib/vigil-agent)"; ok=1; }
  /usr/bin/vigil-agent --version >/dev/null || { echo "     the installed binary does not run"; ok=1; }
  dpkg --purge vigil-agent >>"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; return 1; }
  getent passwd vigil-agent >/dev/null && { echo "     the user survived the purge"; ok=1; }
  local path
  for path in /usr/bin/vigil-agent /var/lib/vigil-agent /etc/vigil-agent \
    /lib/systemd/system/vigil-agent.service /usr/lib/systemd/system-sleep/vigil-agent; do
    [ -e "$path" ] && { echo "     left after purge: $path"; ok=1; }
  done
  return $ok
}
check "dpkg installs it (system user, private state folder) and a purge leaves nothing" install_and_purge

finish
