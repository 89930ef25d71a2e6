// How every socket call waits: CPython's sock_call_ex() rules, with the syscall tried first.
//
// The fd is blocking in blocking mode and O_NONBLOCK otherwise. A call is tried at once; EINTR is
// retried (PEP 475); EAGAIN throws BlockingIOError in non-blocking mode, and in timeout mode waits
// in poll() for readiness until the deadline, then retries, throwing TimeoutError at the deadline.
// In blocking mode EAGAIN means one of two things. Either another Socket on a dup() of the same
// open file description has put it in O_NONBLOCK (the flag is shared), and we wait without a
// deadline rather than fail; or the fd really is blocking and the kernel's own SO_RCVTIMEO or
// SO_SNDTIMEO expired, which is reported (BlockingIOError) as CPython does.
#pragma once

#include <poll.h>

#include <cerrno>
#include <chrono>
#include <optional>
#include <string>

#include "tulip/exceptions.hpp"

namespace tulip::socket::detail {

using Clock = std::chrono::steady_clock;

// A call's deadline: started at the first wait, or up front by start() for calls that are
// bounded as a whole (sendall, sendfile, connect).
class Deadline {
public:
    explicit Deadline(double timeout) : timeout_(timeout) {}
    double timeout() const noexcept { return timeout_; }
    void start() {
        if (timeout_ > 0 && !at_) at_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                              std::chrono::duration<double>(timeout_));
    }
    // nullopt: no deadline (blocking mode).
    std::optional<Clock::time_point> at() {
        if (timeout_ <= 0) return std::nullopt;
        start();
        return at_;
    }

private:
    double timeout_;
    std::optional<Clock::time_point> at_;
};

// Waits until fd has one of `events` (or an error/hangup, which the retried call will report).
// Returns false when the deadline passes first. EINTR is retried with the time left.
bool wait_ready(int fd, short events, std::optional<Clock::time_point> deadline);

// Whether the open file description of fd is O_NONBLOCK.
bool is_nonblocking(int fd);

// Throws TimeoutError with "<what>: timed out".
[[noreturn]] void raise_timeout(const std::string& what);

// Runs op() (a syscall wrapper returning -1 and setting errno on failure) until it succeeds or
// fails for good, as the header describes. `what` is called only to build an error message.
template <class Op, class What>
auto sock_call(int fd, Deadline& deadline, short events, Op&& op, What&& what) -> decltype(op()) {
    for (;;) {
        auto r = op();
        if (r >= 0) return r;
        int err = errno;
        if (err == EINTR) continue;
        if ((err == EAGAIN || err == EWOULDBLOCK) && deadline.timeout() != 0 &&
            (deadline.timeout() > 0 || is_nonblocking(fd))) {
            if (!wait_ready(fd, events, deadline.at())) raise_timeout(what());
            continue;
        }
        raise_os_error(err, what());
    }
}

}  // namespace tulip::socket::detail
