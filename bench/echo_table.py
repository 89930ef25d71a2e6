"""The table, the CSV and the chart of the echo benchmark, from the raw lines of bench/run_echo.sh.

    python3 bench/echo_table.py RAW.txt OUT.csv [CHART.png]

Each raw line is `server=NAME workload=NAME round=N` followed by the fields bench/loadgen prints.
Every figure is the median over the rounds of one server on one workload; the ratios compare a
server with the epoll floor (echo_epoll) on the same workload: `x floor` is its message rate
divided by the floor's (above 1: faster), `cpu x floor` its server CPU time per message divided
by the floor's (above 1: costlier). Rounds run every server in turn, so a round's ratio compares
runs made minutes apart at most; the brackets give the range of those per-round ratios.
"""
import csv
import statistics
import sys

WORKLOADS = ["pingpong", "small", "medium", "bulk"]
FLOOR = "epoll-floor"
FIELDS = ["msgs_per_s", "mib_per_s", "p50_us", "p99_us", "server_hwm_kib", "server_cpu_ns_per_msg"]


def parse(path):
    runs = {}
    shape = {}
    order = []
    with open(path) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            kv = dict(tok.split("=", 1) for tok in line.split() if "=" in tok)
            key = (kv["server"], kv["workload"])
            if kv["server"] not in order:
                order.append(kv["server"])
            shape[kv["workload"]] = (kv["conns"], kv["size"], kv["depth"])
            run = {k: float(kv[k]) for k in FIELDS}
            run["round"] = kv["round"]
            runs.setdefault(key, []).append(run)
    return runs, shape, order


def medians(runs):
    out = {}
    for key, rounds in runs.items():
        out[key] = {k: statistics.median(r[k] for r in rounds) for k in FIELDS}
        out[key]["rounds"] = len(rounds)
    return out


def round_ratios(runs, key, field):
    """(min, max) over the rounds of server/floor for one field, or None without the floor."""
    floor = {r["round"]: r[field] for r in runs.get((FLOOR, key[1]), [])}
    ratios = [r[field] / floor[r["round"]] for r in runs[key]
              if floor.get(r["round"], 0) > 0 and r[field] > 0]
    return (min(ratios), max(ratios)) if ratios else None


def ratio(a, b):
    return a / b if a > 0 and b > 0 else float("nan")


def rows_of(runs, med, shape, order):
    rows = []
    for w in WORKLOADS:
        if w not in shape:
            continue
        floor = med.get((FLOOR, w))
        for s in order:
            m = med.get((s, w))
            if m is None:
                continue
            conns, size, depth = shape[w]
            msgs_range = round_ratios(runs, (s, w), "msgs_per_s") or ("", "")
            cpu_range = round_ratios(runs, (s, w), "server_cpu_ns_per_msg") or ("", "")
            rows.append({
                "workload": w, "conns": conns, "size": size, "depth": depth, "server": s,
                "rounds": m["rounds"],
                "msgs_per_s": round(m["msgs_per_s"], 1),
                "mib_per_s": round(m["mib_per_s"], 2),
                "p50_us": m["p50_us"], "p99_us": m["p99_us"],
                "peak_rss_kib": int(m["server_hwm_kib"]),
                "server_cpu_ns_per_msg": round(m["server_cpu_ns_per_msg"]),
                "msgs_ratio_to_epoll_floor":
                    round(ratio(m["msgs_per_s"], floor["msgs_per_s"]), 3) if floor else "",
                "cpu_ratio_to_epoll_floor":
                    round(ratio(m["server_cpu_ns_per_msg"], floor["server_cpu_ns_per_msg"]), 3)
                    if floor else "",
                "msgs_ratio_min": round(msgs_range[0], 3) if msgs_range[0] != "" else "",
                "msgs_ratio_max": round(msgs_range[1], 3) if msgs_range[1] != "" else "",
                "cpu_ratio_min": round(cpu_range[0], 3) if cpu_range[0] != "" else "",
                "cpu_ratio_max": round(cpu_range[1], 3) if cpu_range[1] != "" else "",
            })
    return rows


