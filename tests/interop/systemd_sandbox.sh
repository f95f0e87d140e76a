#!/usr/bin/env bash
# Interop: `vigil-agent install` against a real systemd, and the agent running under the
# hardened unit. A container is booted with systemd-nspawn from this machine's own /usr (with
# a throwaway layer on top, so /usr/bin/vigil-agent can be put there), a copy of its /etc and a
# private network; inside, a test service starts a collector as root, runs `vigil-agent
# install` (system user, unit, enable --now), lets the agent report for a while, then runs
# `vigil-agent uninstall`, and powers the container off. This machine is not changed.
# Needs: systemd-container (systemd-nspawn), systemd, dbus, smartmontools; runs as root.
# Prints "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/interop/check.bash

work=$(mktemp -d)
# KEEP=1 keeps the container's findings for a look.
trap '[ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"' EXIT
# The agent's user must be able to reach nothing here but the binary it is copied from.
chmod 0755 "$work"
out="$work/results"

build() {
  cargo build --locked -p vigil-agent -p vigil-collector >"$work/build.log" 2>&1 ||
    { tail -20 "$work/build.log"; return 1; }
}
check "the agent and collector build" build

# What runs inside the container, as the only service enabled there besides the basics.
cat >"$work/inside.sh" <<'INSIDE'
#!/bin/sh
out=/vigil-test/results
cp /vigil-test/bin/vigil-agent /usr/bin/vigil-agent
enrolled() { # the files `vigil-agent enroll` would have written
  mkdir -p /etc/vigil-agent
  cp /vigil-test/vigil/agent.pem /vigil-test/vigil/agent-key.pem /vigil-test/vigil/ca.pem /etc/vigil-agent/
  sed 's/^interval = .*/interval = "1s"/' /vigil-test/vigil/agent.toml >/etc/vigil-agent/agent.toml
}
enrolled
VIGIL_LOG=info /vigil-test/bin/vigil-collector serve --config /vigil-test/vigil/collector.toml \
  >$out/collector.log 2>&1 &
collector=$!
sleep 1
/usr/bin/vigil-agent install >$out/install.log 2>&1
echo $? >$out/install.rc
sleep 10
systemctl show vigil-agent -p ActiveState -p SubState -p User >$out/show
pid=$(systemctl show -p MainPID --value vigil-agent)
grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/$pid/status >$out/proc_status
stat -c '%U %a' /var/lib/vigil-agent/spool >$out/spool_owner 2>&1
# The sleep hook as systemd-sleep runs it around a suspend.
/usr/lib/systemd/system-sleep/vigil-agent pre suspend
sleep 1
/usr/lib/systemd/system-sleep/vigil-agent post suspend
sleep 3
journalctl -u vigil-agent --no-pager -o cat >$out/journal_running
/usr/bin/vigil-agent uninstall >$out/uninstall.log 2>&1
echo $? >$out/uninstall.rc
for path in /etc/systemd/system/vigil-agent.service /usr/lib/systemd/system-sleep/vigil-agent \
  /etc/vigil-agent /var/lib/vigil-agent; do
  [ -e $path ] && echo $path
done >$out/left
getent passwd vigil-agent >$out/user_after
kill $collector
wait $collector

