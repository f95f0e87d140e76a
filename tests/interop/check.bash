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

finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