def with_range(row, median_key, range_key):
    """`1.23` or, over several rounds, `1.23 (1.10-1.31)`: the median and the per-round range."""
    if row[median_key] == "":
        return "-"
    text = f"{row[median_key]:.2f}"
    if row["rounds"] > 1 and row[range_key + "_min"] != "" and row["server"] != FLOOR:
        text += f' ({row[range_key + "_min"]:.2f}-{row[range_key + "_max"]:.2f})'
    return text


def print_table(rows):
    head = ["workload (conns,size,depth)", "server", "msgs/s", "MiB/s", "p50 us", "p99 us",
            "peak RSS MiB", "CPU ns/msg", "x floor", "cpu x floor"]
    lines = []
    for r in rows:
        lat = r["depth"] == "1"
        lines.append([
            f'{r["workload"]} ({r["conns"]},{r["size"]},{r["depth"]})', r["server"],
            f'{r["msgs_per_s"]:,.0f}', f'{r["mib_per_s"]:,.1f}',
            f'{r["p50_us"]:.1f}' if lat else "-", f'{r["p99_us"]:.1f}' if lat else "-",
            f'{r["peak_rss_kib"] / 1024:.1f}', f'{r["server_cpu_ns_per_msg"]:,}',
            with_range(r, "msgs_ratio_to_epoll_floor", "msgs_ratio"),
            with_range(r, "cpu_ratio_to_epoll_floor", "cpu_ratio"),
        ])
    widths = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(head)]
    fmt = lambda cells: "| " + " | ".join(  # noqa: E731
        c.ljust(widths[i]) if i < 2 else c.rjust(widths[i]) for i, c in enumerate(cells)) + " |"
    print(fmt(head))
    print("|" + "|".join("-" * (w + 1) + (":" if i >= 2 else "-") for i, w in enumerate(widths)) + "|")
    for l in lines:
        print(fmt(l))


def draw_chart(rows, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"# no matplotlib for {sys.executable}: no chart (apt-get install python3-matplotlib)")
        return
    workloads = [w for w in WORKLOADS if any(r["workload"] == w for r in rows)]
    fig, axes = plt.subplots(len(workloads), 1, figsize=(9, 2.6 * len(workloads) + 0.6),
                             squeeze=False)
    for ax, w in zip(axes[:, 0], workloads):
        rs = [r for r in rows if r["workload"] == w]
        names = [r["server"] for r in rs]
        rates = [r["msgs_per_s"] / 1e3 for r in rs]
        colors = ["#888888" if "floor" in n else "#d62728" if n.startswith("tulip")
                  else "#1f77b4" for n in names]
        ax.barh(range(len(rs)), rates, color=colors)
        ax.set_yticks(range(len(rs)))
        ax.set_yticklabels(names, fontsize=8)
        ax.invert_yaxis()
        for i, r in enumerate(rs):
            x = r["msgs_ratio_to_epoll_floor"]
            if x != "":
                ax.text(rates[i], i, f" {x:.2f}x", va="center", fontsize=7)
        ax.set_xlim(0, max(rates) * 1.18)
        ax.set_title(f'{w}: {rs[0]["conns"]} conns, {rs[0]["size"]} B, depth {rs[0]["depth"]}',
                     fontsize=9)
        ax.set_xlabel("thousand messages/s (ratio to the epoll floor)", fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
    fig.suptitle("Echo servers, one thread each, loopback (bench/run_echo.sh)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"# chart: {path}")


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: echo_table.py RAW.txt OUT.csv [CHART.png]")
    runs, shape, order = parse(sys.argv[1])
    if not runs:
        sys.exit(f"echo_table.py: no result lines in {sys.argv[1]}")
    rows = rows_of(runs, medians(runs), shape, order)
    print_table(rows)
    with open(sys.argv[2], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        writer.writeheader()
        writer.writerows(rows)
    print(f"# csv: {sys.argv[2]}")
    if len(sys.argv) == 4:
        draw_chart(rows, sys.argv[3])


if __name__ == "__main__":
    main()