# Once more, and this time the machine powers off under the running agent. The collector runs
# as the shipped unit does (deploy/systemd/vigil-collector.service, set up as its header
# says), stopped only after the agent, so it hears the goodbye.
enrolled
useradd --system --home-dir /var/lib/vigil --shell /usr/sbin/nologin vigil
mkdir -p /etc/vigil
cp /vigil-test/vigil/*.pem /etc/vigil/
sed 's|^data_dir = .*|data_dir = "/var/lib/vigil"|' /vigil-test/vigil/collector.toml >/etc/vigil/collector.toml
chgrp -R vigil /etc/vigil && chmod -R g+rX /etc/vigil
cp /vigil-test/bin/vigil-collector /usr/bin/vigil-collector
cp /vigil-test/vigil-collector.service /etc/systemd/system/
mkdir -p /etc/systemd/system/vigil-collector.service.d
printf '[Unit]\nBefore=vigil-agent.service\n[Service]\nEnvironment=VIGIL_LOG=info\nStandardOutput=append:%s\nStandardError=append:%s\n' \
  $out/collector2.log $out/collector2.log >/etc/systemd/system/vigil-collector.service.d/test.conf
systemctl daemon-reload
systemctl start vigil-collector
sleep 2
systemctl show vigil-collector -p ActiveState -p SubState -p User >$out/collector_show
stat -c '%U %a' /var/lib/vigil >$out/collector_data_owner 2>&1
/usr/bin/vigil-agent install >$out/install2.log 2>&1
sleep 4
echo done >$out/finished
systemctl poweroff
INSIDE

boot() {
  mkdir -p "$out" "$work/bin"
  cp target/debug/vigil-agent target/debug/vigil-collector "$work/bin/"
  cp deploy/systemd/vigil-collector.service "$work/"
  target/debug/vigil-collector demo --data "$work/vigil" --duration 1s --grpc 127.0.0.1:7443 \
    >"$work/demo.log" 2>&1 || { tail "$work/demo.log"; return 1; }
  cp -a /etc "$work/etc"
  # Only the basics and the test start in the container: no copies of this machine's servers.
  rm -f "$work"/etc/systemd/system/{multi-user,getty,timers,default}.target.wants/*
  cat >"$work/etc/systemd/system/vigil-test.service" <<'UNIT'
[Unit]
Description=Vigil agent install test
After=multi-user.target
[Service]
Type=simple
ExecStart=/bin/sh /vigil-test/inside.sh
UNIT
  mkdir -p "$work/etc/systemd/system/multi-user.target.wants"
  ln -s /etc/systemd/system/vigil-test.service "$work/etc/systemd/system/multi-user.target.wants/"
  # nspawn keeps CAP_SYS_RAWIO from containers unless asked; the unit grants it for SMART.
  timeout 300 systemd-nspawn --quiet -D / --volatile=yes --overlay=/usr::/usr \
    --bind="$work/etc:/etc" --bind="$work:/vigil-test" --private-network \
    --capability=CAP_SYS_RAWIO --register=no --keep-unit -b >"$work/boot.log" 2>&1
  [ -e "$out/finished" ] || { echo "     the test inside did not finish:"; tail -30 "$work/boot.log"; ls "$out"; return 1; }
}
check "a container boots systemd and runs the install test" boot

installed_and_running() {
  [ "$(cat "$out/install.rc")" = 0 ] || { cat "$out/install.log"; return 1; }
  printf 'ActiveState=active\nSubState=running\nUser=vigil-agent\n' | cmp -s - <(sort "$out/show") ||
    { echo "     systemctl show:"; cat "$out/show"; cat "$out/journal_running"; return 1; }
  [ "$(cat "$out/spool_owner")" = "vigil-agent 750" ] || { cat "$out/spool_owner"; return 1; }
}
check "install creates the user, enables and starts the service; it runs as vigil-agent" installed_and_running

sandboxed() {
  # No new privileges, a seccomp filter, and no capability beyond the two for SMART.
  grep -qx $'NoNewPrivs:\t1' "$out/proc_status" && grep -qx $'Seccomp:\t2' "$out/proc_status" &&
    grep -qx $'CapEff:\t0000000000220000' "$out/proc_status" ||
    { cat "$out/proc_status"; return 1; }
}
check "the agent runs sandboxed: no new privileges, seccomp, only CAP_SYS_RAWIO and CAP_SYS_ADMIN" sandboxed

reports() {
  grep -q "agent connected" "$out/collector.log" || { tail "$out/collector.log"; return 1; }
  # systemd itself says nothing about the unit but that it started it and passed the sleep
  # hook's signals on.
  if grep -v '^[0-9]\{4\}-' "$out/journal_running" |
    grep -v -e '^Started vigil-agent.service' -e 'Sent signal SIGUSR[12] to main process'; then
    return 1
  fi
  # Anything the sandbox refuses shows up as a denied operation or a killed system call.
  if grep -Ei "operation not permitted|permission denied|bad system call|SIGSYS|panicked" \
    "$out/journal_running"; then
    return 1
  fi
  # The services check asks systemd over D-Bus from inside the sandbox.
  if grep -F 'family="services"' "$out/journal_running"; then return 1; fi
  local stored
  stored=$(target/debug/vigil-collector query --data "$work/vigil" 'system_uptime_seconds{host="vm"}' \
    --since 1h --format json 2>/dev/null |
    python3 -c 'import json, sys; print(sum(len(s["values"]) for s in json.load(sys.stdin)))')
  echo "     the agent under the sandbox stored $stored ticks"
  [ "$stored" -ge 2 ]
}
check "under the sandbox the agent reports, and systemctl and smartctl are not refused" reports

sleep_hook() {
  # Goodbye for the sleep, then a new connection after the wake-up.
  awk '/agent is going away reason=Sleep/ { said = 1 } said && /agent connected/ { back = 1 }
       END { exit !(said && back) }' "$out/collector.log" ||
    { echo "     collector log:"; cut -c1-160 "$out/collector.log" | tail; return 1; }
}
check "the systemd-sleep hook makes the agent say goodbye before a sleep and reconnect after" sleep_hook

uninstalled() {
  [ "$(cat "$out/uninstall.rc")" = 0 ] || { cat "$out/uninstall.log"; return 1; }
  grep -q "agent is going away reason=ServiceStop" "$out/collector.log" ||
    { echo "     no goodbye:"; tail "$out/collector.log"; return 1; }
  [ ! -s "$out/left" ] || { echo "     left behind:"; cat "$out/left"; return 1; }
  [ ! -s "$out/user_after" ] || { echo "     the user stays:"; cat "$out/user_after"; return 1; }
}
check "uninstall stops the service (the collector hears goodbye) and removes unit, hook, files and user" uninstalled

powered_off() {
  grep -q "agent is going away reason=Shutdown" "$out/collector2.log" ||
    { echo "     collector log:"; cut -c1-160 "$out/collector2.log" | tail; cat "$out/install2.log"; return 1; }
}
collector_unit() {
  printf 'ActiveState=active\nSubState=running\nUser=vigil\n' | cmp -s - <(sort "$out/collector_show") ||
    { echo "     systemctl show:"; cat "$out/collector_show"; tail "$out/collector2.log"; return 1; }
  [ "$(cat "$out/collector_data_owner")" = "vigil 750" ] || { cat "$out/collector_data_owner"; return 1; }
  grep -q "agent connected" "$out/collector2.log" || { tail "$out/collector2.log"; return 1; }
  # Stopped at the power-off after the agent: a clean stop that sealed the store.
  grep -q "store closed" "$out/collector2.log" || { tail "$out/collector2.log"; return 1; }
}
check "the collector's shipped unit runs it as vigil, sandboxed, and it stops cleanly at power-off" collector_unit
check "a machine powering off under the agent: the collector hears a shutdown, not a service stop" powered_off

finish
