"""The workloads of micro_core.cpp, under CPython's asyncio and under uvloop.

    /usr/bin/python3 bench/micro_core.py [--runtime=asyncio|uvloop|all] [--rounds=N]
                                         [--scale=F] [--only=NAME,...] [--amortized]

Prints one line per figure, in micro_core's format (lines starting with '#' are comments):

    name=call_soon runtime=asyncio ns_per_op=551.9 wall_ns_per_op=560.2 sys_ns_per_op=0.0 ...

ns_per_op is the CPU time of the running thread per operation (user + system; time other
processes take while we wait for a core is not counted), the median of the timed rounds after
warm-up rounds; wall_ns_per_op is the elapsed time, sys_ns_per_op the part of ns_per_op in the
kernel, faults_per_op the minor page faults. Each workload runs in one coroutine on a fresh loop,
in a child process of its own, and times its rounds from inside. Heap allocations are not counted
here (CPython has no cheap, exact counter); micro_core.cpp counts tulip's.

These operations take 5 to 30 times longer in Python, so the operation counts are smaller; the
batch sizes, the timer layout and the rules of each workload are the same.
"""

import argparse
import asyncio
import collections
import gc
import math
import os
import resource
import statistics
import sys
import time

BATCH = 1000
PENDING_TIMERS = 1_000_000
YIELDERS = 100


Sample = collections.namedtuple("Sample", "cpu wall sys_ns faults ops")


def thread_cpu_ns():
    return time.thread_time_ns()


class Meter:
    """Times one round: CPU time of this thread (and its part in the kernel), elapsed time,
    minor page faults."""

    def __init__(self):
        self.usage = resource.getrusage(resource.RUSAGE_THREAD)
        self.cpu = thread_cpu_ns()
        self.wall = time.perf_counter_ns()

    def stop(self, ops):
        wall = time.perf_counter_ns() - self.wall
        cpu = thread_cpu_ns() - self.cpu
        usage = resource.getrusage(resource.RUSAGE_THREAD)
        sys_ns = (usage.ru_stime - self.usage.ru_stime) * 1e9
        faults = usage.ru_minflt - self.usage.ru_minflt
        return Sample(cpu, wall, sys_ns, faults, ops)


class Bench:
    def __init__(self, runtime, rounds, warmup, scale, only, amortized):
        self.runtime = runtime
        self.amortized = amortized
        self.rounds = rounds
        self.warmup = warmup
        self.scale = scale
        self.only = only

    def scaled(self, ops, multiple_of):
        n = int(ops * self.scale)
        n -= n % multiple_of
        return max(n, multiple_of)

    def wanted(self, name):
        return not self.only or name in self.only.split(",")

    def total_rounds(self):
        return self.warmup + self.rounds

    def report(self, name, samples, skip=None, amortized=False):
        """Prints the median of the timed rounds or, amortized, their total over their ops."""
        skip = self.warmup if skip is None else skip
        timed = samples[skip:]
        fields = ("cpu", "wall", "sys_ns", "faults")
        if amortized:
            ops = sum(s.ops for s in timed)
            per_op = {f: sum(getattr(s, f) for s in timed) / ops for f in fields}
            rounds = 1
        else:
            ops = timed[-1].ops
            per_op = {f: statistics.median(getattr(s, f) / s.ops for s in timed) for f in fields}
            rounds = len(timed)
        print(f"name={name} runtime={self.runtime} ns_per_op={per_op['cpu']:.1f} "
              f"wall_ns_per_op={per_op['wall']:.1f} sys_ns_per_op={per_op['sys_ns']:.1f} "
              f"faults_per_op={per_op['faults']:.3f} ops={ops} rounds={rounds}", flush=True)

    def on_fresh_loop(self, coro_fn, *args):
        if self.runtime == "uvloop":
            import uvloop
            loop = uvloop.new_event_loop()
        else:
            loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            return loop.run_until_complete(coro_fn(loop, *args))
        finally:
            asyncio.set_event_loop(None)
            loop.close()
            gc.collect()


# --- call_soon: schedule a batch of callbacks, run them ------------------------------------------

