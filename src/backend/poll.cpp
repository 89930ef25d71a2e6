// The poll backend: the portable readiness fallback. The pollfd array is rebuilt only when the
// set of watched fds changes.
#include <poll.h>

#include <cerrno>
#include <ctime>
#include <vector>

#include "buffer_pool.hpp"
#include "fd_table.hpp"
#include "readiness_ops.hpp"

namespace tulip::asyncio::detail {
namespace {

class PollBackend final : public Backend {
public:
    ~PollBackend() override { ops_.cancel_all(); }

    std::string_view name() const noexcept override { return "poll"; }

    void submit(Operation& op) override {
        if (op.kind != OpKind::poll) {
            ops_.submit(op);
            return;
        }
        FdTable::Entry& e = fds_.add(op, "poll");
        e.registered = e.wanted();
        dirty_ = true;
    }

    bool cancel(Operation& op) noexcept override {
        if (op.kind != OpKind::poll) {
            ops_.cancel(op);  // a readiness backend releases at once
            return true;
        }
        if (FdTable::Entry* e = fds_.remove(op)) {
            e->registered = e->wanted();
            dirty_ = true;
        }
        return true;
    }

    void wait(std::int64_t timeout_ns) override {
        // Operations that may be ready go first; see the epoll backend.
        if (ops_.run_runnable() || ops_.has_runnable()) {
            if (!skipped_kernel_) {
                skipped_kernel_ = true;
                return;
            }
            timeout_ns = 0;
        }
        skipped_kernel_ = false;
        if (ops_.take_changed()) dirty_ = true;
        if (dirty_) rebuild();
        int n = poll_for(timeout_ns);
        for (std::size_t i = 0; n > 0 && i < pollfds_.size(); ++i) {
            const pollfd& p = pollfds_[i];
            if (!p.revents) continue;
            --n;
            if (p.fd == wakeup_.fd()) {
                wakeup_.drain();
                continue;
            }
            ops_.deliver(p.fd, ready_bits(p.revents));
        }
    }

    void wakeup() noexcept override { wakeup_.notify(); }
    std::size_t pending_ops() const noexcept override { return fds_.pending() + ops_.pending(); }

    void set_buffer_pool(std::uint32_t count, std::uint32_t size) override { pool_.create(count, size, "poll"); }
    std::byte* provided_buffer(std::uint16_t id) noexcept override { return pool_.data(id); }
    std::uint32_t provided_buffer_size() const noexcept override { return pool_.size(); }
    void give_back(std::uint16_t id) noexcept override { ops_.give_back(id); }
    void forget(int fd) noexcept override {
        if (ops_.forget(fd)) dirty_ = true;
    }

private:
    static std::uint32_t ready_bits(short revents) noexcept {
        // POLLNVAL: the fd was closed while watched; report it as an error to both directions.
        return (revents & POLLIN ? kPollIn : 0u) | (revents & POLLOUT ? kPollOut : 0u) |
               (revents & (POLLERR | POLLNVAL) ? kPollErr : 0u) | (revents & POLLHUP ? kPollHup : 0u);
    }

    void rebuild() {
        pollfds_.clear();
        pollfds_.push_back({wakeup_.fd(), POLLIN, 0});
        for (std::size_t fd = 0; fd < fds_.size(); ++fd) {
            std::uint32_t wanted = fds_[fd].wanted();
            if (!wanted) continue;
            short events = static_cast<short>((wanted & kPollIn ? POLLIN : 0) | (wanted & kPollOut ? POLLOUT : 0));
            pollfds_.push_back({static_cast<int>(fd), events, 0});
        }
        dirty_ = false;
    }

    int poll_for(std::int64_t timeout_ns) {
        timespec ts{};
        if (timeout_ns >= 0) {
            ts.tv_sec = static_cast<time_t>(timeout_ns / 1'000'000'000);
            ts.tv_nsec = static_cast<long>(timeout_ns % 1'000'000'000);
        }
        int n = ::ppoll(pollfds_.data(), pollfds_.size(), timeout_ns >= 0 ? &ts : nullptr, nullptr);
        if (n >= 0) return n;
        if (errno == EINTR) return 0;  // a signal: let the loop look at its queues
        raise_last_os_error("ppoll");
    }

    WakeupFd wakeup_;
    FdTable fds_;
    BufferPool pool_;
    ReadinessOps ops_{fds_, pool_, "poll"};
    bool skipped_kernel_ = false;
    std::vector<pollfd> pollfds_;
    bool dirty_ = true;
};

}  // namespace

std::unique_ptr<Backend> make_poll_backend() { return std::make_unique<PollBackend>(); }

}  // namespace tulip::asyncio::detail
