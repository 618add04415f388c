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
. "$(dirname "$0")/../bench/redis.sh"
start_redis_cluster "$base" "$dir"
echo "--redis $REDIS_URL   (logs in $dir)"
wait
