#!/usr/bin/env bash
# What each operation costs each tier, as a table: the CPU time of the
# gateway, the router and Redis, and the Redis commands, per connect, join,
# publish (and per delivery), leave, presence join, history join and close
# (loadgen costs: one call at a time, as a PHP backend makes them). Run on
# one Redis, then on a three-master Redis Cluster (the router's keys spread
# over its masters: Redis CPU is the three masters' sum).
#   bench/costs.sh BIN_DIR [CONNECTIONS] [STORES]
# STORES: "redis cluster" (default), or one of them, or "memory".
# e.g. cargo build --release && bench/costs.sh target/release 2000
set -euo pipefail
bin=$1; conns=${2:-2000}; stores=${3:-redis cluster}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

run() { # store
    local store=$1 url="" redis_args=() pids=()
    case $store in
        redis)
            redis-server --port 28379 --bind 127.0.0.1 --save '' --appendonly no > "$work/redis.log" 2>&1 &
            pids+=($!)
            url=redis://127.0.0.1:28379
            redis_args=(--redis-pid "${pids[0]}" --redis 127.0.0.1:28379)
            ;;
        cluster)
            local nodes=()
            for port in 28400 28401 28402; do
                redis-server --port $port --cluster-port $((port + 100)) --cluster-enabled yes \
                    --cluster-config-file "$work/nodes-$port.conf" --cluster-node-timeout 2000 \
                    --save '' --appendonly no --bind 127.0.0.1 --dir "$work" > "$work/$port.log" 2>&1 &
                pids+=($!)
                nodes+=(127.0.0.1:$port)
                redis_args+=(--redis-pid $! --redis 127.0.0.1:$port)
            done
            for port in 28400 28401 28402; do
                until redis-cli -p $port PING > /dev/null 2>&1; do sleep 0.1; done
            done
            redis-cli --cluster create "${nodes[@]}" --cluster-yes > "$work/create.log"
            until redis-cli -p 28400 CLUSTER INFO | grep -q cluster_state:ok; do sleep 0.1; done
            url=redis+cluster://$(IFS=,; echo "${nodes[*]}")
            ;;
    esac
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
    echo "== $store: loadgen --url ws://127.0.0.1:28005/ costs --router 127.0.0.1:28011 -c $conns" >&2
    "$bin/loadgen" --json --url ws://127.0.0.1:28005/ costs --router 127.0.0.1:28011 -c "$conns" \
        --gateway-pid $gateway --router-pid $router "${redis_args[@]}" > "$work/$store.json"
    kill $gateway $echo $router "${pids[@]}" 2>/dev/null || true
    wait $gateway $echo $router "${pids[@]}" 2>/dev/null || true
    echo "$store $(cat "$work/$store.json")"
}

for store in $stores; do
    run "$store"
done | python3 "$(dirname "$0")/costs_table.py"
