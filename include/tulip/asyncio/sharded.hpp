// run_sharded(): one event loop per thread, each running its own copy of main (seastar's
// shard-per-core model). Not in Python, whose loops cannot share a process's cores; it is
// asyncio::run() multiplied, with nothing shared between the loops.
//
//     asyncio::run_sharded(4, [](int shard) -> asyncio::Coro<> {
//         auto server = co_await asyncio::get_running_loop().create_server(
//             factory, std::string("0.0.0.0"), 8888, {.reuse_port = true});
//         co_await server->serve_forever();
//     });
//
// docs/performance.md ("Scale beyond one core") gives the design and what it measured.
#pragma once

#include <concepts>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "tulip/asyncio/runners.hpp"

namespace tulip::asyncio {

struct ShardedOptions {
    bool debug = false;
    std::string backend;  // as LoopOptions::backend: empty for TULIP_BACKEND, then the best
    // Signals that stop every shard (e.g. {SIGINT, SIGTERM}): the calling thread's own loop owns
    // them while run_sharded runs, and on the first one it cancels every shard's main task;
    // run_sharded then returns normally. Empty (the default): no handler is installed, as
    // asyncio::run installs none, and a shard's loop may own any signal itself.
    std::vector<int> stop_signals;
};

namespace detail {
using ShardMain = std::function<Coro<>(int shard, int count)>;
void run_sharded(int n, const ShardMain& main, ShardedOptions options);
int default_shard_count() noexcept;
}  // namespace detail

// Starts n threads, each with a new EventLoop (backend as options.backend, else TULIP_BACKEND,
// else the best available), and on each runs main(shard) or main(shard, n), shard = 0..n-1, to
// completion as asyncio::run() does: the tasks it leaves behind are cancelled and the loop is
// closed. Returns once every shard has finished and every thread has been joined.
//
// main is called on the shard's own thread, from n threads at a time: it must be safe to call
// concurrently (a lambda that only reads what it captures is). Shards share nothing else; to
// reach another shard, post to its loop with call_soon_threadsafe.
//
// Errors: the first shard whose main ends with an exception (its loop failing to start
// included) stops the others: each other shard's main task is cancelled through
// call_soon_threadsafe, a shard that had not called main yet does not call it, and once every
// thread is joined that first exception is rethrown here. Exceptions that other shards raise
// afterwards (other than the CancelledError of the stop) are logged through the exception
// handler of the calling thread's loop. A main that swallows the cancellation keeps its shard,
// and run_sharded, running, as a swallowed cancellation keeps asyncio::run running.
//
// ValueError when n < 1; RuntimeError when called from a running event loop.
template <class F>
    requires std::invocable<const F&, int> || std::invocable<const F&, int, int>
void run_sharded(int n, F main, ShardedOptions options = {}) {
    detail::ShardMain call;
    if constexpr (std::invocable<const F&, int, int>) {
        static_assert(std::is_same_v<std::invoke_result_t<const F&, int, int>, Coro<>>,
                      "run_sharded: main(shard, count) must return asyncio::Coro<>");
        call = std::move(main);
    } else {
        static_assert(std::is_same_v<std::invoke_result_t<const F&, int>, Coro<>>,
                      "run_sharded: main(shard) must return asyncio::Coro<>");
        call = [main = std::move(main)](int shard, int) { return main(shard); };
    }
    detail::run_sharded(n, call, std::move(options));
}

// One shard per hardware thread (std::thread::hardware_concurrency(), 1 if it is unknown).
template <class F>
    requires std::invocable<const F&, int> || std::invocable<const F&, int, int>
void run_sharded(F main, ShardedOptions options = {}) {
    run_sharded(detail::default_shard_count(), std::move(main), std::move(options));
}

}  // namespace tulip::asyncio
