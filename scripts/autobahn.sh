#!/usr/bin/env bash
# Autobahn's WebSocket compliance suite (all of its cases, permessage-deflate's included, via
# kosoku) against the gateway in front of the echo backend, which echoes
# each message as the same frame type.
#   scripts/autobahn.sh            # writes target/autobahn/ and prints a summary
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/autobahn
mkdir -p "$out"
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true' EXIT

if [ ! -x "$out/venv/bin/kosoku" ]; then
    python3 -m venv "$out/venv"
    "$out/venv/bin/pip" install -q kosoku==0.1.0
fi
# Release binaries: the compression cases take 11 minutes on debug ones.
cargo build --release --bins --locked -p gateway -p echo-app
bin=target/release
$bin/echo-app --listen 127.0.0.1:19102 2> "$out/echo.log" &
sleep 0.3
# Autobahn sends up to 16 MiB messages, floods, and compresses runs of one
# byte (past the inflate ratio): lift those limits. kosoku
# ends a case at a ping it did not expect (it answers it, as it should),
# and it takes an uncompressed message on a compressed connection for a
# string: no pings, and every message compressed.
$bin/gateway --listen 127.0.0.1:19105 --backend 127.0.0.1:19102 \
    --max-message 20000000 --outbound-queue-bytes 64000000 \
    --max-response-bytes 20000000 --deflate-min-bytes 0 \
    --ping-interval-ms 3600000 --idle-timeout-ms 7200000 \
    --max-message-rate 0 --max-pending-events 100000 --backend-timeout-ms 60000 \
    --max-inflate-rate 0 --max-inflate-ratio 0 2> "$out/gateway.log" &
sleep 0.5
"$out/venv/bin/kosoku" -p 2 -o "$out/reports" 127.0.0.1:19105 > "$out/kosoku.txt" 2>&1 || true
python3 - "$out/reports" <<'PY'
import json, pathlib, sys, collections
reports = pathlib.Path(sys.argv[1])
index = next(reports.rglob("index.json"), None)
if index is None:
    sys.exit(f"no index.json under {reports}")
cases = next(iter(json.loads(index.read_text()).values()))
tally = collections.Counter(c["behavior"] for c in cases.values())
print(f"{len(cases)} cases: " + ", ".join(f"{n} {b}" for b, n in sorted(tally.items())))
bad = {k: c["behavior"] for k, c in cases.items() if c["behavior"] not in ("OK", "NON-STRICT", "INFORMATIONAL")}
for case, behavior in sorted(bad.items()):
    print(f"  {case}: {behavior}")
sys.exit(1 if bad else 0)
PY
