"""Turns the lines of micro_core and micro_core.py into one table (used by run_micro.sh).

    python3 bench/micro_table.py RAW_LINES [CSV_OUT]

RAW_LINES holds `name=... runtime=... ns_per_op=...` lines; a `# pass=N` line starts pass N of a
repeated run. For each figure and runtime the table shows the median over the passes; the ratios
are those medians divided by tulip's, with the range of the ratios measured within each pass.
"""

import statistics
import sys

LABELS = {
    "call_soon": "call_soon + run the callback",
    "create_task": "create_task(empty coro) + completion",
    "await_done_future": "await a done Future",
    "call_later_cancel": "call_later + cancel, 1M pending (median)",
    "call_later_cancel_amortized": "  same, amortized incl. heap compaction",
    "sleep0": "sleep(0) round trip, 1 task",
    "sleep0_100tasks": "sleep(0) round trip, 100 tasks",
}


def read(path):
    """samples[name][runtime] = [(pass, fields), ...], and the names in order of appearance."""
    samples, order, current = {}, [], 1
    with open(path) as lines:
        for line in lines:
            if line.startswith("# pass="):
                current = int(line.split("=", 1)[1])
                continue
            if not line.startswith("name="):
                continue
            fields = dict(kv.split("=", 1) for kv in line.split())
            name = fields["name"]
            if name.startswith("diag_"):
                continue
            if name not in samples:
                samples[name] = {}
                order.append(name)
            samples[name].setdefault(fields["runtime"], []).append((current, fields))
    return samples, order


def main():
    samples, order = read(sys.argv[1])
    csv_path = sys.argv[2] if len(sys.argv) > 2 else None
    passes = max((p for runtimes in samples.values() for lst in runtimes.values()
                  for p, _ in lst), default=1)

    def ns(name, runtime):
        lst = samples[name].get(runtime)
        return statistics.median(float(f["ns_per_op"]) for _, f in lst) if lst else None

    def ratio_range(name, runtime):
        tulip = {p: float(f["ns_per_op"]) for p, f in samples[name].get("tulip", [])}
        other = {p: float(f["ns_per_op"]) for p, f in samples[name].get(runtime, [])}
        ratios = [other[p] / tulip[p] for p in tulip if p in other and tulip[p] > 0]
        return (min(ratios), max(ratios)) if len(ratios) > 1 else None

    def fmt(x):
        return "-" if x is None else f"{x:,.1f}"

    def fmt_ratio(r, rng):
        if r is None:
            return "-"
        return f"{r:.1f}x" + (f" ({rng[0]:.1f}-{rng[1]:.1f})" if rng else "")

    header = ("figure", "tulip ns", "asyncio ns", "uvloop ns", "asyncio/tulip", "uvloop/tulip",
              "tulip allocs/op")
    table = []
    csv = ["figure,tulip_ns,asyncio_ns,uvloop_ns,asyncio_over_tulip,uvloop_over_tulip,"
           "tulip_allocs_per_op,passes"]
    for name in order:
        t, a, u = ns(name, "tulip"), ns(name, "asyncio"), ns(name, "uvloop")
        ra = a / t if a and t else None
        ru = u / t if u and t else None
        tulip_lines = samples[name].get("tulip")
        allocs = tulip_lines[-1][1].get("allocs_per_op") if tulip_lines else None
        table.append((LABELS.get(name, name), fmt(t), fmt(a), fmt(u),
                      fmt_ratio(ra, ratio_range(name, "asyncio")),
                      fmt_ratio(ru, ratio_range(name, "uvloop")), allocs or "-"))
        csv.append(",".join("" if x is None else str(x) for x in
                            (name, t, a, u, ra and round(ra, 2), ru and round(ru, 2), allocs,
                             passes)))

    widths = [max(len(str(row[i])) for row in [header] + table) for i in range(len(header))]

    def line(row):
        cells = [str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i])
                 for i, c in enumerate(row)]
        return "| " + " | ".join(cells) + " |"

    print(line(header))
    print("|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":"
                         for i, w in enumerate(widths)) + "|")
    for row in table:
        print(line(row))
    print()
    print("ns = CPU time of the benchmark thread per operation, median of the timed rounds"
          + (f", then median of {passes} passes; (a-b) = range of the ratios within a pass."
             if passes > 1 else "."))
    print("Ratios above 1 mean tulip is faster. On a shared machine, trust the ratios, not the "
          "ns.")
    if csv_path:
        with open(csv_path, "w") as out:
            out.write("\n".join(csv) + "\n")


if __name__ == "__main__":
    main()
