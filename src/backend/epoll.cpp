// The epoll backend: a readiness backend. Each fd is registered once with the union of what its
// operations watch, and re-registered only when that union changes.
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include "fd_table.hpp"

namespace tulip::asyncio::detail {
namespace {

std::uint32_t to_epoll(std::uint32_t bits) noexcept {
    return (bits & kPollIn ? EPOLLIN : 0u) | (bits & kPollOut ? EPOLLOUT : 0u);
}

std::uint32_t from_epoll(std::uint32_t events) noexcept {
    return (events & EPOLLIN ? kPollIn : 0u) | (events & EPOLLOUT ? kPollOut : 0u) |
           (events & EPOLLERR ? kPollErr : 0u) | (events & EPOLLHUP ? kPollHup : 0u);
}

class EpollBackend final : public Backend {
public:
    EpollBackend() {
        epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
        if (epfd_ < 0) raise_last_os_error("epoll_create1");
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = wakeup_.fd();
        if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, wakeup_.fd(), &ev) < 0) {
            int err = errno;
            ::close(epfd_);
            raise_os_error(err, "epoll_ctl(ADD, eventfd)");
        }
    }
    ~EpollBackend() override { ::close(epfd_); }

    std::string_view name() const noexcept override { return "epoll"; }

    void submit(Operation& op) override {
        FdTable::Entry& e = fds_.add(op, "epoll");
        try {
            update(op.fd, e);
        } catch (...) {
            fds_.remove(op);
            throw;
        }
    }

    bool cancel(Operation& op) noexcept override {
        if (FdTable::Entry* e = fds_.remove(op)) {
            try {
                update(op.fd, *e);
            } catch (...) {
                // The fd was closed behind our back: the kernel has already dropped it.
                e->registered = 0;
            }
        }
        return true;
    }

    void wait(std::int64_t timeout_ns) override {
        int n = wait_events(timeout_ns);
        for (int i = 0; i < n; ++i) {
            if (events_[i].data.fd == wakeup_.fd()) {
                wakeup_.drain();
                continue;
            }
            fds_.deliver(events_[i].data.fd, from_epoll(events_[i].events));
        }
    }

    void wakeup() noexcept override { wakeup_.notify(); }
    std::size_t pending_ops() const noexcept override { return fds_.pending(); }

private:
    // Brings epoll's registration of fd in line with its operations.
    void update(int fd, FdTable::Entry& e) {
        std::uint32_t wanted = e.wanted();
        if (wanted == e.registered) return;
        epoll_event ev{};
        ev.events = to_epoll(wanted);
        ev.data.fd = fd;
        if (wanted == 0) {
            // ENOENT/EBADF: the fd was closed (and so dropped by the kernel) before we got here.
            if (::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, &ev) < 0 && errno != ENOENT && errno != EBADF)
                raise_last_os_error("epoll_ctl(DEL, fd " + std::to_string(fd) + ")");
        } else if (e.registered == 0) {
            // EEXIST: a closed-and-reused fd number we believed unregistered is not.
            if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) < 0 &&
                (errno != EEXIST || ::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) < 0))
                raise_last_os_error("epoll_ctl(ADD, fd " + std::to_string(fd) + ")");
        } else if (::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) < 0) {
            // ENOENT: the fd was closed and reopened under the same number since we added it.
            if (errno != ENOENT || ::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) < 0)
                raise_last_os_error("epoll_ctl(MOD, fd " + std::to_string(fd) + ")");
        }
        e.registered = wanted;
    }

    int wait_events(std::int64_t timeout_ns) {
        for (;;) {
            int n;
            if (timeout_ns >= 0 && have_pwait2_) {
                timespec ts{static_cast<time_t>(timeout_ns / 1'000'000'000),
                            static_cast<long>(timeout_ns % 1'000'000'000)};
                n = ::epoll_pwait2(epfd_, events_, kMaxEvents, &ts, nullptr);
                if (n < 0 && errno == ENOSYS) {  // kernels before 5.11
                    have_pwait2_ = false;
                    continue;
                }
            } else {
                n = ::epoll_wait(epfd_, events_, kMaxEvents, timeout_ms_rounded_up(timeout_ns));
            }
            if (n >= 0) return n;
            if (errno == EINTR) return 0;  // a signal: let the loop look at its queues
            raise_last_os_error("epoll_wait");
        }
    }

    static constexpr int kMaxEvents = 256;
    int epfd_ = -1;
    WakeupFd wakeup_;
    bool have_pwait2_ = true;
    FdTable fds_;
    epoll_event events_[kMaxEvents];
};

}  // namespace

std::unique_ptr<Backend> make_epoll_backend() { return std::make_unique<EpollBackend>(); }

}  // namespace tulip::asyncio::detail
