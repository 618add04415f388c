#!/usr/bin/env bash
# Fan-out through a cluster on Redis, as teams run it: ROUTERS routers on
# one fresh Redis, GATEWAYS gateways each linked to every router, and
# echo-app --greet behind them. One channel of MEMBERS members spread over
# the gateways; MESSAGES publishes of 100 B as fooking's PHP client sends
# them (a connection per call, one after another), taking turns over the
# routers. Prints loadgen's report: deliveries and those out of their
# router's order, publish to last delivery, the CPU time per delivery and
# per publish of every gateway, router and Redis, and Redis commands per
# publish. A process here holds at most 20,000 descriptors, so a channel of
# more than 15,000 members is held by several loadgen processes: all but
# the publishing one run --listen-only; they all connect at once (a
# connect storm), spread over loopback source addresses. Prints each
# gateway's RSS per connection, with every member joined.
#   bench/cluster.sh BIN_DIR MEMBERS [GATEWAYS] [ROUTERS] [MESSAGES]
# STORE=cluster puts the routers on a three-master Redis Cluster (Redis CPU and commands: the masters' sum);
# MONITOR=FILE logs every Redis command there (and slows Redis); KEEP=1 keeps the logs;
# LOADGEN=PATH drives another build's binaries with this loadgen; INTERVAL_MS=N paces the publishes;
# JOIN_CALLS=N first joins members one call at a time, N calls, for the CPU time per join.
# e.g. cargo build --release && bench/cluster.sh target/release 60000 4 2
set -euo pipefail
bin=$1; members=$2; gateways=${3:-4}; routers=${4:-2}; messages=${5:-20}
loadgen=${LOADGEN:-$bin/loadgen}
per_process=15000
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
. "$(dirname "$0")/redis.sh"

case ${STORE:-redis} in
    redis) start_redis 27379 "$work" ;;
    cluster) start_redis_cluster 27400 "$work" ;;
esac
read -ra redis_args <<< "$(redis_watch_args | tr '\n' ' ')"
router_args=(); router_pids=(); one_call=()
for r in $(seq 0 $((routers - 1))); do
    "$bin/router" --listen 127.0.0.1:$((27010 + 2 * r)) --http 127.0.0.1:$((27011 + 2 * r)) \
        --redis "$REDIS_URL" 2> "$work/router-$r.log" &
    router_pids+=(--router-pid $!)
    router_args+=(--router 127.0.0.1:$((27010 + 2 * r)))
    one_call+=(--one-call 127.0.0.1:$((27010 + 2 * r)))
done
"$bin/echo-app" --listen 127.0.0.1:27002 --greet 2> "$work/echo.log" &
sleep 0.3
urls=(); gateway_pids=()
for g in $(seq 0 $((gateways - 1))); do
    "$bin/gateway" --listen 127.0.0.1:$((27100 + g)) --backend 127.0.0.1:27002 "${router_args[@]}" \
        --max-message-rate 0 --max-connect-rate-per-ip 0 2> "$work/gateway-$g.log" &
    gateway_pids+=(--gateway-pid $!)
    urls+=(--url ws://127.0.0.1:$((27100 + g))/)
done
sleep 1
[ -z "${MONITOR:-}" ] || (redis-cli -p "${REDIS_NODES[0]##*:}" monitor > "$MONITOR" &)
baseline=()
for pid in "${gateway_pids[@]}"; do
    [ "$pid" = --gateway-pid ] || baseline+=("$(awk '/VmRSS/ {print $2}' /proc/"$pid"/status)")
done

channel=cluster-$$
fanout=(fanout --router 127.0.0.1:27011 --channel "$channel" --messages "$messages" -s 100 "${one_call[@]}" --interval-ms "${INTERVAL_MS:-0}")
listeners=$(( (members - 1) / per_process ))
waits=()
# The listeners close their members when this pipe closes, after the publisher's figures.
mkfifo "$work/hold"
exec 9<> "$work/hold"
for l in $(seq 1 "$listeners"); do
    mkfifo "$work/ready-$l"
    "$loadgen" --json "${urls[@]}" "${fanout[@]}" -m "$per_process" --listen-only \
        < "$work/hold" > "$work/ready-$l" 2> "$work/listener-$l.log" 9>&- &
    waits+=($!)
done
# Their first line says their members have joined; the report follows.
# Each starts once its pipe is opened: all are opened first.
ready=()
for l in $(seq 1 "$listeners"); do
    exec {fd}< "$work/ready-$l"
    ready+=("$fd")
done
for l in $(seq 1 "$listeners"); do
    fd=${ready[$((l - 1))]}
    read -r _ <&"$fd"
    (cat <&"$fd" > "$work/listener-$l.json") 9>&- &
    waits+=($!)
done
"$loadgen" --json "${urls[@]}" "${fanout[@]}" -m $((members - listeners * per_process)) \
    "${gateway_pids[@]}" "${router_pids[@]}" "${redis_args[@]}" --settle-ms 2000 ${JOIN_CALLS:+--join-calls "$JOIN_CALLS"} \
    2> "$work/publisher.log" 9>&- | tee "$work/publisher.json"
for node in "${REDIS_NODES[@]}"; do
    echo "keys on $node: $(redis-cli -p "${node##*:}" DBSIZE), $(redis-cli -p "${node##*:}" INFO memory | grep '^used_memory:' | tr -d '\r')"
done
exec 9>&-
[ ${#waits[@]} -eq 0 ] || wait "${waits[@]}" || true
for l in $(seq 1 "$listeners"); do
    echo "listener $l:"
    cat "$work/listener-$l.json"
done
# Each gateway's RSS per connection it holds, with every member joined.
python3 - "$work/publisher.json" "$members" "$gateways" "${baseline[@]}" <<'PY'
import json, sys
figures = json.load(open(sys.argv[1]))["figures"]
members, gateways, baseline = int(sys.argv[2]), int(sys.argv[3]), [int(kib) for kib in sys.argv[4:]]
names = ["gateway"] if gateways == 1 else [f"gateway{g}" for g in range(gateways)]
per = [(figures[f"{name}_rss_kib"] - base) * 1024 / (members / gateways) for name, base in zip(names, baseline)]
print("gateway RSS per connection, bytes:", ", ".join(f"{p:.0f}" for p in per))
PY
