// The epoll backend: a readiness backend. Each fd is registered once with the union of what its
// operations watch, and re-registered only when that union changes.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <vector>

#include "backend.hpp"
#include "tulip/exceptions.hpp"

namespace tulip::asyncio::detail {
namespace {

class EpollBackend final : public Backend {
public:
    EpollBackend() {
        epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
        if (epfd_ < 0) raise_last_os_error("epoll_create1");
        wakeup_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (wakeup_fd_ < 0) {
            int err = errno;
            ::close(epfd_);
            raise_os_error(err, "eventfd");
        }
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = wakeup_fd_;
        if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, wakeup_fd_, &ev) < 0) {
            int err = errno;
            ::close(wakeup_fd_);
            ::close(epfd_);
            raise_os_error(err, "epoll_ctl(ADD, eventfd)");
        }
    }
    ~EpollBackend() override {
        ::close(wakeup_fd_);
        ::close(epfd_);
    }

    std::string_view name() const noexcept override { return "epoll"; }

    void submit(Operation& op) override {
        FdState& st = slot(op.fd);
        Operation*& place = (op.poll_events & kPollIn) ? st.reader : st.writer;
        if (place == &op) return;
        if (place)
            throw RuntimeError("epoll backend: fd " + std::to_string(op.fd) +
                               " already has a poll operation for that direction");
        place = &op;
        ++pending_;
        try {
            update(op.fd, st);
        } catch (...) {
            place = nullptr;
            --pending_;
            throw;
        }
    }

    bool cancel(Operation& op) noexcept override {
        if (op.fd < 0 || static_cast<std::size_t>(op.fd) >= fds_.size()) return true;
        FdState& st = fds_[op.fd];
        if (st.reader == &op) {
            st.reader = nullptr;
        } else if (st.writer == &op) {
            st.writer = nullptr;
        } else {
            return true;
        }
        --pending_;
        try {
            update(op.fd, st);
        } catch (...) {
            // The fd was closed behind our back: the kernel has already dropped it.
            st.registered = 0;
        }
        return true;
    }

    void wait(std::int64_t timeout_ns) override {
        int n = wait_events(timeout_ns);
        for (int i = 0; i < n; ++i) dispatch(events_[i]);
    }

    void wakeup() noexcept override {
        std::uint64_t one = 1;
        // EAGAIN means the counter is already non-zero: the loop will wake anyway.
        [[maybe_unused]] auto r = ::write(wakeup_fd_, &one, sizeof one);
    }

    std::size_t pending_ops() const noexcept override { return pending_; }

private:
    struct FdState {
        Operation* reader = nullptr;
        Operation* writer = nullptr;
        std::uint32_t registered = 0;  // events epoll has for the fd; 0 = not registered
    };

    FdState& slot(int fd) {
        if (fd < 0) throw OSError(EBADF, "epoll backend: invalid fd " + std::to_string(fd));
        if (static_cast<std::size_t>(fd) >= fds_.size()) fds_.resize(fd + 1);
        return fds_[fd];
    }

    // Brings epoll's registration of fd in line with its operations.
    void update(int fd, FdState& st) {
        std::uint32_t wanted = (st.reader ? EPOLLIN : 0u) | (st.writer ? EPOLLOUT : 0u);
        if (wanted == st.registered) return;
        epoll_event ev{};
        ev.events = wanted;
        ev.data.fd = fd;
        if (wanted == 0) {
            // ENOENT/EBADF: the fd was closed (and so dropped by the kernel) before we got here.
            if (::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, &ev) < 0 && errno != ENOENT && errno != EBADF)
                raise_last_os_error("epoll_ctl(DEL, fd " + std::to_string(fd) + ")");
        } else if (st.registered == 0) {
            if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) < 0) {
                // EEXIST: a closed-and-reused fd number we believed unregistered is not.
                if (errno != EEXIST || ::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) < 0)
                    raise_last_os_error("epoll_ctl(ADD, fd " + std::to_string(fd) + ")");
            }
        } else if (::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) < 0) {
            // ENOENT: the fd was closed and reopened under the same number since we added it.
            if (errno != ENOENT || ::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) < 0)
                raise_last_os_error("epoll_ctl(MOD, fd " + std::to_string(fd) + ")");
        }
        st.registered = wanted;
    }

    int wait_events(std::int64_t timeout_ns) {
        for (;;) {
            int n;
            if (timeout_ns < 0) {
                n = ::epoll_wait(epfd_, events_, kMaxEvents, -1);
            } else if (have_pwait2_) {
                timespec ts{static_cast<time_t>(timeout_ns / 1'000'000'000),
                            static_cast<long>(timeout_ns % 1'000'000'000)};
                n = ::epoll_pwait2(epfd_, events_, kMaxEvents, &ts, nullptr);
                if (n < 0 && errno == ENOSYS) {
                    have_pwait2_ = false;
                    continue;
                }
            } else {
                // Round up, so a timer is never reached early and the loop does not spin.
                std::int64_t ms = (timeout_ns + 999'999) / 1'000'000;
                n = ::epoll_wait(epfd_, events_, kMaxEvents, ms > 1'000'000'000 ? 1'000'000'000 : static_cast<int>(ms));
            }
            if (n >= 0) return n;
            if (errno == EINTR) return 0;  // a signal: let the loop look at its queues
            raise_last_os_error("epoll_wait");
        }
    }

    void dispatch(const epoll_event& ev) {
        int fd = ev.data.fd;
        if (fd == wakeup_fd_) {
            std::uint64_t count;
            [[maybe_unused]] auto r = ::read(wakeup_fd_, &count, sizeof count);
            return;
        }
        if (static_cast<std::size_t>(fd) >= fds_.size()) return;
        std::uint32_t bits = (ev.events & EPOLLIN ? kPollIn : 0u) | (ev.events & EPOLLOUT ? kPollOut : 0u) |
                             (ev.events & EPOLLERR ? kPollErr : 0u) | (ev.events & EPOLLHUP ? kPollHup : 0u);
        // Errors and hang-ups wake both directions, as poll(2) does.
        if (Operation* r = fds_[fd].reader; r && (bits & (kPollIn | kPollErr | kPollHup)))
            r->complete(*r, static_cast<int>(bits));
        if (Operation* w = fds_[fd].writer; w && (bits & (kPollOut | kPollErr | kPollHup)))
            w->complete(*w, static_cast<int>(bits));
    }

    static constexpr int kMaxEvents = 256;
    int epfd_ = -1;
    int wakeup_fd_ = -1;
    bool have_pwait2_ = true;
    std::size_t pending_ = 0;
    std::vector<FdState> fds_;
    epoll_event events_[kMaxEvents];
};

}  // namespace

std::unique_ptr<Backend> make_epoll_backend() { return std::make_unique<EpollBackend>(); }

}  // namespace tulip::asyncio::detail
