// run_sharded: n threads with a loop each, and the calling thread's own loop as their
// coordinator. The shards share nothing but the table below; the coordinator learns of each
// shard's end through its call_soon_threadsafe, and stops shards through theirs.
#include "tulip/asyncio/sharded.hpp"

#include <pthread.h>

#include <algorithm>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace tulip::asyncio::detail {

namespace {

bool is_cancellation(const std::exception_ptr& error) {
    try {
        std::rethrow_exception(error);
    } catch (const CancelledError&) {
        return true;
    } catch (...) {
        return false;
    }
}

// One shard, as the others may see it.
struct ShardSlot {
    // Under Coordinator::mutex_: the shard's loop while it may take a stop request.
    EventLoop* loop = nullptr;
    bool stop_posted = false;
    // The shard's own thread only (the stop request runs there).
    std::optional<Task<>> task;
    bool stop_seen = false;
};

// How a shard ended: with main's exception (or its loop's), and whether it had been asked to stop.
struct Outcome {
    std::exception_ptr error;
    bool stopped = false;
};

class Coordinator {
public:
    Coordinator(int n, const ShardMain& main, const ShardedOptions& options, EventLoop& home)
        : n_(n), main_(main), options_(options), home_(home), slots_(static_cast<std::size_t>(n)) {}

    // The calling thread: starts the threads, runs the home loop until every shard has reported,
    // joins them. Returns the first error.
    std::exception_ptr run();
    // Any thread: asks every shard to stop (once each).
    void stop_all() noexcept;

private:
    void shard_thread(int shard) noexcept;
    Outcome run_main(int shard, EventLoop& loop);
    bool attach(ShardSlot& slot, EventLoop& loop);
    void detach(ShardSlot& slot);
    void report(int shard, Outcome outcome) noexcept;
    void on_shard_end(int shard, const Outcome& outcome) noexcept;
    void fail(std::exception_ptr error, std::string what) noexcept;

    const int n_;
    const ShardMain& main_;
    const ShardedOptions& options_;
    EventLoop& home_;
    std::vector<ShardSlot> slots_;
    std::mutex mutex_;
    bool stopping_ = false;  // under mutex_
    // The home thread only.
    int running_ = 0;
    std::exception_ptr first_error_;
};

std::exception_ptr Coordinator::run() {
    std::vector<std::thread> threads;
    threads.reserve(slots_.size());
    try {
        for (int i = 0; i < n_; ++i) {
            threads.emplace_back([this, i] { shard_thread(i); });
            ++running_;
        }
    } catch (...) {
        // No thread for this shard (EAGAIN): the ones started are stopped and joined.
        fail(std::current_exception(), "run_sharded: could not start a thread");
    }
    if (running_ > 0) home_.run_forever();
    for (auto& t : threads) t.join();
    return first_error_;
}

void Coordinator::stop_all() noexcept {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    for (auto& slot : slots_) {
        if (!slot.loop || slot.stop_posted) continue;
        slot.stop_posted = true;
        ShardSlot* s = &slot;
        slot.loop->call_soon_threadsafe([s] {
            s->stop_seen = true;
            if (s->task && !s->task->done()) s->task->cancel();
        });
    }
}

void Coordinator::shard_thread(int shard) noexcept {
#ifdef __linux__
    std::string name = "tulip-shard-" + std::to_string(shard);
    name.resize(std::min<std::size_t>(name.size(), 15));  // the kernel's limit (16 with the NUL)
    ::pthread_setname_np(::pthread_self(), name.c_str());
#endif
    bool reported = false;
    try {
        EventLoop loop(LoopOptions{options_.backend});
        loop.set_debug(options_.debug || loop.get_debug());
        set_event_loop(&loop);
        // As asyncio::run ends, after the report: cancel what main left, join the executor, close.
        struct Finish {
            EventLoop& loop;
            ~Finish() { finish_run(loop); }
        } finish{loop};
        Outcome outcome = run_main(shard, loop);
        report(shard, std::move(outcome));
        reported = true;
    } catch (...) {  // the loop could not be made
        if (!reported) report(shard, Outcome{std::current_exception(), false});
    }
}

Outcome Coordinator::run_main(int shard, EventLoop& loop) {
    ShardSlot& slot = slots_[static_cast<std::size_t>(shard)];
    if (!attach(slot, loop)) return Outcome{nullptr, true};  // stopped before it started
    Outcome outcome;
    try {
        slot.task.emplace(loop.create_task(main_(shard, n_)));
        loop.run_until_complete(Future<>(*slot.task));
    } catch (...) {
        outcome.error = std::current_exception();
    }
    // A stop request still queued finds no task and does nothing.
    slot.task.reset();
    outcome.stopped = slot.stop_seen;
    detach(slot);
    return outcome;
}

bool Coordinator::attach(ShardSlot& slot, EventLoop& loop) {
    std::lock_guard lock(mutex_);
    if (stopping_) return false;
    slot.loop = &loop;
    return true;
}

// After this no stop request is posted to the loop, which may then close.
void Coordinator::detach(ShardSlot& slot) {
    std::lock_guard lock(mutex_);
    slot.loop = nullptr;
}

void Coordinator::report(int shard, Outcome outcome) noexcept {
    home_.call_soon_threadsafe([this, shard, outcome = std::move(outcome)] { on_shard_end(shard, outcome); });
}

void Coordinator::on_shard_end(int shard, const Outcome& outcome) noexcept {
    if (outcome.error && !(outcome.stopped && is_cancellation(outcome.error)))
        fail(outcome.error, "run_sharded: shard " + std::to_string(shard) + " failed");
    if (--running_ == 0) home_.stop();
}

// The first error stops every shard and is rethrown by run_sharded; a later one is only logged.
void Coordinator::fail(std::exception_ptr error, std::string what) noexcept {
    if (!first_error_) {
        first_error_ = std::move(error);
        stop_all();
        return;
    }
    ExceptionContext context;
    context.message = std::move(what) + " after another shard's failure had stopped the shards";
    context.exception = std::move(error);
    home_.call_exception_handler(context);
}

}  // namespace

int default_shard_count() noexcept {
    unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 1 : static_cast<int>(n);
}

void run_sharded(int n, const ShardMain& main, ShardedOptions options) {
    if (n < 1) throw ValueError("run_sharded: the number of shards must be at least 1, got " + std::to_string(n));
    if (!main) throw ValueError("run_sharded: main is empty");
    if (running_loop()) throw RuntimeError("asyncio::run_sharded() cannot be called from a running event loop");
    EventLoop home(LoopOptions{options.backend});
    Coordinator coordinator(n, main, options, home);
    for (int sig : options.stop_signals) home.add_signal_handler(sig, [&coordinator] { coordinator.stop_all(); });
    std::exception_ptr error = coordinator.run();
    for (int sig : options.stop_signals) home.remove_signal_handler(sig);
    home.close();
    if (error) std::rethrow_exception(error);
}

}  // namespace tulip::asyncio::detail
