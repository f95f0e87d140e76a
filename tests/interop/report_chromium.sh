#!/usr/bin/env bash
# The monthly client report in a real browser: Debian's chromium driven by chromium-driver
# (W3C WebDriver over HTTP on 127.0.0.1, from Python's standard library). Installs nothing;
# expects
#   apt-get install -y chromium chromium-driver
# Builds a month of two clients (the ignored test a_month_for_the_interop_suite), makes the
# report with the real binary (HTML, and PDF through `--pdf`), opens it headless with the
# network cut, and checks: no console message, nothing loaded besides the page itself, the
# charts drawn. A screenshot and PDF prints are kept under target/report-interop/ as CI
# artifacts. Ends with "N passed, M failed".
set -u

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/vigil-report.XXXXXX")"
artifacts="$root/target/report-interop"
# shellcheck source=check.bash
. "$here/check.bash"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

chromium_bin="$(command -v chromium || command -v chromium-browser || true)"
driver_bin="$(command -v chromedriver || true)"
if [ -z "$chromium_bin" ] || [ -z "$driver_bin" ]; then
  echo "chromium and chromium-driver are not installed (apt-get install -y chromium chromium-driver)" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

cd "$root" || exit 1
cargo build --quiet --bin vigil-collector || { echo "0 passed, 1 failed"; exit 1; }
collector="$root/target/debug/vigil-collector"
mkdir -p "$artifacts"

# The month, and a collector config that reads it.
VIGIL_REPORT_DATA="$work/data" cargo test --quiet -p vigil-tests --test report -- \
  --ignored --exact a_month_for_the_interop_suite >"$work/fixture.log" 2>&1 ||
  { cat "$work/fixture.log" >&2; echo "0 passed, 1 failed"; exit 1; }
"$collector" ca init --dir "$work/ca" --name "Report Interop CA" --server-name localhost >/dev/null
cat >"$work/collector.toml" <<TOML
data_dir = "data"
[grpc]
listen = "127.0.0.1:0"
cert = "ca/collector.pem"
key = "ca/collector-key.pem"
client_ca = "ca/ca.pem"
TOML

page="$artifacts/north-dental-2026-11.html"
check "report writes the page and a PDF through headless Chromium" \
  "$collector" report --config "$work/collector.toml" --client north-dental --month 2026-11 \
  --out "$page" --pdf "$artifacts/north-dental-2026-11.pdf"
check "the PDF is a PDF" bash -c "head -c 5 '$artifacts/north-dental-2026-11.pdf' | grep -q '%PDF-'"

driver_port="$(free_port)"
"$driver_bin" --port="$driver_port" --allowed-ips=127.0.0.1 >"$work/chromedriver.log" 2>&1 &
pids+=($!)

# One WebDriver session: open the page offline, read the console, measure, screenshot, print.
python3 - "$driver_port" "$page" "$artifacts" "$chromium_bin" >"$work/browser.out" 2>&1 <<'PY'
import base64, json, sys, time, urllib.request
port, page, artifacts, binary = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
base = f"http://127.0.0.1:{port}"

def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["value"]

for _ in range(100):
    try:
        call("GET", "/status")
        break
    except Exception:
        time.sleep(0.1)

session = call("POST", "/session", {"capabilities": {"alwaysMatch": {
    "browserName": "chrome",
    "goog:loggingPrefs": {"browser": "ALL"},
    "goog:chromeOptions": {"binary": binary, "args": [
        "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1100,1400",
        # Nothing may come from the network: every host name fails to resolve.
        "--host-resolver-rules=MAP * ~NOTFOUND"]}}}})["sessionId"]
s = f"/session/{session}"
try:
    call("POST", s + "/url", {"url": "file://" + page})
    facts = call("POST", s + "/execute/sync", {"script": """
        return {
          title: document.title,
          svgs: document.querySelectorAll('svg').length,
          bars: document.querySelectorAll('svg rect').length,
          resources: performance.getEntriesByType('resource').map(r => r.name),
          scripts: document.scripts.length,
          width: document.documentElement.scrollWidth,
          height: document.documentElement.scrollHeight,
        };""", "args": []})
    console = call("POST", s + "/se/log", {"type": "browser"})
    call("POST", s + "/window/rect", {"width": 1100, "height": min(facts["height"] + 120, 8000)})
    with open(f"{artifacts}/north-dental-2026-11.png", "wb") as out:
        out.write(base64.b64decode(call("GET", s + "/screenshot")))
    for paper, size in (("a4", (21.0, 29.7)), ("letter", (21.59, 27.94))):
        pdf = call("POST", s + "/print", {"page": {"width": size[0], "height": size[1]},
                                          "background": True})
        with open(f"{artifacts}/north-dental-2026-11-{paper}.pdf", "wb") as out:
            out.write(base64.b64decode(pdf))
    print(json.dumps({"facts": facts, "console": console}))
finally:
    call("DELETE", s)
PY
browser_status=$?
check "the browser session ran" test "$browser_status" -eq 0
result="$(tail -1 "$work/browser.out")"
fact() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2]))" "$result" "$1" 2>/dev/null; }
check "the page renders with no console message" test "$(fact 'len(d["console"])')" = 0
check "the page loads nothing but itself" test "$(fact 'len(d["facts"]["resources"])')" = 0
check "the page runs no script" test "$(fact 'd["facts"]["scripts"]')" = 0
check "the availability chart is drawn" test "$(fact 'd["facts"]["bars"] >= 4')" = True
check "the page fits the window's width" test "$(fact 'd["facts"]["width"] <= 1100')" = True
check "a screenshot is kept" test -s "$artifacts/north-dental-2026-11.png"
check "an A4 print is kept" bash -c "head -c 5 '$artifacts/north-dental-2026-11-a4.pdf' | grep -q '%PDF-'"
check "a Letter print is kept" bash -c "head -c 5 '$artifacts/north-dental-2026-11-letter.pdf' | grep -q '%PDF-'"
if [ "$failed" -gt 0 ]; then
  cat "$work/browser.out" "$work/chromedriver.log" >&2
fi
finish
