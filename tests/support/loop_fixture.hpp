// The fixture every loop test uses (reliability checks 2 and 3): a fresh loop on the backend
// named by TULIP_BACKEND, an exception handler that records what it is given, and at teardown a
// closed loop with nothing left over: no ready callbacks, timers, watchers, backend operations or
// live tasks, no unexpected exception-handler call, and as many open fds as at the start.
#pragma once

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "tulip/asyncio.hpp"

namespace tulip::testing {

// Number of entries in /proc/self/fd.
std::size_t open_fd_count();

class LoopFixture {
public:
    LoopFixture() : LoopFixture(asyncio::LoopOptions{}) {}
    explicit LoopFixture(asyncio::LoopOptions options);
    ~LoopFixture() noexcept(false);

    asyncio::EventLoop& loop() { return *loop_; }

    // Runs a coroutine to completion on the fixture's loop.
    template <class T>
    T run(asyncio::Coro<T> coro) {
        return loop_->run_until_complete(std::move(coro));
    }

    // Exception-handler calls so far. A test that expects some takes them with
    // take_handler_calls(), so that teardown only sees the unexpected ones.
    std::vector<asyncio::ExceptionContext> take_handler_calls() { return std::exchange(handler_calls_, {}); }

    // Checks the teardown conditions now (the destructor checks them again).
    void check_nothing_left();

private:
    std::size_t fds_at_start_;
    std::unique_ptr<asyncio::EventLoop> loop_;
    std::vector<asyncio::ExceptionContext> handler_calls_;
};

// A readable summary of an exception-handler context, for failure messages.
std::string describe(const asyncio::ExceptionContext& context);

}  // namespace tulip::testing
