// The deadline of a wait that is retried after EINTR with the time that is left (PEP 475), and
// its conversions to what each OS call takes, rounded up so that a wait never ends early.
#pragma once

#include <sys/time.h>

#include <chrono>
#include <climits>

#include "tulip/select.hpp"

namespace tulip::select::detail {

class Deadline {
public:
    // A none or negative timeout has no deadline: the wait blocks.
    explicit Deadline(Timeout timeout) noexcept
        : blocks_(timeout.is_none() || timeout.value() < std::chrono::nanoseconds{0}),
          at_(blocks_ ? Clock::time_point{} : Clock::now() + timeout.value()) {}

    bool blocks() const noexcept { return blocks_; }

    std::chrono::nanoseconds remaining() const noexcept {
        if (blocks_) return std::chrono::nanoseconds::max();
        auto left = at_ - Clock::now();
        return left > Clock::duration{0} ? std::chrono::duration_cast<std::chrono::nanoseconds>(left)
                                         : std::chrono::nanoseconds{0};
    }

    // poll(2) and epoll_wait(2): -1 to block, else milliseconds rounded up. A wait longer than
    // INT_MAX ms (24.8 days) is cut there; `cut` tells the caller to wait again when it times out.
    int remaining_ms(bool& cut) const noexcept {
        cut = false;
        if (blocks_) return -1;
        auto ms = std::chrono::ceil<std::chrono::milliseconds>(remaining()).count();
        if (ms > INT_MAX) {
            cut = true;
            return INT_MAX;
        }
        return static_cast<int>(ms);
    }

    // select(2): the remaining time rounded up to microseconds (Linux accepts any tv_sec).
    timeval remaining_timeval() const noexcept {
        auto us = std::chrono::ceil<std::chrono::microseconds>(remaining()).count();
        return timeval{static_cast<time_t>(us / 1'000'000), static_cast<suseconds_t>(us % 1'000'000)};
    }

private:
    using Clock = std::chrono::steady_clock;
    bool blocks_;
    Clock::time_point at_;
};

// The check Python makes before using an int as an fd.
inline void check_fd(int fd) {
    if (fd < 0) raise_negative_fd(fd);
}

}  // namespace tulip::select::detail
