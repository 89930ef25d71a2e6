// micro_core: the core microbenchmarks of tulip's event loop.
//
// Prints one line per figure, machine-readable (key=value, space separated; lines starting with
// '#' are comments):
//
//     name=call_soon runtime=tulip ns_per_op=39.4 allocs_per_op=1.00 wall_ns_per_op=57.5
//         sys_ns_per_op=0.0 faults_per_op=0.000 ops=200000 rounds=7
//
// ns_per_op is the CPU time of the benchmark's thread (user + system) per operation: on a shared
// machine it does not count the time other processes ran while we waited for a core, as elapsed
// time (wall_ns_per_op) does. sys_ns_per_op is its part in the kernel, faults_per_op the minor
// page faults, allocs_per_op the heap allocations, counted by the global operator new replaced
// below (this binary, this thread). Every figure is the median over the timed rounds, after
// warm-up rounds. Each workload runs inside one coroutine on a fresh loop, in a child process of
// its own, and times its rounds from inside, so that entering and leaving run_until_complete is
// not measured. bench/micro_core.py runs the same workloads under CPython's asyncio and uvloop;
// bench/run_micro.sh prints the three side by side. bench/README.md says what each figure is.
//
// Options:
//   --rounds=N         timed rounds per figure (default 7)
//   --scale=F          multiply every operation count by F (default 1; 0.1 for a quick look)
//   --only=NAME,...    run only these figures (diagnostic ones included)
//   --amortized        add call_later_cancel_amortized: a million call_later+cancel pairs
//                      against the million pending timers, heap compaction included
//   --diagnose         also time the pieces of create_task (see docs/performance.md)
//   --malloc-defaults  leave glibc's trim threshold alone (see main())
//   --no-fork          run every figure in this process (for profilers)
// The backend is the loop's default; TULIP_BACKEND=epoll|io_uring|poll|select picks another.
#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include <malloc.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <time.h>

#include "tulip/asyncio.hpp"

// --- counting allocator ----------------------------------------------------------------------
//
// Counts the allocations made on the benchmark's own thread (thread_local: no atomic operation on
// the measured paths, and no count of what another thread might allocate).

namespace {
thread_local std::uint64_t t_allocations = 0;
thread_local std::uint64_t t_last_size = 0;  // of the last allocation (--diagnose reads it)

void* counted_malloc(std::size_t n) noexcept {
    ++t_allocations;
    t_last_size = n;
    return std::malloc(n == 0 ? 1 : n);
}
void* counted_aligned(std::size_t n, std::align_val_t al) noexcept {
    ++t_allocations;
    std::size_t alignment = std::max(static_cast<std::size_t>(al), sizeof(void*));
    void* p = nullptr;
    if (::posix_memalign(&p, alignment, n == 0 ? 1 : n) != 0) return nullptr;
    return p;
}
}  // namespace

