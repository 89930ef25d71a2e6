// Waiting for an fd to become readable or writable from inside a task: the building block of the
// loop's sock_* operations (try the syscall; on EAGAIN, wait here; try again).
//
// The wait is a one-shot poll operation on the loop's backend (every backend has one, a
// completion backend included), so a cancelled wait consumes nothing from the fd: the data
// stays in the socket for the next reader, as with Python's selector loop.
//
// A wait that follows an EAGAIN may name the open file with a token (socket::Socket::open_id):
// epoll then keeps the fd registered between waits on that file (docs/backends.md).
#pragma once

#include <coroutine>
#include <cstdint>
#include <string>

#include "tulip/asyncio/detail/ref.hpp"
#include "tulip/asyncio/detail/task_core.hpp"

namespace tulip::asyncio {
class EventLoop;
}

namespace tulip::asyncio::detail {

class FutureStateBase;
struct FdWaitOp;

class FdReadyAwaiter final : public Waitable {
public:
    // events: kPollIn or kPollOut (see wait_readable()/wait_writable()). file_token: 0, or the
    // open file's token when the caller's syscall on fd has just failed with EAGAIN.
    FdReadyAwaiter(EventLoop& loop, int fd, std::uint32_t events, std::uint32_t file_token = 0) noexcept
        : loop_(&loop), fd_(fd), events_(events), file_token_(file_token) {}
    FdReadyAwaiter(const FdReadyAwaiter&) = delete;
    FdReadyAwaiter& operator=(const FdReadyAwaiter&) = delete;
    // A wait abandoned mid-way (its task destroyed) withdraws its operation from the backend.
    ~FdReadyAwaiter();

    bool await_ready() const noexcept { return false; }
    // Throws what the backend throws for a bad fd or a direction already waited on.
    void await_suspend(std::coroutine_handle<> h);
    // The ready events (kPoll* bits, errors and hang-ups included); CancelledError if cancelled.
    std::uint32_t await_resume();

    bool cancel_wait(const std::string& msg) override;

private:
    friend struct FdWaitOp;
    void on_ready(int events) noexcept;
    void withdraw() noexcept;

    EventLoop* loop_;
    int fd_;
    std::uint32_t events_;
    std::uint32_t file_token_;
    FdWaitOp* op_ = nullptr;
    TaskCore* task_ = nullptr;
    Ref<FutureStateBase> keep_alive_;
    std::uint32_t ready_ = 0;
    bool woken_ = false;
    bool cancelled_ = false;
    std::string cancel_message_;
};

FdReadyAwaiter wait_readable(EventLoop& loop, int fd, std::uint32_t file_token = 0) noexcept;
FdReadyAwaiter wait_writable(EventLoop& loop, int fd, std::uint32_t file_token = 0) noexcept;

}  // namespace tulip::asyncio::detail
