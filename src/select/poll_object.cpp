// select.poll: a registration map, polled with poll(2) and retried on EINTR with the time left.
#include <poll.h>

#include <cerrno>
#include <string>

#include "deadline.hpp"
#include "tulip/exceptions.hpp"
#include "tulip/select.hpp"

namespace tulip::select {

static_assert(detail::poll_in == POLLIN && detail::poll_pri == POLLPRI && detail::poll_out == POLLOUT &&
              detail::poll_err == POLLERR && detail::poll_hup == POLLHUP && detail::poll_nval == POLLNVAL &&
              detail::poll_rdnorm == POLLRDNORM && detail::poll_rdband == POLLRDBAND &&
              detail::poll_wrnorm == POLLWRNORM && detail::poll_wrband == POLLWRBAND &&
              detail::poll_msg == POLLMSG && detail::poll_rdhup == POLLRDHUP,
              "tulip::select's POLL* constants must be the system's");

namespace {

// Python stores the mask as a C unsigned short and refuses what does not fit.
void check_mask(int eventmask) {
    if (eventmask < 0 || eventmask > 0xFFFF)
        throw ValueError("poll eventmask out of range (0..65535): " + std::to_string(eventmask));
}

}  // namespace

void Poll::register_(int fd, int eventmask) {
    detail::check_fd(fd);
    check_mask(eventmask);
    fds_[fd] = eventmask;
}

void Poll::modify(int fd, int eventmask) {
    detail::check_fd(fd);
    check_mask(eventmask);
    auto it = fds_.find(fd);
    if (it == fds_.end()) raise_os_error(ENOENT, "poll.modify(fd " + std::to_string(fd) + ")");
    it->second = eventmask;
}

void Poll::unregister(int fd) {
    detail::check_fd(fd);
    if (fds_.erase(fd) == 0) throw KeyError("fd " + std::to_string(fd) + " is not registered in this poll object");
}

std::vector<std::pair<int, int>> Poll::poll(Timeout timeout) {
    std::vector<pollfd> fds;
    fds.reserve(fds_.size());
    for (auto [fd, mask] : fds_) fds.push_back({fd, static_cast<short>(mask), 0});
    detail::Deadline deadline(timeout);
    int n;
    for (;;) {
        bool cut;
        int ms = deadline.remaining_ms(cut);
        n = ::poll(fds.data(), fds.size(), ms);
        if (n > 0 || (n == 0 && !cut)) break;
        if (n < 0 && errno != EINTR) raise_last_os_error("poll");
        // EINTR (PEP 475), or a wait longer than poll(2) can take that has not ended yet: wait
        // again for the time that is left.
    }
    std::vector<std::pair<int, int>> ready;
    ready.reserve(static_cast<std::size_t>(n));
    for (const pollfd& p : fds)
        if (p.revents) ready.emplace_back(p.fd, static_cast<unsigned short>(p.revents));
    return ready;
}

}  // namespace tulip::select
