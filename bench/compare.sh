#!/usr/bin/env bash
# Compares two release builds in one run, alternating, on the same box:
# fan-out (one gateway, 10,000 members, 20 publishes of 100 B) and echo
# (100 connections x 64 B, 8 s), through router + echo-app + one gateway.
# Prints throughput, latency and the gateway's and router's CPU time per
# delivery (loadgen's, over the publishes alone: from the first publish to
# the last delivery, from each process's schedstat) or per round trip
# (utime + stime from /proc), which stays fair when the load tool or the
# backend is the bottleneck. The new build's loadgen drives both builds. Each round also runs the
# FastCGI hop through nginx (bench/nginx-echo.conf, wrk, 100 connections x
# 64 B) in front of the new build's echo-app, and prints nginx's CPU time per
# request, the baseline for the gateway's per round trip.
#   bench/compare.sh OLD_BIN_DIR NEW_BIN_DIR [ROUNDS]
# e.g. git worktree add /tmp/old REV && (cd /tmp/old && CARGO_TARGET_DIR=/tmp/old-target cargo build --release)
#      cargo build --release && bench/compare.sh /tmp/old-target/release target/release
set -euo pipefail
old=$1; new=$2; rounds=${3:-3}
tick=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

measure() { # bin_dir label
    local bin=$1 label=$2
    "$bin/router" --listen 127.0.0.1:29010 --http 127.0.0.1:29011 2>/dev/null &
    local router=$!
    "$bin/echo-app" --listen 127.0.0.1:29002 --greet 2>/dev/null &
    local echo=$!
    sleep 0.3
    "$bin/gateway" --listen 127.0.0.1:29005 --backend 127.0.0.1:29002 --router 127.0.0.1:29010 --max-message-rate 0 2>/dev/null &
    local gw=$!
    sleep 0.7
    local g0 g1 out
    out=$("$new/loadgen" --json --url ws://127.0.0.1:29005/ fanout --router 127.0.0.1:29011 -m 10000 --messages 20 -s 100 \
        --gateway-pid "$gw" --router-pid "$router" 2>/dev/null)
    python3 bench/line.py fanout "$label" "$out"
    g0=$(cpu $gw)
    out=$("$new/loadgen" --json --url ws://127.0.0.1:29005/ echo -c 100 -s 64 -d 8 --greeted 2>/dev/null)
    g1=$(cpu $gw)
    python3 bench/line.py echo "$label" "$out" $((g1 - g0)) "$tick"
    kill $gw $router $echo 2>/dev/null || true
    wait $gw $router $echo 2>/dev/null || true
}

nginx_baseline() { # bin_dir
    local dir
    dir=$(mktemp -d)
    mkdir -p "$dir/tmp"
    sed 's/127.0.0.1:19002/127.0.0.1:29002/; s/127.0.0.1:18080/127.0.0.1:28080/' bench/nginx-echo.conf > "$dir/nginx-echo.conf"
    "$1/echo-app" --listen 127.0.0.1:29002 2>/dev/null &
    local echo=$!
    nginx -p "$dir" -c nginx-echo.conf 2>/dev/null &
    local master=$!
    sleep 0.5
    local worker n0 n1 out
    worker=$(pgrep -P $master | head -1)
    n0=$(( $(cpu $master) + $(cpu $worker) ))
    out=$(wrk -t2 -c100 -d8s -s bench/post64.lua http://127.0.0.1:28080/)
    n1=$(( $(cpu $master) + $(cpu $worker) ))
    python3 - "$out" $((n1 - n0)) "$tick" <<'PY'
import re, sys
out, cpu, tick = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
requests = int(re.search(r"(\d+) requests in", out).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
print(f"nginx echo:   {rps:,.0f} requests/s, nginx {cpu / tick / requests * 1e6:.2f} us/request")
PY
    kill $master $echo 2>/dev/null || true
    wait $master $echo 2>/dev/null || true
    rm -rf "$dir"
}

for _ in $(seq "$rounds"); do
    measure "$old" old
    measure "$new" new
    if command -v nginx >/dev/null && command -v wrk >/dev/null; then nginx_baseline "$new"; fi
done
