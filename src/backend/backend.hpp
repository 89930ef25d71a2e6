// The backend contract: operations with completions.
//
// Readiness backends (epoll, poll, select) and completion backends (io_uring) sit behind this
// one interface, in the manner of seastar's reactor_backend: the loop submits an Operation, and
// the backend calls op.complete(op, result) from inside wait() when the operation is done. A
// completion callback only records the result and schedules work on the loop; it never runs
// user code, so a backend can deliver a batch without caring what the callbacks do.
//
// Today's operation is `poll` (fd readiness, multishot: it completes on every wait() in which
// the fd is ready, level-triggered, until cancelled), which add_reader/add_writer and the signal
// pipe use. recv, send, accept, connect, recvfrom/sendto join it with the sockets and backends
// issues; see docs/backends.md.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace tulip::asyncio::detail {

enum class OpKind : std::uint8_t { poll };

// Poll events, as poll(2)'s bits so every backend can translate them.
inline constexpr std::uint32_t kPollIn = 0x001;   // POLLIN
inline constexpr std::uint32_t kPollOut = 0x004;  // POLLOUT
inline constexpr std::uint32_t kPollErr = 0x008;  // POLLERR
inline constexpr std::uint32_t kPollHup = 0x010;  // POLLHUP

struct Operation {
    // result: for poll, the ready events (kPoll* bits); for others, bytes or -errno.
    using Complete = void (*)(Operation& op, int result) noexcept;

    OpKind kind = OpKind::poll;
    int fd = -1;
    Complete complete = nullptr;
    std::uint32_t poll_events = 0;  // poll: what to watch for

    // The backend's own state for the operation (in flight, cancelling, ...); zero when idle.
    std::uint32_t backend_state = 0;
};

class Backend {
public:
    virtual ~Backend() = default;

    virtual std::string_view name() const noexcept = 0;

    // Starts op. It must stay at the same address until cancel() released it.
    virtual void submit(Operation& op) = 0;
    // Stops op. Returns true when the backend let go of it at once (no completion will follow);
    // false when a final completion (result -ECANCELED or the real one) is still to come.
    virtual bool cancel(Operation& op) noexcept = 0;

    // Waits for completions for up to timeout_ns (-1: no limit; 0: just look) and delivers them.
    // Returns early when wakeup() is called.
    virtual void wait(std::int64_t timeout_ns) = 0;
    // Thread-safe and async-signal-safe: makes a wait() in progress (or the next one) return.
    virtual void wakeup() noexcept = 0;

    // Operations submitted and not yet released.
    virtual std::size_t pending_ops() const noexcept = 0;
};

// `requested` is "epoll", "io_uring", "poll", "select", or empty for TULIP_BACKEND and then the
// best one this machine has. Throws RuntimeError for a name this build does not know.
std::unique_ptr<Backend> make_backend(std::string_view requested);

std::unique_ptr<Backend> make_epoll_backend();
std::unique_ptr<Backend> make_poll_backend();
std::unique_ptr<Backend> make_select_backend();
// Null (with the reason in `why`) when the kernel refuses io_uring.
std::unique_ptr<Backend> make_io_uring_backend(std::string& why);

}  // namespace tulip::asyncio::detail
