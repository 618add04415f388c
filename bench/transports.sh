#!/usr/bin/env bash
# The gateway's cost by transport, in one run on one release build: the
# same fan-out (one gateway, 5,000 members, 20 publishes of 100 B), echo
# (100 connections x 64 B, 8 s) and idle sessions (19,000, on a fresh
# gateway, as the allocator would otherwise reuse what the others freed)
# over WebSocket and over SSE (an event stream, a post per message, as fk.js falls back
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
    python3 bench/line.py fanout "$scheme" "$out"
    g0=$(cpu $gw)
    out=$("$bin/loadgen" --json --url "$scheme://127.0.0.1:29005/" echo -c 100 -s 64 -d 8 --greeted 2>/dev/null)
    g1=$(cpu $gw)
    python3 bench/line.py echo "$scheme" "$out" $((g1 - g0)) "$tick"
    kill $gw; wait $gw 2>/dev/null || true
    "$bin/gateway" --listen 127.0.0.1:29005 --backend 127.0.0.1:29002 --router 127.0.0.1:29010 --max-connect-rate-per-ip 0 >/dev/null 2>&1 &
    gw=$!
    sleep 0.7
    out=$("$bin/loadgen" --json --url "$scheme://127.0.0.1:29005/" idle -c 19000 --pid "$gw" 2>/dev/null)
    python3 bench/line.py idle "$scheme" "$out"
    kill $gw $router $echo 2>/dev/null || true
    wait $gw $router $echo 2>/dev/null || true
}

for round in $(seq 1 "$rounds"); do
    echo "round $round"
    measure ws
    measure sse
done
