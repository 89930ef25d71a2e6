// Helpers for the property-style contention tests of locks and queues (reliability check 19):
// running a scenario on a loop whose ready queue is shuffled by a seed, and the common bits.
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "loop_fixture.hpp"
#include "tulip/asyncio.hpp"

namespace tulip::testing {

// True when every task is done.
template <class T>
bool all_done(const std::vector<asyncio::Task<T>>& tasks) {
    for (const auto& t : tasks)
        if (!t.done()) return false;
    return true;
}

// True when nothing but the calling task is ready to run: every other task waits on something
// (no task is "in transit", woken but not yet run). At such a point a primitive must not have a
// waiting task and a free resource both (a free Lock with a waiter, a non-empty Queue with a
// waiting getter): that would be a lost wake-up.
inline bool quiescent() { return asyncio::get_running_loop().stats().ready == 0; }

// Awaits the task; true if it ended cancelled (any other exception propagates).
template <class T>
asyncio::Coro<bool> ends_cancelled(asyncio::Task<T> task) {
    try {
        co_await task;
    } catch (const asyncio::CancelledError&) {
        co_return true;
    }
    co_return false;
}

// Cancels what is still pending and waits for every task to finish.
template <class T>
asyncio::Coro<> cancel_and_reap(std::vector<asyncio::Task<T>>& tasks) {
    for (auto& t : tasks) t.cancel();
    for (auto& t : tasks) co_await ends_cancelled(t);
}

// Gives the tasks up to `turns` loop iterations to finish by themselves, then cancels and reaps
// what is left. True if they all finished in time: a lost wake-up then fails the test instead of
// hanging it.
template <class T>
asyncio::Coro<bool> finish_within(std::vector<asyncio::Task<T>>& tasks, int turns = 10'000) {
    for (int turn = 0; turn < turns && !all_done(tasks); ++turn) co_await asyncio::sleep(0);
    bool finished = all_done(tasks);
    co_await cancel_and_reap(tasks);
    co_return finished;
}

// Waits a bounded number of loop turns for one task to finish by itself; true if it did (its
// result or exception is then in the task). Otherwise it is cancelled and reaped.
template <class T>
asyncio::Coro<bool> finishes(asyncio::Task<T> task, int turns = 1'000) {
    std::vector<asyncio::Task<T>> one{task};
    co_return co_await finish_within(one, turns);
}

// Runs make() to completion on a fresh loop (the backend from TULIP_BACKEND) whose ready queue
// is shuffled with `seed`, closes it, and returns what went wrong with the loop itself: tasks
// left alive, or calls of its exception handler. Empty when all is well.
template <class Make>
std::vector<std::string> run_on_shuffled_loop(std::uint64_t seed, Make make) {
    asyncio::LoopOptions options;
    options.shuffle_seed = seed;
    asyncio::EventLoop loop(options);
    std::vector<std::string> problems;
    loop.set_exception_handler([&problems](asyncio::EventLoop&, const asyncio::ExceptionContext& context) {
        problems.push_back("exception handler: " + describe(context));
    });
    loop.run_until_complete(make());
    if (auto live = loop.stats().live_tasks; live != 0)
        problems.push_back(std::to_string(live) + " tasks left alive");
    loop.close();
    return problems;
}

}  // namespace tulip::testing
