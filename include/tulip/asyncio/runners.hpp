// asyncio.run(): the entry point of a tulip program.
#pragma once

#include <string>
#include <utility>

#include "tulip/asyncio/tasks.hpp"

namespace tulip::asyncio {

struct RunOptions {
    bool debug = false;
    std::string backend;  // as LoopOptions::backend
};

namespace detail {
// Cancels every task still pending on loop, runs it until they are done, and reports those that
// ended with an error other than CancelledError (Python's _cancel_all_tasks).
void cancel_all_tasks(EventLoop& loop) noexcept;
// The end of run(): cancel what is left, join the executor, close the loop.
void finish_run(EventLoop& loop) noexcept;
}  // namespace detail

// Creates a new loop, runs main to completion, cancels what is left, shuts the default executor
// down and closes the loop. Raises RuntimeError when called from a running loop.
template <class T>
T run(Coro<T> main, RunOptions options = {}) {
    if (detail::running_loop())
        throw RuntimeError("asyncio::run() cannot be called from a running event loop");
    EventLoop loop(LoopOptions{options.backend});
    loop.set_debug(options.debug || loop.get_debug());
    set_event_loop(&loop);
    struct Finish {
        EventLoop& loop;
        ~Finish() { detail::finish_run(loop); }
    } finish{loop};
    return loop.run_until_complete(std::move(main));
}

}  // namespace tulip::asyncio
