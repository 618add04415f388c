#!/usr/bin/env bash
# The gateway's cost by transport, in one run on one release build: the
# same fan-out (one gateway, 5,000 members, 20 publishes of 100 B), echo
# (100 connections x 64 B, 8 s) and idle sessions (5,000) over WebSocket
# and over SSE (an event stream, a post per message, as fk.js falls back
# to). Prints throughput, latency, the gateway's CPU time per delivery or
# round trip (utime + stime from /proc, fair when the load tool is the
# bottleneck) and its memory per idle session.
#   cargo build --release && bench/transports.sh target/release [ROUNDS]
set -euo pipefail
bin=$1; rounds=${2:-2}
tick=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ulimit -n 20000

measure() { # scheme
    local scheme=$1
    "$bin/router" --listen 127.0.0.1:29010 --http 127.0.0.1:29011 >/dev/null 2>&1 &
    local router=$!
    "$bin/echo-app" --listen 127.0.0.1:29002 --greet >/dev/null 2>&1 &
    local echo=$!
    sleep 0.3
    "$bin/gateway" --listen 127.0.0.1:29005 --backend 127.0.0.1:29002 --router 127.0.0.1:29010 --max-message-rate 0 >/dev/null 2>&1 &
    local gw=$!
    sleep 0.7
    local g0 g1 out
    out=$("$bin/loadgen" --json --url "$scheme://127.0.0.1:29005/" fanout --router 127.0.0.1:29011 -m 5000 --messages 20 -s 100 \
        --gateway-pid "$gw" --router-pid "$router" 2>/dev/null)
    python3 - "$scheme" "$out" <<'PY'
import json, sys
label, out = sys.argv[1], json.loads(sys.argv[2])
f = out["figures"]
print(f"{label:>4} fanout: ok={out['ok']} {f['deliveries_per_s']:,.0f} deliveries/s, publish->last p50 {f['publish_to_last_delivery_p50_ms']:.1f} ms, "
      f"gateway {f['gateway_cpu_us_per_delivery']:.2f} us/delivery")
PY
    g0=$(cpu $gw)
    out=$("$bin/loadgen" --json --url "$scheme://127.0.0.1:29005/" echo -c 100 -s 64 -d 8 --greeted 2>/dev/null)
    g1=$(cpu $gw)
    python3 - "$scheme" "$out" $((g1 - g0)) "$tick" <<'PY'
import json, sys
label, out, gw, tick = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
f = out["figures"]
n = f["round_trips"]
print(f"{label:>4} echo:   ok={out['ok']} {f['round_trips_per_s']:,.0f} round trips/s, p50 {f['latency_p50_ms']:.2f} ms, p99 {f['latency_p99_ms']:.2f} ms, "
      f"gateway {gw / tick / n * 1e6:.2f} us/round trip")
PY
    out=$("$bin/loadgen" --json --url "$scheme://127.0.0.1:29005/" idle -c 5000 --pid "$gw" 2>/dev/null)
    python3 - "$scheme" "$out" <<'PY'
import json, sys
label, out = sys.argv[1], json.loads(sys.argv[2])
f = out["figures"]
print(f"{label:>4} idle:   ok={out['ok']} " + ", ".join(f"{k} {v}" for k, v in f.items() if "byte" in k or "conn" in k))
PY
    kill $gw $router $echo 2>/dev/null || true
    wait $gw $router $echo 2>/dev/null || true
}

for round in $(seq 1 "$rounds"); do
    echo "round $round"
    measure ws
    measure sse
done
