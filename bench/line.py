#!/usr/bin/env python3
"""One line of a comparison from one loadgen --json report:
    bench/line.py fanout LABEL JSON
    bench/line.py echo LABEL JSON GATEWAY_CPU_TICKS CLK_TCK
    bench/line.py idle LABEL JSON
"""
import json
import sys

kind, label, out = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
f = out["figures"]
if kind == "fanout":
    print(f"{label:>4} fanout: ok={out['ok']} {f['deliveries_per_s']:,.0f} deliveries/s, "
          f"publish->last p50 {f['publish_to_last_delivery_p50_ms']:.1f} ms, "
          f"gateway {f['gateway_cpu_us_per_delivery']:.2f} us/delivery, router {f['router_cpu_us_per_delivery']:.2f} us/delivery")
elif kind == "echo":
    ticks, tick = int(sys.argv[4]), int(sys.argv[5])
    print(f"{label:>4} echo:   ok={out['ok']} {f['round_trips_per_s']:,.0f} round trips/s, p50 {f['latency_p50_ms']:.2f} ms, "
          f"p99 {f['latency_p99_ms']:.2f} ms, gateway {ticks / tick / f['round_trips'] * 1e6:.2f} us/round trip")
else:
    print(f"{label:>4} idle:   ok={out['ok']} {f['connections']} connections, {f['bytes_per_connection']} B per connection")
