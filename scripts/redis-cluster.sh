#!/usr/bin/env bash
# A local three-master Redis Cluster on loopback, as
# e2e/tests/redis_cluster.rs makes it (redis-cli --cluster create).
#   scripts/redis-cluster.sh [BASE_PORT]   (default 27000: nodes BASE..BASE+2,
#   their cluster bus BASE+100..BASE+102);
#   Ctrl-C stops them all. Prints the --redis URL for the router and chat-app.
# To move slots of the router's keys (hash tags {fk:N}, 16 shards) while traffic flows:
#   redis-cli --cluster reshard 127.0.0.1:BASE
set -euo pipefail
base=${1:-27000}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
nodes=()
for port in "$base" $((base + 1)) $((base + 2)); do
    redis-server --port "$port" --cluster-port $((port + 100)) --cluster-enabled yes --cluster-config-file "$dir/nodes-$port.conf" \
        --cluster-node-timeout 2000 --save "" --appendonly no --bind 127.0.0.1 --dir "$dir" > "$dir/$port.log" 2>&1 &
    nodes+=("127.0.0.1:$port")
done
for port in "$base" $((base + 1)) $((base + 2)); do
    until redis-cli -p "$port" PING > /dev/null 2>&1; do sleep 0.1; done
done
redis-cli --cluster create "${nodes[@]}" --cluster-yes > "$dir/create.log"
until redis-cli -p "$base" CLUSTER INFO | grep -q cluster_state:ok; do sleep 0.1; done
echo "--redis redis+cluster://$(IFS=,; echo "${nodes[*]}")   (logs in $dir)"
wait
