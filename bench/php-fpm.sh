#!/usr/bin/env bash
# php-fpm behind the gateway, with kept connections (FCGI_KEEP_CONN, one
# worker pinned to each) and with a connection per request (keep_conn=off,
# as nginx does by default), over TCP and over a unix socket: 4 static
# workers running examples/php/echo.php, loadgen echo with 20 clients for
# SECONDS. Prints round trips/s, p50/p99, and the CPU time per round trip
# of the gateway and of php-fpm (its master and workers), from /proc.
#   cargo build --release && bench/php-fpm.sh target/release [SECONDS] [ROUNDS]
set -euo pipefail
bin=$1; seconds=${2:-5}; rounds=${3:-2}
root=$(cd "$(dirname "$0")/.." && pwd)
fpm=$(ls /usr/sbin/php-fpm* | head -1)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
tick=$(getconf CLK_TCK)
cpu() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $t; }

cat > "$work/fpm.conf" <<CONF
[global]
error_log = $work/fpm.log
daemonize = no
[tcp]
user = root
group = root
listen = 127.0.0.1:26003
pm = static
pm.max_children = 4
[unix]
user = root
group = root
listen = $work/php.sock
pm = static
pm.max_children = 4
CONF
"$fpm" -y "$work/fpm.conf" -F -R &
fpm_master=$!
sleep 1

run() { # name backend
    local name=$1 backend=$2
    "$bin/gateway" --listen 127.0.0.1:26005 --backend "$backend" --param "SCRIPT_FILENAME=$root/examples/php/echo.php" \
        --max-message-rate 0 --max-connect-rate-per-ip 0 2> "$work/gateway.log" &
    local gateway=$!
    sleep 0.5
    local pids=("$fpm_master" $(pgrep -P "$fpm_master"))
    local g0 f0 g1 f1 out
    g0=$(cpu $gateway); f0=$(cpu "${pids[@]}")
    out=$("$bin/loadgen" --json --url ws://127.0.0.1:26005/ echo -c 20 -s 64 -d "$seconds" 2>/dev/null)
    g1=$(cpu $gateway); f1=$(cpu "${pids[@]}")
    kill $gateway; wait $gateway 2>/dev/null || true
    python3 - "$name" "$out" $((g1 - g0)) $((f1 - f0)) "$tick" <<'PY'
import json, sys
name, out, g, f, tick = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
r = out["figures"]
n = max(r["round_trips"], 1)
us = lambda ticks: ticks / tick * 1e6 / n
print(f"{name:18} {r['round_trips_per_s']:>7.0f} rt/s  p50 {r['latency_p50_ms']:6.2f} ms  p99 {r['latency_p99_ms']:6.2f} ms  "
      f"gateway {us(g):5.1f} us/rt  php-fpm {us(f):6.1f} us/rt  errors {out['error_count']}")
PY
}

for round in $(seq 1 "$rounds"); do
    echo "round $round"
    run "tcp kept" "127.0.0.1:26003,max_conns=4"
    run "tcp per request" "127.0.0.1:26003,keep_conn=off,max_conns=4"
    run "unix kept" "unix:$work/php.sock,max_conns=4"
    run "unix per request" "unix:$work/php.sock,keep_conn=off,max_conns=4"
done
