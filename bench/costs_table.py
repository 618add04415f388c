"""Reads `STORE {loadgen costs JSON}` lines and prints the operation-cost
table as markdown, with each operation's ceiling on one router core and
one Redis master (or the cluster's three)."""

import json
import sys

OPS = ["connect", "join", "publish", "delivery", "leave", "presence_join", "history_join", "close"]


def cell(value):
    return "-" if value is None else f"{value:g}"


def main():
    for line in sys.stdin:
        store, _, report = line.strip().partition(" ")
        figures = json.loads(report)["figures"]
        tiers = sorted({key.split("_")[-3] for key in figures if key.endswith("_cpu_us") and key.startswith("join_")})
        redis_tiers = [t for t in tiers if t.startswith("redis")]
        print(f"\n{store}, {figures['connections']} sessions, {figures['callers']} caller(s) at once\n")
        head = ["operation", "gateway µs", "router µs", "Redis µs", "Redis commands", "ops/s here",
                "ceiling, 1 router core", "ceiling, 1 Redis core"]
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for op in OPS:
            get = lambda tier: figures.get(f"{op}_{tier}_cpu_us")
            redis = sum(get(t) or 0 for t in redis_tiers) if redis_tiers else None
            router = get("router")
            commands = figures.get(f"{op}_redis_commands")
            row = [op.replace("_", " "), cell(get("gateway")), cell(router), cell(redis and round(redis, 2)),
                   cell(commands), cell(figures.get(f"{op}_per_s")),
                   cell(router and round(1e6 / router)) if router else "-",
                   cell(round(1e6 / redis)) if redis else "-"]
            print("| " + " | ".join(row) + " |")


main()
