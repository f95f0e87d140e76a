#!/usr/bin/env bash
# Alert delivery against real peers on 127.0.0.1: Debian's prometheus-alertmanager and
# Python's aiosmtpd. Installs nothing; expects
#   apt-get install -y prometheus-alertmanager python3-pip   (or python3-aiosmtpd)
#   pip install aiosmtpd
# Starts both on free loopback ports, delivers alerts through Vigil's notify code (the
# ignored cargo test collector/tests/notify_interop.rs and `vigil-collector notify test`),
# checks what arrived, stops only what it started, and ends with "N passed, M failed".
set -u

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/vigil-interop.XXXXXX")"
passed=0
failed=0
pids=()

check() { # check NAME COMMAND...
    local name="$1"
    shift
    if "$@" >"$work/check.log" 2>&1; then
        echo "ok      $name"
        passed=$((passed + 1))
    else
        echo "FAILED  $name"
        sed 's/^/        /' "$work/check.log" | tail -n 40
        failed=$((failed + 1))
    fi
}

cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null
    done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_for() { # wait_for WHAT COMMAND...: up to 30 s
    local what="$1"
    shift
    for _ in $(seq 1 150); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
    done
    echo "$what did not start; its log:" >&2
    return 1
}

missing=0
if ! command -v prometheus-alertmanager >/dev/null; then
    echo "prometheus-alertmanager is not installed (apt-get install -y prometheus-alertmanager)" >&2
    missing=1
fi
if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
    echo "aiosmtpd is not installed (pip install aiosmtpd)" >&2
    missing=1
fi
if [ "$missing" = 1 ]; then
    echo "0 passed, 1 failed"
    exit 1
fi

am_port="$(free_port)"
smtp_port="$(free_port)"
# aiosmtpd's Mailbox handler expects an existing maildir.
mkdir -p "$work/maildir/tmp" "$work/maildir/new" "$work/maildir/cur" "$work/alertmanager"

cat >"$work/alertmanager.yml" <<YAML
route:
  receiver: blackhole
receivers:
  - name: blackhole
YAML
prometheus-alertmanager \
    --config.file="$work/alertmanager.yml" \
    --storage.path="$work/alertmanager" \
    --web.listen-address="127.0.0.1:$am_port" \
    --cluster.listen-address= \
    >"$work/alertmanager.log" 2>&1 &
pids+=($!)

python3 -m aiosmtpd -n -l "127.0.0.1:$smtp_port" \
    -c aiosmtpd.handlers.Mailbox "$work/maildir" \
    >"$work/aiosmtpd.log" 2>&1 &
pids+=($!)

if ! wait_for "alertmanager" curl -fsS "http://127.0.0.1:$am_port/-/ready"; then
    cat "$work/alertmanager.log" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
if ! wait_for "aiosmtpd" python3 -c "import socket; socket.create_connection(('127.0.0.1', $smtp_port), 1).close()"; then
    cat "$work/aiosmtpd.log" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
echo "alertmanager on 127.0.0.1:$am_port, aiosmtpd on 127.0.0.1:$smtp_port"

cd "$root"
export VIGIL_INTEROP_ALERTMANAGER="http://127.0.0.1:$am_port"
export VIGIL_INTEROP_SMTP_PORT="$smtp_port"
export VIGIL_INTEROP_MAILDIR="$work/maildir"

check "outbox → Alertmanager v2 API and SMTP: firing, resolve, threading" \
    cargo test -q -p vigil-collector --test notify_interop -- --ignored --nocapture

# `notify test` with a collector.toml naming both peers. The TLS files only have to exist.
for file in collector.pem collector-key.pem ca.pem; do
    echo placeholder >"$work/$file"
done
cat >"$work/collector.toml" <<TOML
data_dir = "data"
[grpc]
cert = "collector.pem"
key = "collector-key.pem"
client_ca = "ca.pem"
[notify]
[[notify.channel]]
name = "am"
type = "alertmanager"
url = "http://127.0.0.1:$am_port"
[[notify.channel]]
name = "mail"
type = "email"
host = "127.0.0.1"
port = $smtp_port
security = "plain"
from = "Vigil <vigil@msp.example>"
to = ["oncall@msp.example"]
TOML
check "vigil-collector notify test reports every channel ok" \
    cargo run -q -p vigil-collector -- notify test --config "$work/collector.toml"

am_has_test_alert() {
    curl -fsS "http://127.0.0.1:$am_port/api/v2/alerts?filter=alertname%3D%22notify_test%22" |
        python3 -c 'import json, sys; alerts = json.load(sys.stdin); assert alerts, "no notify_test alert"; print(alerts[0]["labels"])'
}
check "Alertmanager lists the test alert" am_has_test_alert

mail_has_test_alert() {
    grep -l "Vigil test alert" "$work"/maildir/new/* >/dev/null
}
check "the maildir holds the test mail" mail_has_test_alert

# A channel that cannot be reached makes `notify test` fail, naming it.
dead_port="$(free_port)"
sed "s/port = $smtp_port/port = $dead_port/" "$work/collector.toml" >"$work/broken.toml"
notify_test_fails_for_a_dead_smtp_server() {
    if cargo run -q -p vigil-collector -- notify test --config "$work/broken.toml" >"$work/broken.out" 2>&1; then
        echo "notify test succeeded although port $dead_port is closed"
        return 1
    fi
    cat "$work/broken.out"
    grep -q "FAILED  email 'mail'" "$work/broken.out" && grep -q "ok      alertmanager 'am'" "$work/broken.out"
}
check "notify test exits non-zero and names the failing channel" notify_test_fails_for_a_dead_smtp_server

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
