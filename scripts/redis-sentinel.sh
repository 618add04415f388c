#!/usr/bin/env bash
# A local Sentinel group on loopback, as e2e/tests/redis_failover.rs starts
# it: a master, one replica and three Sentinels (quorum 2, down after 1 s).
#   scripts/redis-sentinel.sh [BASE_PORT]   (default 26000: master BASE,
#   replica BASE+1, sentinels BASE+10..12); Ctrl-C stops them all.
# Prints the --redis URL for the router and chat-app. To see a failover:
#   redis-cli -p BASE DEBUG SLEEP 30   (or kill -9 the master)
set -euo pipefail
base=${1:-26000}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
common=(--save "" --appendonly no --bind 127.0.0.1 --dir "$dir")
redis-server --port "$base" "${common[@]}" > "$dir/master.log" 2>&1 &
redis-server --port $((base + 1)) "${common[@]}" --replicaof 127.0.0.1 "$base" > "$dir/replica.log" 2>&1 &
hosts=()
for i in 0 1 2; do
    port=$((base + 10 + i))
    cat > "$dir/sentinel-$i.conf" <<CONF
port $port
bind 127.0.0.1
dir $dir
sentinel monitor mymaster 127.0.0.1 $base 2
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 5000
CONF
    redis-server "$dir/sentinel-$i.conf" --sentinel > "$dir/sentinel-$i.log" 2>&1 &
    hosts+=("127.0.0.1:$port")
done
echo "--redis redis+sentinel://$(IFS=,; echo "${hosts[*]}")/mymaster   (logs in $dir)"
wait