async def call_soon_bench(loop, bench, ops, out):
    counter = [0]

    def callback():
        counter[0] += 1

    call_soon = loop.call_soon
    sleep = asyncio.sleep
    for _ in range(bench.total_rounds()):
        meter = Meter()
        for _ in range(ops // BATCH):
            for _ in range(BATCH):
                call_soon(callback)
            # Our own step goes behind the batch: the next iteration runs the batch, then us.
            await sleep(0)
        out.append(meter.stop(ops))
    assert counter[0] == ops * bench.total_rounds()


# --- create_task of an empty coroutine, run to completion ----------------------------------------

async def empty_coro():
    pass


async def create_task_bench(loop, bench, ops, out):
    create_task = loop.create_task
    for _ in range(bench.total_rounds()):
        meter = Meter()
        for _ in range(ops // BATCH):
            for _ in range(BATCH):
                last = create_task(empty_coro())
            # FIFO: when the last one is done, the whole batch is.
            await last
        out.append(meter.stop(ops))


# --- await of a Future that is already done ------------------------------------------------------

async def await_done_bench(loop, bench, ops, out):
    future = loop.create_future()
    future.set_result(1)
    total = 0
    for _ in range(bench.total_rounds()):
        meter = Meter()
        for _ in range(ops):
            total += await future
        out.append(meter.stop(ops))
    assert total == ops * bench.total_rounds()


# --- call_later + cancel with a million timers pending -------------------------------------------

def spread_delay(i, phase):
    """Delays spread evenly (golden-ratio sequence) over [1000 s, 2000 s), as in micro_core.cpp."""
    x = i * 0.6180339887498949 + phase
    return 1000.0 + 1000.0 * (x - math.floor(x))


def noop():
    pass


async def timer_bench(loop, bench, ops, pending, out):
    call_later = loop.call_later
    for i in range(pending):
        call_later(spread_delay(i, 0.0), noop)
    delays = [spread_delay(i, 0.5) for i in range(BATCH)]
    sleep = asyncio.sleep
    for _ in range(bench.total_rounds()):
        meter = Meter()
        for _ in range(ops // BATCH):
            for delay in delays:
                call_later(delay, noop).cancel()
            # Let the loop iterate, as a real program would: it drops or compacts cancelled
            # timers by its own rules.
            await sleep(0)
        out.append(meter.stop(ops))


# --- sleep(0): a task yields to the loop and is resumed ------------------------------------------

async def sleep0_bench(loop, bench, ops, out):
    sleep = asyncio.sleep
    for _ in range(bench.total_rounds()):
        meter = Meter()
        for _ in range(ops):
            await sleep(0)
        out.append(meter.stop(ops))


async def yielder(gate, yields):
    await gate
    sleep = asyncio.sleep
    for _ in range(yields):
        await sleep(0)


async def sleep0_many_bench(loop, bench, ops, out):
    for _ in range(bench.total_rounds()):
        gate = loop.create_future()
        tasks = [loop.create_task(yielder(gate, ops // YIELDERS)) for _ in range(YIELDERS)]
        await asyncio.sleep(0)  # every task starts and waits at the gate
        meter = Meter()
        gate.set_result(None)
        for task in tasks:
            await task
        out.append(meter.stop(ops))


def in_child(fn, *args):
    """Runs fn(*args) in a child process, as micro_core.cpp does: each figure starts from a fresh
    interpreter state, whatever ran before it."""
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        status = 0
        try:
            fn(*args)
        except BaseException:
            import traceback
            traceback.print_exc()
            status = 1
        finally:
            sys.stdout.flush()
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        print(f"# {fn.__name__} failed (status {status})", flush=True)
    return status == 0


def run(bench):
    name = bench.runtime
    if name == "uvloop":
        import uvloop
        version = uvloop.__version__
    else:
        version = sys.version.split()[0]
    print(f"# {name} {version} python={sys.version.split()[0]} rounds={bench.rounds} "
          f"warmup={bench.warmup}", flush=True)

    ok = True
    for name, figure in FIGURES:
        if bench.wanted(name):
            ok &= in_child(figure, bench)
    return ok


def fig_call_soon(bench):
    out = []
    bench.on_fresh_loop(call_soon_bench, bench, bench.scaled(50_000, BATCH), out)
    bench.report("call_soon", out)


def fig_create_task(bench):
    out = []
    bench.on_fresh_loop(create_task_bench, bench, bench.scaled(20_000, BATCH), out)
    bench.report("create_task", out)


def fig_await_done_future(bench):
    out = []
    bench.on_fresh_loop(await_done_bench, bench, bench.scaled(500_000, 1), out)
    bench.report("await_done_future", out)


def fig_call_later_cancel(bench):
    # As in micro_core.cpp. With --amortized: ten timed rounds of a tenth of the pending count,
    # so that the amortized figure includes exactly one compaction of asyncio's heap. Without it,
    # shorter rounds (the million timers take seconds to set up already).
    out = []
    pending = max(BATCH, int(PENDING_TIMERS * bench.scale))
    parts = 10 if bench.amortized else 20
    ops = max(BATCH, pending // parts - (pending // parts) % BATCH)
    bench.warmup, bench.rounds = 1, (10 if bench.amortized else min(bench.rounds, 7))
    bench.on_fresh_loop(timer_bench, bench, ops, pending, out)
    bench.report("call_later_cancel", out)
    if bench.amortized:
        bench.report("call_later_cancel_amortized", out, skip=1, amortized=True)


def fig_sleep0(bench):
    out = []
    bench.on_fresh_loop(sleep0_bench, bench, bench.scaled(10_000, 1), out)
    bench.report("sleep0", out)


def fig_sleep0_100tasks(bench):
    out = []
    bench.on_fresh_loop(sleep0_many_bench, bench, bench.scaled(50_000, YIELDERS), out)
    bench.report("sleep0_100tasks", out)


FIGURES = [
    ("call_soon", fig_call_soon),
    ("create_task", fig_create_task),
    ("await_done_future", fig_await_done_future),
    ("call_later_cancel", fig_call_later_cancel),
    ("sleep0", fig_sleep0),
    ("sleep0_100tasks", fig_sleep0_100tasks),
]

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", choices=["asyncio", "uvloop", "all"], default="all")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--only", default="", help="NAME,...: run only these figures")
    parser.add_argument("--amortized", action="store_true",
                        help="add call_later_cancel_amortized (a million cancellations, heap "
                             "compaction included; takes several seconds more)")
    args = parser.parse_args()
    runtimes = ["asyncio", "uvloop"] if args.runtime == "all" else [args.runtime]
    ok = True
    for runtime in runtimes:
        if runtime == "uvloop":
            try:
                import uvloop  # noqa: F401
            except ImportError:
                print("# uvloop is not installed for this interpreter "
                      f"({sys.executable}); skipping it", flush=True)
                continue
        ok &= run(Bench(runtime, max(1, args.rounds), 1, args.scale, args.only, args.amortized))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
