// Python 3.9's asyncio.to_thread (asyncio/threads.py).
#pragma once

#include <functional>
#include <type_traits>
#include <utility>

#include "tulip/asyncio/events.hpp"
#include "tulip/asyncio/tasks.hpp"

namespace tulip::asyncio {

namespace detail {
template <class Job>
Coro<std::invoke_result_t<Job&>> run_job_in_executor(Job job) {
    co_return co_await get_running_loop().run_in_executor(std::move(job));
}
}  // namespace detail

// to_thread(fn, args...): runs fn(args...) on the running loop's default executor (a thread
// pool) and returns its result, or raises what it raised. Like Python's, it is a coroutine: the
// call starts when the Coro is awaited or made a task, and it needs a running loop then.
//
// The function and the arguments are decay-copied (as std::thread does; pass std::ref to share
// an object) and moved into the call on the worker thread, where they are also destroyed. They
// must be copyable: the executor keeps the call in a std::function. A reference result is
// returned by value.
//
// Cancellation: cancelling the awaiting task stops the wait, not fn, which runs to the end on
// its thread; its result is then dropped.
template <class F, class... A>
auto to_thread(F&& fn, A&&... args) {
    using R = std::decay_t<std::invoke_result_t<std::decay_t<F>, std::decay_t<A>...>>;
    return detail::run_job_in_executor(
        [fn = std::forward<F>(fn), ... args = std::forward<A>(args)]() mutable -> R {
            return std::invoke(std::move(fn), std::move(args)...);
        });
}

}  // namespace tulip::asyncio
