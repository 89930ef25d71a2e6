// The epoll backend: a readiness backend. An fd with poll operations is registered with the union
// of what they watch (level-triggered), re-registered only when that union changes. An fd with
// socket operations is registered once, edge-triggered for both directions, until forget():
// readiness_ops.hpp keeps its "may be readable/writable" flags between the edges.
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include "buffer_pool.hpp"
#include "fd_table.hpp"
#include "raw_syscalls.hpp"
#include "readiness_ops.hpp"

namespace tulip::asyncio::detail {
namespace {

std::uint32_t to_epoll(std::uint32_t bits) noexcept {
    return (bits & kPollIn ? EPOLLIN : 0u) | (bits & kPollOut ? EPOLLOUT : 0u);
}

std::uint32_t from_epoll(std::uint32_t events) noexcept {
    return (events & EPOLLIN ? kPollIn : 0u) | (events & EPOLLOUT ? kPollOut : 0u) |
           (events & EPOLLERR ? kPollErr : 0u) | (events & EPOLLHUP ? kPollHup : 0u) |
           (events & EPOLLRDHUP ? kPollRdHup : 0u);
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
    ~EpollBackend() override {
        ops_.cancel_all();
        ::close(epfd_);
    }

    std::string_view name() const noexcept override { return "epoll"; }

    void submit(Operation& op) override {
        if (op.kind != OpKind::poll) {
            if (ops_.submit(op)) register_for_life(op);
            return;
        }
        FdTable::Entry& e = fds_.add(op, "epoll");
        try {
            update(op.fd, e);
        } catch (...) {
            fds_.remove(op);
            throw;
        }
    }

    bool cancel(Operation& op) noexcept override {
        if (op.kind != OpKind::poll) {
            ops_.cancel(op);  // a readiness backend releases at once
            return true;
        }
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
        // Operations that may be ready go first. When they completed something, return without
        // asking the kernel, but only every other time so that other fds are never starved.
        if (ops_.run_runnable() || ops_.has_runnable()) {
            if (!skipped_kernel_) {
                skipped_kernel_ = true;
                return;
            }
            timeout_ns = 0;
        }
        skipped_kernel_ = false;
        int n = wait_events(timeout_ns);
        for (int i = 0; i < n; ++i) {
            if (events_[i].data.fd == wakeup_.fd()) {
                wakeup_.drain();
                continue;
            }
            ops_.deliver(events_[i].data.fd, from_epoll(events_[i].events));
        }
    }

    void wakeup() noexcept override { wakeup_.notify(); }
    std::size_t pending_ops() const noexcept override { return fds_.pending() + ops_.pending(); }

    void set_buffer_pool(std::uint32_t count, std::uint32_t size) override { pool_.create(count, size, "epoll"); }
    std::byte* provided_buffer(std::uint16_t id) noexcept override { return pool_.data(id); }
    std::uint32_t provided_buffer_size() const noexcept override { return pool_.size(); }
    void give_back(std::uint16_t id) noexcept override { ops_.give_back(id); }

    void forget(int fd) noexcept override {
        // close() drops the registration too, unless another process holds a duplicate.
        if (ops_.forget(fd)) ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
    }

private:
    void register_for_life(Operation& op) {
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
        ev.data.fd = op.fd;
        // EEXIST: the number was closed and reused while a duplicate kept the old registration.
        if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, op.fd, &ev) < 0 &&
            (errno != EEXIST || ::epoll_ctl(epfd_, EPOLL_CTL_MOD, op.fd, &ev) < 0)) {
            int err = errno;
            ops_.cancel(op);
            ops_.forget(op.fd);
            raise_os_error(err, "epoll_ctl(ADD, fd " + std::to_string(op.fd) + ")");
        }
    }

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
                n = sys::epoll_pwait2(epfd_, events_, kMaxEvents, &ts);
                if (n < 0 && errno == ENOSYS) {  // kernels before 5.11
                    have_pwait2_ = false;
                    continue;
                }
            } else {
                n = sys::epoll_wait(epfd_, events_, kMaxEvents, timeout_ms_rounded_up(timeout_ns));
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
    bool skipped_kernel_ = false;
    FdTable fds_;
    BufferPool pool_;
    ReadinessOps ops_{fds_, pool_, "epoll"};
    epoll_event events_[kMaxEvents];
};

}  // namespace

std::unique_ptr<Backend> make_epoll_backend() { return std::make_unique<EpollBackend>(); }

}  // namespace tulip::asyncio::detail
