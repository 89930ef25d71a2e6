// select.epoll: an owned epoll fd. Waits are retried on EINTR with the time left (PEP 475).
#include <sys/epoll.h>
#include <sys/select.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "deadline.hpp"
#include "tulip/exceptions.hpp"
#include "tulip/select.hpp"

namespace tulip::select {

static_assert(EPOLLIN == ::EPOLLIN && EPOLLPRI == ::EPOLLPRI && EPOLLOUT == ::EPOLLOUT && EPOLLERR == ::EPOLLERR &&
              EPOLLHUP == ::EPOLLHUP && EPOLLRDNORM == ::EPOLLRDNORM && EPOLLRDBAND == ::EPOLLRDBAND &&
              EPOLLWRNORM == ::EPOLLWRNORM && EPOLLWRBAND == ::EPOLLWRBAND && EPOLLMSG == ::EPOLLMSG &&
              EPOLLRDHUP == ::EPOLLRDHUP && EPOLLEXCLUSIVE == ::EPOLLEXCLUSIVE &&
              EPOLLWAKEUP == ::EPOLLWAKEUP && EPOLLONESHOT == ::EPOLLONESHOT && EPOLLET == ::EPOLLET &&
              EPOLL_CLOEXEC == ::EPOLL_CLOEXEC,
              "tulip::select's EPOLL* constants must be the system's");

Epoll::Epoll(int sizehint, int flags) {
    // Python: sizehint is -1 or positive (the kernel ignores it since 2.6.8); flags is ignored but
    // must be 0 or EPOLL_CLOEXEC, and the fd is close-on-exec whatever it says.
    if (sizehint != -1 && sizehint <= 0) throw ValueError("negative sizehint");
    if (flags != 0 && flags != EPOLL_CLOEXEC) raise_os_error(EINVAL, "epoll(flags=" + std::to_string(flags) + ")");
    epfd_ = ::epoll_create1(::EPOLL_CLOEXEC);
    if (epfd_ < 0) raise_last_os_error("epoll_create1");
}

Epoll Epoll::fromfd(int fd) {
    detail::check_fd(fd);
    return Epoll(Adopt{}, fd);
}

Epoll& Epoll::operator=(Epoll&& other) noexcept {
    if (this != &other) {
        close();
        epfd_ = std::exchange(other.epfd_, -1);
    }
    return *this;
}

Epoll::~Epoll() { close(); }

void Epoll::close() noexcept {
    // Linux releases the fd even when close() fails (EINTR included), so there is nothing to retry
    // and nothing the caller could do.
    if (epfd_ >= 0) ::close(std::exchange(epfd_, -1));
}

int Epoll::checked_fd() const {
    if (epfd_ < 0) throw ValueError("I/O operation on closed epoll object");
    return epfd_;
}

int Epoll::fileno() const { return checked_fd(); }

void Epoll::control(int op, int fd, std::uint32_t eventmask, const char* what) {
    int epfd = checked_fd();
    detail::check_fd(fd);
    epoll_event ev{};
    ev.events = eventmask;
    ev.data.fd = fd;
    if (::epoll_ctl(epfd, op, fd, &ev) < 0)
        raise_last_os_error(std::string("epoll.") + what + "(fd " + std::to_string(fd) + ")");
}

void Epoll::register_(int fd, std::uint32_t eventmask) { control(EPOLL_CTL_ADD, fd, eventmask, "register"); }

void Epoll::modify(int fd, std::uint32_t eventmask) { control(EPOLL_CTL_MOD, fd, eventmask, "modify"); }

void Epoll::unregister(int fd) { control(EPOLL_CTL_DEL, fd, 0, "unregister"); }

std::vector<std::pair<int, std::uint32_t>> Epoll::poll(Timeout timeout, int maxevents) {
    int epfd = checked_fd();
    if (maxevents == -1) {
        maxevents = FD_SETSIZE - 1;
    } else if (maxevents < 1) {
        throw ValueError("maxevents must be greater than 0, got " + std::to_string(maxevents));
    }
    std::vector<epoll_event> events(static_cast<std::size_t>(maxevents));
    detail::Deadline deadline(timeout);
    int n;
    for (;;) {
        bool cut;
        int ms = deadline.remaining_ms(cut);
        n = ::epoll_wait(epfd, events.data(), maxevents, ms);
        if (n > 0 || (n == 0 && !cut)) break;
        if (n < 0 && errno != EINTR) raise_last_os_error("epoll.poll");
        // EINTR (PEP 475), or a wait longer than epoll_wait(2) can take that has not ended yet:
        // wait again for the time that is left.
    }
    std::vector<std::pair<int, std::uint32_t>> ready;
    ready.reserve(static_cast<std::size_t>(n));
    // epoll_event is packed on x86-64: copy the fields out rather than bind references to them.
    for (int i = 0; i < n; ++i) ready.emplace_back(int{events[i].data.fd}, std::uint32_t{events[i].events});
    return ready;
}

}  // namespace tulip::select
