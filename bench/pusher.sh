#!/usr/bin/env bash
# A Pusher event's fan-out against a native publish, in one run on one
# release build: one router (memory) and one gateway serving one Pusher
# app, the echo backend behind it. Each round, MEMBERS native members
# joined through /v1/join get MESSAGES publishes of 100 B through
# /v1/publish, and MEMBERS pusher-js-protocol members (each subscribed by
# itself at /app/KEY) get MESSAGES events through the Pusher HTTP API
# (POST /apps/ID/events, signed). Prints, per run, deliveries, those out of
# order, the gateway's and router's CPU time per delivery, and publish to
# last delivery.
#   cargo build --release && bench/pusher.sh target/release [MEMBERS] [MESSAGES] [ROUNDS]
set -euo pipefail
bin=$1; members=${2:-10000}; messages=${3:-20}; rounds=${4:-3}
app=1:bench-key:bench-secret
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

"$bin/router" --listen 127.0.0.1:28010 --http 127.0.0.1:28011 --pusher-app "$app" 2> "$work/router.log" &
router=$!
"$bin/echo-app" --listen 127.0.0.1:28002 --greet 2> "$work/echo.log" &
sleep 0.3
"$bin/gateway" --listen 127.0.0.1:28005 --backend 127.0.0.1:28002 --router 127.0.0.1:28010 --pusher-app "$app" \
    --max-message-rate 0 --max-connect-rate-per-ip 0 2> "$work/gateway.log" &
gateway=$!
sleep 1

run() { # name url extra-args...
    local name=$1 url=$2; shift 2
    "$bin/loadgen" --json --url "$url" fanout --router 127.0.0.1:28011 -m "$members" --messages "$messages" -s 100 \
        --gateway-pid "$gateway" --router-pid "$router" --settle-ms 1000 "$@" 2> "$work/$name.log" > "$work/$name.json"
    python3 - "$name" "$work/$name.json" <<'PY'
import json, sys
name, f = sys.argv[1], json.load(open(sys.argv[2]))
g = f["figures"]
print(f"{name:7} deliveries {g['deliveries']:>7}  out of order {g['out_of_order']}  errors {f['error_count']}  "
      f"gateway {g['gateway_cpu_us_per_delivery']:.3f} us/delivery  router {g['router_cpu_us_per_delivery']:.3f} us/delivery  "
      f"p50 publish to last delivery {g['publish_to_last_delivery_p50_ms']} ms")
PY
}

for round in $(seq 1 "$rounds"); do
    echo "round $round"
    run native ws://127.0.0.1:28005/
    run pusher "ws://127.0.0.1:28005/app/bench-key?protocol=7" --pusher "$app" --channel "bench-$round"
done
