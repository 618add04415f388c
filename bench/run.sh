#!/usr/bin/env bash
# Builds in release, starts router + echo backend + two gateways, runs the
# standard load suite and the nginx baseline, and writes docs/BENCHMARKS.md.
#   bench/run.sh            # the whole suite (a few minutes)
#   QUICK=1 bench/run.sh    # shorter runs, for a smoke check
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true' EXIT

need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
    SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

cargo build --release --workspace --bins --locked
bin=$root/target/release
secs=${QUICK:+3}; secs=${secs:-10}
nofile=$(ulimit -Hn); ulimit -n "$nofile"
idle_conns=$(( nofile > 101000 ? 100000 : nofile - 1000 ))

$bin/router --listen 127.0.0.1:19010 --http 127.0.0.1:19011 2> "$out/router.log" &
router_pid=$!
$bin/echo-app --listen 127.0.0.1:19002 --greet 2> "$out/echo.log" &
sleep 0.3
# A benchmark saturates each connection on purpose: lift the per-connection
# message rate limit (1000/s by default), which would close them.
limits="--max-message-rate 0"
for port in 19005 19006; do
    $bin/gateway --listen 127.0.0.1:$port --backend 127.0.0.1:19002 --router 127.0.0.1:19010 $limits 2> "$out/gateway-$port.log" &
done
sleep 0.5
gw_pid=$(pgrep -f 'gateway --listen 127.0.0.1:19005' | head -1)
gw2_pid=$(pgrep -f 'gateway --listen 127.0.0.1:19006' | head -1)

run() { # name, loadgen args...
    local name=$1; shift
    echo "== $name: loadgen $*" >&2
    "$bin/loadgen" --json "$@" > "$out/$name.json"
    echo "loadgen $*" > "$out/$name.cmd"
}
one=ws://127.0.0.1:19005/
two=ws://127.0.0.1:19006/
# The machine is shared by every process of the test: the echo runs are
# repeated and the report takes the median.
for i in 1 2 3; do
    run echo64-$i --url $one echo -c 100 -s 64 -d "$secs" --greeted
    run echo1k-$i --url $one echo -c 20 -s 1024 -d "$secs" --greeted
done
run connect --url $one connect -c 10000 --concurrency 100
run fanout --url $one --url $two fanout --router 127.0.0.1:19011 -m 10000 --messages 20 -s 100 \
    --gateway-pid "$gw_pid" --gateway-pid "$gw2_pid" --router-pid "$router_pid"
# A fresh gateway, so its RSS holds only what idle connections cost.
$bin/gateway --listen 127.0.0.1:19007 --backend 127.0.0.1:19002 --router 127.0.0.1:19010 $limits 2> "$out/gateway-idle.log" &
idle_pid=$!
sleep 0.5
run idle --url ws://127.0.0.1:19007/ idle -c "$idle_conns" --pid $idle_pid

echo "== baseline: nginx + the same echo backend, wrk" >&2
mkdir -p "$out/nginx/tmp"
cp bench/nginx-echo.conf "$out/nginx/"
nginx -p "$out/nginx" -c nginx-echo.conf 2> "$out/nginx.log" &
sleep 0.5
wrk_cmd="wrk -t2 -c100 -d${secs}s --latency -s bench/post64.lua http://127.0.0.1:18080/"
for i in 1 2 3; do $wrk_cmd > "$out/wrk-$i.txt"; done

python3 bench/report.py "$out" "$wrk_cmd" "$idle_conns" "$nofile" > "$out/BENCHMARKS.md"
mv "$out/BENCHMARKS.md" docs/BENCHMARKS.md
echo "wrote docs/BENCHMARKS.md (raw results in $out)" >&2