void* operator new(std::size_t n) {
    if (void* p = counted_malloc(n)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
    if (void* p = counted_malloc(n)) return p;
    throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted_malloc(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted_malloc(n); }
void* operator new(std::size_t n, std::align_val_t al) {
    if (void* p = counted_aligned(n, al)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t al) {
    if (void* p = counted_aligned(n, al)) return p;
    throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t al, const std::nothrow_t&) noexcept {
    return counted_aligned(n, al);
}
void* operator new[](std::size_t n, std::align_val_t al, const std::nothrow_t&) noexcept {
    return counted_aligned(n, al);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }

namespace {

namespace asyncio = tulip::asyncio;
using Clock = std::chrono::steady_clock;

// --- options and reporting -------------------------------------------------------------------

struct Options {
    int rounds = 7;
    int warmup = 2;
    double scale = 1.0;
    std::string only;
    bool diagnose = false;
    bool malloc_defaults = false;
    bool amortized = false;
    bool fork = true;
};
Options g_options;

std::size_t scaled(std::size_t ops, std::size_t multiple_of) {
    auto n = static_cast<std::size_t>(static_cast<double>(ops) * g_options.scale);
    n -= n % multiple_of;
    return std::max(n, multiple_of);
}

// One timed round: a stretch of `ops` operations.
struct Sample {
    double ns = 0;       // CPU time of this thread (user + system)
    double wall_ns = 0;  // elapsed time
    std::uint64_t allocations = 0;
    double sys_ns = 0;  // the part of `ns` spent in the kernel
    long faults = 0;    // minor page faults: memory touched for the first time, or again after
                        // the allocator gave it back
    std::size_t ops = 0;
};

// The CPU time this thread has used, in ns. On a shared machine the elapsed time of a round
// includes whatever ran while we were descheduled; the thread's CPU time does not.
double thread_cpu_ns() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

struct Usage {
    double sys_ns;
    long faults;
};
Usage thread_usage() noexcept {
    rusage usage{};
    ::getrusage(RUSAGE_THREAD, &usage);
    return {static_cast<double>(usage.ru_stime.tv_sec) * 1e9 +
                static_cast<double>(usage.ru_stime.tv_usec) * 1e3,
            usage.ru_minflt};
}

// Starts counting when made; stop() records the round.
class Meter {
public:
    Meter()
        : allocations_(t_allocations),
          usage_(thread_usage()),
          cpu_start_(thread_cpu_ns()),
          start_(Clock::now()) {}
    Sample stop(std::size_t ops) const {
        auto end = Clock::now();
        double cpu = thread_cpu_ns() - cpu_start_;
        Sample s;
        s.ns = cpu;
        s.wall_ns = std::chrono::duration<double, std::nano>(end - start_).count();
        s.allocations = t_allocations - allocations_;
        Usage usage = thread_usage();
        s.sys_ns = usage.sys_ns - usage_.sys_ns;
        s.faults = usage.faults - usage_.faults;
        s.ops = ops;
        return s;
    }

private:
    std::uint64_t allocations_;
    Usage usage_;
    double cpu_start_;
    Clock::time_point start_;
};

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Prints the median of the timed rounds (the first g_options.warmup samples are warm-up).
void report(const char* name, const std::vector<Sample>& samples) {
    std::vector<double> ns, wall, sys, allocations, faults;
    for (std::size_t i = static_cast<std::size_t>(g_options.warmup); i < samples.size(); ++i) {
        ns.push_back(samples[i].ns / static_cast<double>(samples[i].ops));
        wall.push_back(samples[i].wall_ns / static_cast<double>(samples[i].ops));
        sys.push_back(samples[i].sys_ns / static_cast<double>(samples[i].ops));
        faults.push_back(static_cast<double>(samples[i].faults) /
                         static_cast<double>(samples[i].ops));
        allocations.push_back(static_cast<double>(samples[i].allocations) /
                              static_cast<double>(samples[i].ops));
    }
    std::printf(
        "name=%s runtime=tulip ns_per_op=%.1f allocs_per_op=%.2f wall_ns_per_op=%.1f "
        "sys_ns_per_op=%.1f faults_per_op=%.3f ops=%zu rounds=%zu\n",
        name, median(ns), median(allocations), median(wall), median(sys), median(faults),
        samples.back().ops, ns.size());
    std::fflush(stdout);
}

// Prints the total over the timed rounds divided by their operations (no median): for figures
// whose cost comes in rare lumps that a median would hide.
void report_amortized(const char* name, const std::vector<Sample>& samples, std::size_t skip) {
    double ns = 0, wall = 0, sys = 0, allocations = 0, faults = 0, ops = 0;
    for (std::size_t i = skip; i < samples.size(); ++i) {
        ns += samples[i].ns;
        wall += samples[i].wall_ns;
        sys += samples[i].sys_ns;
        faults += static_cast<double>(samples[i].faults);
        allocations += static_cast<double>(samples[i].allocations);
        ops += static_cast<double>(samples[i].ops);
    }
    std::printf(
        "name=%s runtime=tulip ns_per_op=%.1f allocs_per_op=%.2f wall_ns_per_op=%.1f "
        "sys_ns_per_op=%.1f faults_per_op=%.3f ops=%.0f rounds=1\n",
        name, ns / ops, allocations / ops, wall / ops, sys / ops, faults / ops, ops);
    std::fflush(stdout);
}

int total_rounds() { return g_options.warmup + g_options.rounds; }

// Runs a workload's coroutine to completion on a fresh loop.
template <class MakeCoro>
void on_fresh_loop(MakeCoro make) {
    asyncio::EventLoop loop;
    asyncio::set_event_loop(&loop);
    loop.run_until_complete(make(loop));
    asyncio::set_event_loop(nullptr);
    loop.close();
}

// --- call_soon: schedule a batch of callbacks, run them ----------------------------------------

constexpr std::size_t kBatch = 1000;

asyncio::Coro<> call_soon_bench(asyncio::EventLoop& loop, std::size_t ops,
                                std::vector<Sample>& out) {
    std::uint64_t counter = 0;
    for (int round = 0; round < total_rounds(); ++round) {
        Meter meter;
        for (std::size_t done = 0; done < ops; done += kBatch) {
            for (std::size_t i = 0; i < kBatch; ++i) loop.call_soon([&counter] { ++counter; });
            // Our own step goes behind the batch: the next iteration runs the batch, then us.
            co_await asyncio::sleep(0);
        }
        out.push_back(meter.stop(ops));
    }
    if (counter != ops * static_cast<std::size_t>(total_rounds())) std::abort();
}

// --- create_task of an empty coroutine, run to completion --------------------------------------

asyncio::Coro<> empty_coro() { co_return; }

asyncio::Coro<> create_task_bench(asyncio::EventLoop& loop, std::size_t ops,
                                  std::vector<Sample>& out) {
    for (int round = 0; round < total_rounds(); ++round) {
        Meter meter;
        for (std::size_t done = 0; done < ops; done += kBatch) {
            auto last = loop.create_task(empty_coro());
            for (std::size_t i = 1; i < kBatch; ++i) last = loop.create_task(empty_coro());
            // FIFO: when the last one is done, the whole batch is.
            co_await last;
        }
        out.push_back(meter.stop(ops));
    }
}

// --- co_await of a Future that is already done --------------------------------------------------

asyncio::Coro<> await_done_bench(asyncio::EventLoop& loop, std::size_t ops,
                                 std::vector<Sample>& out) {
    auto future = loop.create_future<int>();
    future.set_result(1);
    std::uint64_t sum = 0;
    for (int round = 0; round < total_rounds(); ++round) {
        Meter meter;
        for (std::size_t i = 0; i < ops; ++i) sum += static_cast<std::uint64_t>(co_await future);
        out.push_back(meter.stop(ops));
    }
    if (sum != ops * static_cast<std::size_t>(total_rounds())) std::abort();
}

// --- call_later + cancel with a million timers pending -----------------------------------------

constexpr std::size_t kPendingTimers = 1'000'000;

// Delays spread evenly (golden-ratio sequence) over [1000 s, 2000 s): a new timer lands anywhere
// in the heap, as a mix of long timeouts does. micro_core.py uses the same sequences.
double spread_delay(std::size_t i, double phase) {
    double x = static_cast<double>(i) * 0.6180339887498949 + phase;
    return 1000.0 + 1000.0 * (x - std::floor(x));
}

void noop() noexcept {}

asyncio::Coro<> timer_bench(asyncio::EventLoop& loop, std::size_t ops, std::size_t pending,
                            std::vector<Sample>& out) {
    for (std::size_t i = 0; i < pending; ++i) loop.call_later(spread_delay(i, 0.0), noop);
    std::vector<double> delays(kBatch);
    for (std::size_t i = 0; i < kBatch; ++i) delays[i] = spread_delay(i, 0.5);
    for (int round = 0; round < total_rounds(); ++round) {
        Meter meter;
        for (std::size_t done = 0; done < ops; done += kBatch) {
            for (double delay : delays) {
                auto timer = loop.call_later(delay, noop);
                timer.cancel();
            }
            // Let the loop iterate, as a real program would: it drops or compacts cancelled
            // timers by its own rules.
            co_await asyncio::sleep(0);
        }
        out.push_back(meter.stop(ops));
    }
    if (loop.stats().timers < pending) std::abort();
}

// --- sleep(0): a task yields to the loop and is resumed -----------------------------------------

asyncio::Coro<> sleep0_bench(std::size_t ops, std::vector<Sample>& out) {
    for (int round = 0; round < total_rounds(); ++round) {
        Meter meter;
        for (std::size_t i = 0; i < ops; ++i) co_await asyncio::sleep(0);
        out.push_back(meter.stop(ops));
    }
}

// The same with 100 tasks yielding in turn: one loop iteration (and one poll of the backend)
// resumes all of them, so the figure is the resumption itself.
constexpr std::size_t kYielders = 100;

asyncio::Coro<> yielder(asyncio::Future<> gate, std::size_t yields) {
    co_await gate;
    for (std::size_t i = 0; i < yields; ++i) co_await asyncio::sleep(0);
}

asyncio::Coro<> sleep0_many_bench(asyncio::EventLoop& loop, std::size_t ops,
                                  std::vector<Sample>& out) {
    std::vector<asyncio::Task<>> tasks;
    tasks.reserve(kYielders);
    for (int round = 0; round < total_rounds(); ++round) {
        tasks.clear();
        auto gate = loop.create_future<void>();
        for (std::size_t t = 0; t < kYielders; ++t)
            tasks.push_back(loop.create_task(yielder(gate, ops / kYielders)));
        co_await asyncio::sleep(0);  // every task starts and waits at the gate
        Meter meter;                 // counts from here: resumptions only
        gate.set_result();
        for (auto& task : tasks) co_await task;
        out.push_back(meter.stop(ops));
    }
}

// --- diagnosis: the pieces of create_task --------------------------------------------------------

// Times `ops` operations done `per_call` at a time by body().
template <class F>
void time_piece(const char* name, std::size_t ops, std::size_t per_call, F&& body) {
    std::vector<Sample> samples;
    for (int round = 0; round < total_rounds(); ++round) {
        Meter meter;
        for (std::size_t i = 0; i < ops; i += per_call) body();
        samples.push_back(meter.stop(ops));
    }
    report(name, samples);
}

asyncio::Coro<> create_task_named_bench(asyncio::EventLoop& loop, std::size_t ops,
                                        std::vector<Sample>& out) {
    for (int round = 0; round < total_rounds(); ++round) {
        Meter meter;
        for (std::size_t done = 0; done < ops; done += kBatch) {
            auto last = loop.create_task(empty_coro(), "t");
            for (std::size_t i = 1; i < kBatch; ++i) last = loop.create_task(empty_coro(), "t");
            co_await last;
        }
        out.push_back(meter.stop(ops));
    }
}

// The size of an empty Coro<>'s frame, as the counting allocator sees it.
std::size_t empty_frame_size() {
    std::uint64_t before = t_allocations;
    { auto probe = empty_coro(); }
    return t_allocations == before ? 0 : static_cast<std::size_t>(t_last_size);
}

// The allocations of create_task, in the pattern the benchmark makes them: a batch of a thousand
// coroutine frames and task states alive at once, then all freed.
void diag_malloc_batch() {
    std::size_t frame_size = empty_frame_size();
    std::vector<void*> blocks(2 * kBatch);
    time_piece("diag_malloc_batch", scaled(200'000, kBatch), kBatch, [&] {
        for (std::size_t i = 0; i < kBatch; ++i) {
            blocks[2 * i] = ::operator new(frame_size);
            blocks[2 * i + 1] = ::operator new(sizeof(asyncio::detail::TaskState<void>));
        }
        asm volatile("" : : "r"(blocks.data()) : "memory");
        for (void* p : blocks) ::operator delete(p);
    });
}

// The default name, "Task-<n>".
void diag_task_name() {
    time_piece("diag_task_name", scaled(200'000, kBatch), 1, [] {
        static std::uint64_t number = 0;
        auto name = asyncio::detail::format_task_name(++number);
        asm volatile("" : : "r"(name.data()) : "memory");
    });
}

// create_task with a name given (no "Task-<n>" formatting).
void diag_create_task_named() {
    std::vector<Sample> samples;
    std::size_t ops = scaled(200'000, kBatch);
    on_fresh_loop(
        [&](asyncio::EventLoop& loop) { return create_task_named_bench(loop, ops, samples); });
    report("diag_create_task_named", samples);
}

// --- the figures -------------------------------------------------------------------------------

void fig_call_soon() {
    std::vector<Sample> s;
    std::size_t ops = scaled(200'000, kBatch);
    on_fresh_loop([&](asyncio::EventLoop& loop) { return call_soon_bench(loop, ops, s); });
    report("call_soon", s);
}

void fig_create_task() {
    std::vector<Sample> s;
    std::size_t ops = scaled(200'000, kBatch);
    on_fresh_loop([&](asyncio::EventLoop& loop) { return create_task_bench(loop, ops, s); });
    report("create_task", s);
}

void fig_await_done_future() {
    std::vector<Sample> s;
    std::size_t ops = scaled(5'000'000, 1);
    on_fresh_loop([&](asyncio::EventLoop& loop) { return await_done_bench(loop, ops, s); });
    report("await_done_future", s);
}

void fig_call_later_cancel() {
    // Rounds of pending/10 call_later+cancel pairs. With --amortized, ten timed ones: as many
    // cancellations as pending timers, so that the amortized figure includes exactly one
    // compaction of the heap (asyncio's rule: compact when more than half of the entries are
    // cancelled). Without it, at most 7 timed rounds stay clear of the compaction.
    std::vector<Sample> s;
    std::size_t pending = std::max<std::size_t>(
        kBatch, static_cast<std::size_t>(static_cast<double>(kPendingTimers) * g_options.scale));
    std::size_t ops = std::max<std::size_t>(kBatch, pending / 10 - (pending / 10) % kBatch);
    Options saved = g_options;
    g_options.warmup = 1;
    g_options.rounds = g_options.amortized ? 10 : std::min(g_options.rounds, 7);
    on_fresh_loop([&](asyncio::EventLoop& loop) { return timer_bench(loop, ops, pending, s); });
    report("call_later_cancel", s);
    if (g_options.amortized) report_amortized("call_later_cancel_amortized", s, 1);
    g_options = saved;
}

void fig_sleep0() {
    std::vector<Sample> s;
    std::size_t ops = scaled(200'000, 1);
    on_fresh_loop([&](asyncio::EventLoop&) { return sleep0_bench(ops, s); });
    report("sleep0", s);
}

void fig_sleep0_100tasks() {
    std::vector<Sample> s;
    std::size_t ops = scaled(200'000, kYielders);
    on_fresh_loop([&](asyncio::EventLoop& loop) { return sleep0_many_bench(loop, ops, s); });
    report("sleep0_100tasks", s);
}

struct Figure {
    const char* name;
    void (*run)();
    bool diagnostic;  // only with --diagnose (or --only)
};

const Figure kFigures[] = {
    {"call_soon", fig_call_soon, false},
    {"create_task", fig_create_task, false},
    {"await_done_future", fig_await_done_future, false},
    {"call_later_cancel", fig_call_later_cancel, false},
    {"sleep0", fig_sleep0, false},
    {"sleep0_100tasks", fig_sleep0_100tasks, false},
    {"diag_malloc_batch", diag_malloc_batch, true},
    {"diag_task_name", diag_task_name, true},
    {"diag_create_task_named", diag_create_task_named, true},
};

bool wanted(const Figure& figure) {
    if (g_options.only.empty()) return !figure.diagnostic || g_options.diagnose;
    std::string_view list = g_options.only;
    while (!list.empty()) {
        auto comma = list.find(',');
        if (list.substr(0, comma) == figure.name) return true;
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    return false;
}

// Each figure runs in a child process of its own, as if it were the only workload: the million
// timers of one, or what it leaves in the allocator's bins, cannot change the next one, and the
// order of the figures does not matter. --no-fork runs them all in this process.
bool run_figure(const Figure& figure) {
    std::fflush(stdout);
    if (!g_options.fork) {
        figure.run();
        return true;
    }
    pid_t child = ::fork();
    if (child < 0) {
        std::perror("fork");
        return false;
    }
    if (child == 0) {
        figure.run();
        std::fflush(stdout);
        std::_Exit(0);
    }
    int status = 0;
    while (::waitpid(child, &status, 0) < 0) {
        if (errno != EINTR) {
            std::perror("waitpid");
            return false;
        }
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return true;
    std::printf("# %s failed (status %d)\n", figure.name, status);
    return false;
}

bool parse_options(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        auto value = [&](std::string_view key) -> const char* {
            return arg.rfind(key, 0) == 0 ? argv[i] + key.size() : nullptr;
        };
        if (const char* v = value("--rounds=")) {
            g_options.rounds = std::max(1, std::atoi(v));
        } else if (const char* s = value("--scale=")) {
            g_options.scale = std::atof(s);
            if (!(g_options.scale > 0)) return false;
        } else if (const char* o = value("--only=")) {
            g_options.only = o;
        } else if (arg == "--diagnose") {
            g_options.diagnose = true;
        } else if (arg == "--no-fork") {
            g_options.fork = false;
        } else if (arg == "--amortized") {
            g_options.amortized = true;
        } else if (arg == "--malloc-defaults") {
            g_options.malloc_defaults = true;
        } else {
            return false;
        }
    }
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    if (!parse_options(argc, argv)) {
        std::fprintf(stderr,
                     "usage: %s [--rounds=N] [--scale=F] [--only=NAME,...] [--amortized] "
                     "[--diagnose] [--malloc-defaults] [--no-fork]\n"
                     "Prints one line per figure: name=... runtime=tulip ns_per_op=... "
                     "allocs_per_op=...\n",
                     argv[0]);
        return 2;
    }
    // glibc gives the top of its heap back to the kernel whenever more than 128 KiB of it is
    // free. A batch of a thousand tasks is ~400 KiB, so by default every batch returns the
    // memory and faults it in again; that costs more than tulip's own work and says nothing
    // about it (CPython's pymalloc keeps its arenas in these workloads: faults_per_op is 0
    // there). Keep the heap, as a server tunes it; --malloc-defaults measures glibc's default.
    if (!g_options.malloc_defaults) ::mallopt(M_TRIM_THRESHOLD, 1 << 30);
    {
        asyncio::EventLoop probe;
        std::printf("# tulip micro_core backend=%.*s rounds=%d warmup=%d malloc=%s\n",
                    static_cast<int>(probe.backend_name().size()), probe.backend_name().data(),
                    g_options.rounds, g_options.warmup,
                    g_options.malloc_defaults ? "defaults" : "no-trim");
    }
    if (g_options.diagnose) {
        std::printf(
            "# sizes: coroutine frame of an empty Coro<>=%zu TaskState<void>=%zu "
            "CallbackNode of a one-pointer lambda=%zu\n",
            empty_frame_size(), sizeof(asyncio::detail::TaskState<void>),
            sizeof(asyncio::detail::CallbackNode<void (*)()>));
    }

    bool failed = false;
    for (const Figure& figure : kFigures) {
        if (!wanted(figure)) continue;
        failed |= !run_figure(figure);
    }
    return failed ? 1 : 0;
}
