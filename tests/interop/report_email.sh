#!/usr/bin/env bash
# The monthly client report by email to a real SMTP server: Python's aiosmtpd on 127.0.0.1.
# Installs nothing; expects
#   pip install aiosmtpd   (or apt-get install -y python3-aiosmtpd)
# Builds a month of two clients (the ignored test a_month_for_the_interop_suite), sends the
# report with the real binary (`report --send`, the path a schedule takes: the client's
# `[report] send_to`, through the collector's email channel), and checks the mail that
# arrived: sender, recipient, subject, the summary as text, the page inline and attached.
# Ends with "N passed, M failed".
set -u

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/vigil-report-mail.XXXXXX")"
# shellcheck source=check.bash
. "$here/check.bash"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
  echo "aiosmtpd is not installed (pip install aiosmtpd)" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

cd "$root" || exit 1
cargo build --quiet --bin vigil-collector || { echo "0 passed, 1 failed"; exit 1; }
collector="$root/target/debug/vigil-collector"

VIGIL_REPORT_DATA="$work/data" cargo test --quiet -p vigil-tests --test report -- \
  --ignored --exact a_month_for_the_interop_suite >"$work/fixture.log" 2>&1 ||
  { cat "$work/fixture.log" >&2; echo "0 passed, 1 failed"; exit 1; }

# The same month for the schedule in `serve`, before `report --send` records it as sent.
cp -a "$work/data" "$work/data-scheduled"
smtp_port="$(free_port)"
mkdir -p "$work/maildir/tmp" "$work/maildir/new" "$work/maildir/cur"
python3 -m aiosmtpd -n -l "127.0.0.1:$smtp_port" -c aiosmtpd.handlers.Mailbox "$work/maildir" \
  >"$work/aiosmtpd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $smtp_port), 1).close()" \
    2>/dev/null && break
  sleep 0.1
done

"$collector" ca init --dir "$work/ca" --name "Report Mail CA" --server-name localhost >/dev/null
cat >"$work/collector.toml" <<TOML
data_dir = "data"
[grpc]
listen = "127.0.0.1:0"
cert = "ca/collector.pem"
key = "ca/collector-key.pem"
client_ca = "ca/ca.pem"

[[notify.channel]]
name = "msp-mail"
type = "email"
host = "127.0.0.1"
port = $smtp_port
security = "plain"
from = "Vigil <reports@msp.example>"
to = ["ops@msp.example"]
TOML

check "report --send mails the report" \
  "$collector" report --config "$work/collector.toml" --client north-dental --month 2026-11 \
  --out "$work/north-dental-2026-11.html" --send

# The mail as aiosmtpd stored it, read with Python's email package.
python3 - "$work/maildir/new" >"$work/mail.json" 2>"$work/mail.err" <<'PY'
import email, email.policy, json, os, sys
folder = sys.argv[1]
mails = [email.message_from_binary_file(open(os.path.join(folder, name), "rb"),
                                        policy=email.policy.default)
         for name in sorted(os.listdir(folder))]
mail = mails[0]
text = mail.get_body(("plain",)).get_content()
html = mail.get_body(("html",)).get_content()
attachments = [(part.get_filename(), part.get_content()) for part in mail.iter_attachments()]
print(json.dumps({
    "count": len(mails), "from": mail["From"], "to": mail["To"], "subject": mail["Subject"],
    "text": text, "html_has_chart": "<svg" in html,
    "attachments": [name for name, _ in attachments],
    "attachment_is_page": any("North Dental" in str(body) for _, body in attachments),
}))
PY
mail="$(cat "$work/mail.json")"
field() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2]))" "$mail" "$1" 2>/dev/null; }
check "one mail arrived" test "$(field 'd["count"]')" = 1
check "it comes from the channel's sender" test "$(field 'd["from"]')" = "Vigil <reports@msp.example>"
check "it goes to the contract's send_to" test "$(field 'd["to"]')" = "owner@north-dental.example"
check "its subject names the client and month" \
  test "$(field 'd["subject"]')" = "North Dental: IT report for November 2026"
check "its text is the summary" test "$(field '"were available" in d["text"]')" = True
check "its HTML body carries the charts" test "$(field 'd["html_has_chart"]')" = True
check "the page is attached" \
  test "$(field 'd["attachments"] == ["north-dental-2026-11.html"] and d["attachment_is_page"]')" = True
check "the run is recorded as sent" grep -q '"sent":true' "$work/data/reports/runs.jsonl"

# The schedule: `serve` (its clock on December 1st, the contract's `[report] day`) mails
# November's report by itself, through the same channel.
sed 's|^data_dir = "data"$|data_dir = "data-scheduled"|' "$work/collector.toml" \
  >"$work/collector-scheduled.toml"
check "serve mails the report on the contract's day by itself" \
  env VIGIL_REPORT_CONFIG="$work/collector-scheduled.toml" \
  cargo test --quiet -p vigil-tests --test report -- --ignored --exact \
  a_scheduled_send_for_the_interop_suite
scheduled_subjects() {
  python3 - "$work/maildir/new" <<'PY'
import email, email.policy, os, sys
folder = sys.argv[1]
for name in sorted(os.listdir(folder)):
    mail = email.message_from_binary_file(open(os.path.join(folder, name), "rb"),
                                          policy=email.policy.default)
    print(mail["To"], "|", mail["Subject"])
PY
}
check "the scheduled mail went to the contract's send_to, about November" \
  test "$(scheduled_subjects | grep -c '^owner@north-dental.example | North Dental: IT report for November 2026$')" = 2
if [ "$failed" -gt 0 ]; then
  cat "$work/mail.err" "$work/aiosmtpd.log" >&2
fi
finish
