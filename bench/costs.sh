#!/usr/bin/env bash
# What each operation costs each tier, as a table: the CPU time of the
# gateway, the router and Redis, and the Redis commands, per connect, join,
# publish (and per delivery), leave, presence join, history join and close
# (loadgen costs: one call at a time, as a PHP backend makes them). Run on
# one Redis, then on a three-master Redis Cluster (the router's keys spread
# over its masters: Redis CPU is the three masters' sum).
#   bench/costs.sh BIN_DIR [CONNECTIONS] [STORES]
# STORES: "redis cluster" (default), or one of them, or "memory".
# LOADGEN=PATH drives another build's binaries with this loadgen; CALLERS=N
# makes the membership calls N at a time (1: one after another).
# e.g. cargo build --release && bench/costs.sh target/release 2000
set -euo pipefail
bin=$1; conns=${2:-2000}; stores=${3:-redis cluster}
loadgen=${LOADGEN:-$bin/loadgen}
work=$(mktemp -d)
. "$(dirname "$0")/redis.sh"
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

run() { # store
    local store=$1 url="" redis_args=()
    REDIS_PIDS=()
    case $store in
        redis) start_redis 28379 "$work" ;;
        cluster) start_redis_cluster 28400 "$work" ;;
    esac
    [ "$store" = memory ] || { url=$REDIS_URL; read -ra redis_args <<< "$(redis_watch_args | tr '\n' ' ')"; }
    "$bin/router" --listen 127.0.0.1:28010 --http 127.0.0.1:28011 ${url:+--redis "$url"} \
        --history costs-h-=10 2> "$work/router-$store.log" &
    local router=$!
    "$bin/echo-app" --listen 127.0.0.1:28002 --greet 2> "$work/echo.log" &
    local echo=$!
    sleep 0.5
    "$bin/gateway" --listen 127.0.0.1:28005 --backend 127.0.0.1:28002 --router 127.0.0.1:28010 \
        --max-message-rate 0 --max-connect-rate-per-ip 0 2> "$work/gateway-$store.log" &
    local gateway=$!
    sleep 1
    echo "== $store: loadgen --url ws://127.0.0.1:28005/ costs --router 127.0.0.1:28011 -c $conns --callers ${CALLERS:-1}" >&2
    "$loadgen" --json --url ws://127.0.0.1:28005/ costs --router 127.0.0.1:28011 -c "$conns" --callers "${CALLERS:-1}" \
        --gateway-pid $gateway --router-pid $router "${redis_args[@]}" > "$work/$store.json"
    kill $gateway $echo $router "${REDIS_PIDS[@]}" 2>/dev/null || true
    wait $gateway $echo $router "${REDIS_PIDS[@]}" 2>/dev/null || true
    echo "$store $(cat "$work/$store.json")"
}

for store in $stores; do
    run "$store"
done | python3 "$(dirname "$0")/costs_table.py"
