#!/usr/bin/env bash
# Attack script (not in CI: it needs a built binary and a few seconds of a process
# started with a low file-descriptor limit): fills certmint's descriptors with idle
# connections and reports how many accept failures were counted and how many log lines
# they produced. Loopback only.
#
#   cargo build && bash tests/attack/fd-exhaustion.sh [target/debug/certmint]
#
# Pass: a few accept failures per second (backoff up to 1 s), at most one warning plus one
# summary line per 10 s, and the server still answers /metrics.
set -euo pipefail
BIN=${1:-target/debug/certmint}
WORK=$(mktemp -d)
GRPC=127.0.0.1:18431
ADMIN=127.0.0.1:18432
(ulimit -n 64; exec "$BIN" dev --dir "$WORK/dev" --listen $GRPC --admin-listen $ADMIN) \
  >"$WORK/log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; rm -rf "$WORK"' EXIT
sleep 3
python3 - <<'PY'
import socket, time
conns = []
for _ in range(150):
    try:
        conns.append(socket.create_connection(("127.0.0.1", 18431), timeout=1))
    except OSError:
        break
print(f"idle connections opened: {len(conns)}")
time.sleep(12)
PY
echo "accept-failure log lines: $(grep -c 'accept failed\|more failed accepts' "$WORK/log")"
curl -s "http://$ADMIN/metrics" | grep -E '^certmint_grpc_(accept_errors|connections)'
