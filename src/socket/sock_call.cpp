#include "sock_call.hpp"

#include <fcntl.h>
#include <poll.h>

#include <cerrno>
#include <climits>

namespace tulip::socket::detail {

bool wait_ready(int fd, short events, std::optional<Clock::time_point> deadline) {
    for (;;) {
        int ms = -1;
        if (deadline) {
            auto left = *deadline - Clock::now();
            if (left <= Clock::duration::zero()) {
                ms = 0;  // one last look, so that a ready fd is never reported as a timeout
            } else {
                // Rounded up: rounding down would wake before the deadline and spin.
                auto ceil_ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
                ms = ceil_ms > INT_MAX ? INT_MAX : static_cast<int>(ceil_ms);
            }
        }
        ::pollfd p{fd, events, 0};
        int n = ::poll(&p, 1, ms);
        if (n > 0) return true;
        if (n < 0) {
            if (errno == EINTR) continue;
            raise_last_os_error("poll");
        }
        if (deadline && Clock::now() >= *deadline) return false;
    }
}

bool is_nonblocking(int fd) {
    int flags = ::fcntl(fd, F_GETFL);
    return flags >= 0 && (flags & O_NONBLOCK) != 0;
}

}  // namespace tulip::socket::detail
