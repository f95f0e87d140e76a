# Sourced by the interop scripts (not run on its own): named checks that count what passed,
# and the closing "N passed, M failed" line whose exit status is the suite's verdict.
passed=0
failed=0

check() { # name, command...
  local name=$1
  shift
  if "$@"; then
    echo "ok   $name"
    passed=$((passed + 1))
  else
    echo "FAIL $name"
    failed=$((failed + 1))
  fi
}

# A TCP port free on 127.0.0.1 at the moment of asking.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# A webhook receiver on 127.0.0.1:PORT that appends each request's body, on one line, to
# FILE and answers 200. Start it with `&` and keep $! to stop it (exec makes that pid the
# receiver itself, not a shell waiting on it).
record_webhook() { # port, file
  exec python3 -c '
import http.server, sys
class Record(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(sys.argv[2], "ab") as out:
            out.write(body.replace(b"\n", b" ") + b"\n")
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Record).serve_forever()
' "$1" "$2"
}

finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
