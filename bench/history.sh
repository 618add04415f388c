#!/usr/bin/env bash
# What keeping a channel's history costs the router, in one run on one
# release build: loadgen late-join (publishes as fast as one kept-alive
# HTTP connection sends them, 20 members joining meanwhile) against a
# channel --history keeps and one it does not, in memory and on Redis.
# Prints publishes/s and the router's CPU time per publish (utime + stime
# from /proc). The run on the channel that keeps nothing reports errors
# (its joiners get no history): only its rate and CPU count.
#   cargo build --release && bench/history.sh target/release [ROUNDS]
set -euo pipefail
bin=$1; rounds=${2:-2}
tick=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

measure() { # store channel
    local store=$1 channel=$2 redis_args=() redis=
    if [ "$store" = redis ]; then
        redis-server --port 29379 --save '' --appendonly no >/dev/null 2>&1 &
        redis=$!
        sleep 0.3
        redis_args=(--redis redis://127.0.0.1:29379)
    fi
    "$bin/router" --listen 127.0.0.1:29010 --http 127.0.0.1:29011 --history kept-=50 "${redis_args[@]}" >/dev/null 2>&1 &
    local router=$!
    "$bin/echo-app" --listen 127.0.0.1:29002 >/dev/null 2>&1 &
    local echo=$!
    sleep 0.3
    "$bin/gateway" --listen 127.0.0.1:29005 --backend 127.0.0.1:29002 --router 127.0.0.1:29010 >/dev/null 2>&1 &
    local gw=$!
    sleep 0.7
    local r0 r1 out
    r0=$(cpu $router)
    out=$("$bin/loadgen" --json --url ws://127.0.0.1:29005/ late-join --router 127.0.0.1:29011 --channel "$channel" --kept 50 -d 8 -j 20 2>/dev/null || true)
    r1=$(cpu $router)
    python3 - "$store" "$channel" "$out" $((r1 - r0)) "$tick" <<'PY'
import json, sys
store, channel, out, ticks, tick = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
f = out["figures"]
cpu_us = ticks / tick * 1e6 / f["messages"]
print(f"{store:6} {channel:8} publishes/s {f['publishes_per_s']:>8.0f}  router CPU/publish {cpu_us:6.1f} us  errors {out['error_count']}")
PY
    kill $gw $echo $router; wait $gw $echo $router 2>/dev/null || true
    if [ -n "$redis" ]; then kill $redis; wait $redis 2>/dev/null || true; fi
}

for _ in $(seq "$rounds"); do
    for store in ${STORES:-memory redis}; do
        measure "$store" kept-a
        measure "$store" plain-a
    done
done
