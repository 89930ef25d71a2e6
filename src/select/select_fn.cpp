// select.select(): the three fd lists through select(2), retried on EINTR with the time left.
#include <sys/select.h>

#include <algorithm>
#include <cerrno>

#include "deadline.hpp"
#include "tulip/exceptions.hpp"
#include "tulip/select.hpp"

namespace tulip::select {
namespace {

// Fills `set` from `fds` and returns the highest fd; Python's messages for fds select() cannot take.
int fill(fd_set& set, const std::vector<int>& fds) {
    FD_ZERO(&set);
    int max_fd = -1;
    for (int fd : fds) {
        detail::check_fd(fd);
        if (fd >= FD_SETSIZE) throw ValueError("filedescriptor out of range in select()");
        FD_SET(fd, &set);
        if (fd > max_fd) max_fd = fd;
    }
    return max_fd;
}

std::vector<std::size_t> ready_in(const fd_set& set, const std::vector<int>& fds) {
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < fds.size(); ++i)
        if (FD_ISSET(fds[i], &set)) out.push_back(i);
    return out;
}

std::vector<int> pick(const std::vector<int>& fds, const std::vector<std::size_t>& indices) {
    std::vector<int> out;
    out.reserve(indices.size());
    for (std::size_t i : indices) out.push_back(fds[i]);
    return out;
}

}  // namespace

namespace detail {

ReadyIndices select_fds(const std::vector<int>& r, const std::vector<int>& w, const std::vector<int>& x,
                        Timeout timeout) {
    if (!timeout.is_none() && timeout.value() < std::chrono::nanoseconds{0})
        throw ValueError("timeout must be non-negative");
    fd_set rset, wset, xset;
    int max_fd = std::max({fill(rset, r), fill(wset, w), fill(xset, x)});
    const fd_set rwanted = rset, wwanted = wset, xwanted = xset;
    Deadline deadline(timeout);
    for (;;) {
        timeval tv = deadline.remaining_timeval();
        int n = ::select(max_fd + 1, &rset, &wset, &xset, deadline.blocks() ? nullptr : &tv);
        if (n >= 0) break;
        if (errno != EINTR) raise_last_os_error("select");
        // PEP 475: the signal handler has run; wait again for the time that is left (the sets were
        // left undefined by the failed call). A deadline already passed still gets one last look.
        rset = rwanted;
        wset = wwanted;
        xset = xwanted;
    }
    return {ready_in(rset, r), ready_in(wset, w), ready_in(xset, x)};
}

}  // namespace detail

SelectResult<int> select(const std::vector<int>& rlist, const std::vector<int>& wlist,
                         const std::vector<int>& xlist, Timeout timeout) {
    detail::ReadyIndices ready = detail::select_fds(rlist, wlist, xlist, timeout);
    return {pick(rlist, ready.r), pick(wlist, ready.w), pick(xlist, ready.x)};
}

SelectResult<int> select(const std::vector<int>& rlist, const std::vector<int>& wlist,
                         const std::vector<int>& xlist, double timeout_seconds) {
    return select(rlist, wlist, xlist, Timeout::seconds(timeout_seconds));
}

}  // namespace tulip::select
