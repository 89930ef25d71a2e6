// The completion-backend accept of a listening socket: one multishot accept for as long as the
// server accepts (io_uring's IORING_ACCEPT_MULTISHOT), in place of FdWatch readiness plus
// accept4(). As with StreamOps, a completion only queues the new fd (or the error) and schedules
// one reusable node; the dispatch hands them to the owner in order. Connections accepted while
// accepting is off (a cancelled multishot accept may still deliver some) wait in the queue and
// are handed over when it resumes; release() closes those nobody took.
//
// Lifetime: heap-allocated apart from its owner; release() detaches the owner and cancels the
// operation, and the object frees itself once the backend let go of it.
#pragma once

#include <cstddef>
#include <vector>

#include "native_ops.hpp"

namespace tulip::asyncio::detail {

class AcceptOpsOwner {
public:
    // A new connection (non-blocking, close-on-exec), or -errno when accepting failed; after an
    // error, accepting is off until want_accept(true).
    virtual void on_accepted(int fd_or_error) = 0;

protected:
    ~AcceptOpsOwner() = default;
};

class AcceptOps : public NativeOps<AcceptOps, AcceptOpsOwner> {
public:
    static AcceptOps* create(EventLoop& loop, int listen_fd, AcceptOpsOwner& owner);

    // Throws what the backend throws on submit.
    void want_accept(bool on);
    // Detaches the owner, closes the connections still queued, cancels the operation, and frees
    // this (now, or at the backend's final completion). Call before closing the listening fd.
    void release() noexcept;

private:
    friend class NativeOps;

    AcceptOps(EventLoop& loop, int listen_fd, AcceptOpsOwner& owner);
    ~AcceptOps();

    void arm();
    static void on_complete(Operation& op, int result) noexcept;
    void queue(int fd_or_error) noexcept;
    void deliver();
    void close_queued() noexcept;

    Op op_;
    std::vector<int> accepted_;  // new fds and errors, delivered from head_ on
    std::size_t head_ = 0;
    bool wanted_ = false;
};

}  // namespace tulip::asyncio::detail
