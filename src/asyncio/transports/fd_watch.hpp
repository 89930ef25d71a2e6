// The fd-watch primitive of the transports: one standing poll operation per direction of an fd,
// whose read and write interest the owner switches on and off. A completion never runs the
// owner's code: it records the ready events and puts the watch itself on the loop's ready queue
// (once), which then calls the owner's on_fd_events() with everything that arrived since.
// No callback node and no reference count: an entry of the queue is a plain pointer, and a
// queued watch is freed only when the loop takes it off the queue (dispatch, drop_queued).
//
// Stream transports use it today; datagram and pipe transports are meant to reuse it.
//
// Lifetime: the watch is heap-allocated apart from its owner. release() detaches the owner and
// cancels both operations; a completion backend (io_uring) still holds them until their final
// -ECANCELED completion, which then frees the watch. EventLoop::close() drains those.
// A watch still queued when released is freed by the loop as it takes it off the queue.
#pragma once

#include <cstdint>

#include "../../backend/backend.hpp"

namespace tulip::asyncio {
class EventLoop;
}

namespace tulip::asyncio::detail {

class FdWatchOwner {
public:
    // events: kPoll* bits that arrived since the last call (errors and hang-ups included).
    virtual void on_fd_events(std::uint32_t events) = 0;

protected:
    ~FdWatchOwner() = default;
};

class FdWatch {
public:
    // Nothing is watched until want_read/want_write(true).
    static FdWatch* create(EventLoop& loop, int fd, FdWatchOwner& owner);

    // Switch interest; cheap when nothing changes. Throws what the backend throws on submit.
    void want_read(bool on) { set_interest(read_, on); }
    void want_write(bool on) { set_interest(write_, on); }
    bool wants_read() const noexcept { return read_.wanted; }
    bool wants_write() const noexcept { return write_.wanted; }

    // Stops watching, forgets the owner and frees the watch (now, or at the backend's final
    // completion). Call before closing the fd. The pointer is dead afterwards.
    void release() noexcept;

    // For the loop's ready queue. dispatch() calls the owner with the events noted since the
    // last call, or frees a released watch. drop_queued(): the loop is closing and drops the
    // entry without running it.
    void dispatch();
    void drop_queued() noexcept;

private:
    struct Direction : Operation {
        FdWatch* watch = nullptr;
        bool wanted = false;      // the owner's interest
        bool in_backend = false;  // submitted and not yet released by the backend
    };
    FdWatch(EventLoop& loop, int fd, FdWatchOwner& owner);
    ~FdWatch();

    void set_interest(Direction& d, bool on);
    void stop(Direction& d) noexcept;
    static void on_complete(Operation& op, int result) noexcept;
    // Records events and queues the dispatch node once.
    void note(std::uint32_t events) noexcept;
    bool releasable() const noexcept { return !owner_ && !queued_ && !read_.in_backend && !write_.in_backend; }

    EventLoop& loop_;
    FdWatchOwner* owner_;
    Direction read_;
    Direction write_;
    std::uint32_t pending_ = 0;
    bool queued_ = false;  // on the loop's ready queue
};

}  // namespace tulip::asyncio::detail
