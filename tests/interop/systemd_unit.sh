#!/usr/bin/env bash
# Interop: systemd itself accepts the agent's and the collector's units (deploy/systemd/), and
# 'vigil-agent install --root' writes exactly that unit. Needs: systemd-analyze (systemd).
# Prints "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/interop/check.bash

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

build() {
  cargo build --locked -p vigil-agent -p vigil-collector >"$work/build.log" 2>&1 || { tail -20 "$work/build.log"; return 1; }
}
check "the agent builds" build

# systemd-analyze checks that ExecStart names an executable: point it at the built binary.
verify() {
  mkdir -p "$work/unit"
  sed "s|^ExecStart=/usr/bin/vigil-agent|ExecStart=$PWD/target/debug/vigil-agent|" \
    deploy/systemd/vigil-agent.service >"$work/unit/vigil-agent.service"
  systemd-analyze verify --man=no "$work/unit/vigil-agent.service" >"$work/verify.log" 2>&1
  # verify exits 0 on some warnings; any line it prints about the unit is a finding.
  if grep -q "vigil-agent.service" "$work/verify.log"; then cat "$work/verify.log"; return 1; fi
}
check "systemd-analyze verify finds nothing in the unit" verify

verify_collector() {
  mkdir -p "$work/unit"
  sed "s|^ExecStart=/usr/bin/vigil-collector|ExecStart=$PWD/target/debug/vigil-collector|" \
    deploy/systemd/vigil-collector.service >"$work/unit/vigil-collector.service"
  systemd-analyze verify --man=no "$work/unit/vigil-collector.service" >"$work/verify-collector.log" 2>&1
  if grep -q "vigil-collector.service" "$work/verify-collector.log"; then cat "$work/verify-collector.log"; return 1; fi
}
check "systemd-analyze verify finds nothing in the collector's unit" verify_collector

installed_unit() {
  local root="$work/root"
  mkdir -p "$root/etc/vigil-agent"
  printf 'collector = "https://127.0.0.1:7443"\n\n[tls]\ncert = "agent.pem"\nkey = "agent-key.pem"\nca = "ca.pem"\n' \
    >"$root/etc/vigil-agent/agent.toml"
  for file in agent.pem agent-key.pem ca.pem; do echo pem >"$root/etc/vigil-agent/$file"; done
  target/debug/vigil-agent install --root "$root" --no-start >/dev/null &&
    cmp "$root/etc/systemd/system/vigil-agent.service" deploy/systemd/vigil-agent.service &&
    cmp "$root/usr/lib/systemd/system-sleep/vigil-agent" deploy/systemd/vigil-agent-sleep &&
    [ -x "$root/usr/lib/systemd/system-sleep/vigil-agent" ] &&
    target/debug/vigil-agent uninstall --root "$root" >/dev/null &&
    [ -z "$(find "$root" -type f)" ]
}
check "install --root writes the unit and sleep hook, uninstall removes every file" installed_unit

# The sleep hook signals the agent's main process through systemctl: SIGUSR1 before a sleep,
# SIGUSR2 after. A systemctl stand-in on PATH records what it was asked.
sleep_hook() {
  mkdir -p "$work/bin"
  printf '#!/bin/sh\necho "$*" >>"%s"\n' "$work/systemctl.log" >"$work/bin/systemctl"
  chmod +x "$work/bin/systemctl"
  PATH="$work/bin:$PATH" sh deploy/systemd/vigil-agent-sleep pre suspend &&
    PATH="$work/bin:$PATH" sh deploy/systemd/vigil-agent-sleep post suspend &&
    printf 'kill --kill-whom=main --signal=SIGUSR1 vigil-agent.service\nkill --kill-whom=main --signal=SIGUSR2 vigil-agent.service\n' |
    cmp - "$work/systemctl.log"
}
check "the sleep hook sends SIGUSR1 before a sleep and SIGUSR2 after" sleep_hook

finish
