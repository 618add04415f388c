# Sourced by the bench scripts: a Redis, or a three-master Redis Cluster,
# on loopback, with no persistence. Each sets REDIS_URL (the --redis the
# routers take), REDIS_PIDS and REDIS_NODES (HOST:PORT of each master).
#   start_redis PORT DIR         start_redis_cluster BASE_PORT DIR

start_redis() {
    redis-server --port "$1" --bind 127.0.0.1 --save '' --appendonly no > "$2/redis-$1.log" 2>&1 &
    REDIS_PIDS=($!)
    REDIS_NODES=(127.0.0.1:$1)
    REDIS_URL=redis://127.0.0.1:$1
    until redis-cli -p "$1" PING > /dev/null 2>&1; do sleep 0.1; done
}

start_redis_cluster() {
    local base=$1 dir=$2 port
    REDIS_PIDS=(); REDIS_NODES=()
    for port in "$base" $((base + 1)) $((base + 2)); do
        redis-server --port "$port" --cluster-port $((port + 100)) --cluster-enabled yes \
            --cluster-config-file "$dir/nodes-$port.conf" --cluster-node-timeout 2000 \
            --save '' --appendonly no --bind 127.0.0.1 --dir "$dir" > "$dir/redis-$port.log" 2>&1 &
        REDIS_PIDS+=($!)
        REDIS_NODES+=(127.0.0.1:$port)
    done
    for port in "$base" $((base + 1)) $((base + 2)); do
        until redis-cli -p "$port" PING > /dev/null 2>&1; do sleep 0.1; done
    done
    redis-cli --cluster create "${REDIS_NODES[@]}" --cluster-yes > "$dir/cluster-create.log"
    until redis-cli -p "$base" CLUSTER INFO | grep -q cluster_state:ok; do sleep 0.1; done
    REDIS_URL=redis+cluster://$(IFS=,; echo "${REDIS_NODES[*]}")
}

# --redis-pid and --redis for loadgen, for every node started.
redis_watch_args() {
    local i
    for i in "${!REDIS_PIDS[@]}"; do
        echo --redis-pid "${REDIS_PIDS[$i]}" --redis "${REDIS_NODES[$i]}"
    done
}
