// The select backend: the oldest readiness fallback. It cannot watch an fd at or above
// FD_SETSIZE and says so when asked to.
#include <fcntl.h>
#include <sys/select.h>

#include <cerrno>
#include <ctime>

#include "buffer_pool.hpp"
#include "fd_table.hpp"
#include "readiness_ops.hpp"

namespace tulip::asyncio::detail {
namespace {

class SelectBackend final : public Backend {
public:
    ~SelectBackend() override { ops_.cancel_all(); }

    std::string_view name() const noexcept override { return "select"; }

    void submit(Operation& op) override {
        if (op.fd >= FD_SETSIZE)
            throw OSError(EINVAL, "select backend: fd " + std::to_string(op.fd) + " is out of range (FD_SETSIZE is " +
                                      std::to_string(FD_SETSIZE) + "); use the epoll or poll backend");
        if (op.kind != OpKind::poll) {
            ops_.submit(op);
            return;
        }
        fds_.add(op, "select");
    }

    bool cancel(Operation& op) noexcept override {
        if (op.kind != OpKind::poll) {
            ops_.cancel(op);  // a readiness backend releases at once
            return true;
        }
        fds_.remove(op);
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
        fd_set readable, writable;
        FD_ZERO(&readable);
        FD_ZERO(&writable);
        FD_SET(wakeup_.fd(), &readable);
        int max_fd = wakeup_.fd();
        for (std::size_t fd = 0; fd < fds_.size(); ++fd) {
            std::uint32_t wanted = fds_[fd].wanted();
            if (wanted & kPollIn) FD_SET(static_cast<int>(fd), &readable);
            if (wanted & kPollOut) FD_SET(static_cast<int>(fd), &writable);
            if (wanted && static_cast<int>(fd) > max_fd) max_fd = static_cast<int>(fd);
        }
        timespec ts{};
        if (timeout_ns >= 0) {
            ts.tv_sec = static_cast<time_t>(timeout_ns / 1'000'000'000);
            ts.tv_nsec = static_cast<long>(timeout_ns % 1'000'000'000);
        }
        int n = ::pselect(max_fd + 1, &readable, &writable, nullptr, timeout_ns >= 0 ? &ts : nullptr, nullptr);
        if (n < 0) {
            if (errno == EINTR) return;  // a signal: let the loop look at its queues
            if (errno == EBADF) {
                report_closed_fds();
                return;
            }
            raise_last_os_error("pselect");
        }
        if (FD_ISSET(wakeup_.fd(), &readable)) wakeup_.drain();
        for (std::size_t fd = 0; n > 0 && fd < fds_.size(); ++fd) {
            int f = static_cast<int>(fd);
            std::uint32_t ready = (FD_ISSET(f, &readable) ? kPollIn : 0u) | (FD_ISSET(f, &writable) ? kPollOut : 0u);
            if (ready) {
                --n;
                ops_.deliver(f, ready);
            }
        }
    }

    void wakeup() noexcept override { wakeup_.notify(); }
    std::size_t pending_ops() const noexcept override { return fds_.pending() + ops_.pending(); }

    void set_buffer_pool(std::uint32_t count, std::uint32_t size) override { pool_.create(count, size, "select"); }
    std::byte* provided_buffer(std::uint16_t id) noexcept override { return pool_.data(id); }
    std::uint32_t provided_buffer_size() const noexcept override { return pool_.size(); }
    void give_back(std::uint16_t id) noexcept override { ops_.give_back(id); }
    void forget(int fd) noexcept override { ops_.forget(fd); }

private:
    // select() fails as a whole when one watched fd was closed: find those and report them as
    // errors, as poll(2) would with POLLNVAL.
    void report_closed_fds() noexcept {
        for (std::size_t fd = 0; fd < fds_.size(); ++fd) {
            if (fds_[fd].wanted() && ::fcntl(static_cast<int>(fd), F_GETFD) < 0 && errno == EBADF)
                ops_.deliver(static_cast<int>(fd), kPollErr);
        }
    }

    WakeupFd wakeup_;
    FdTable fds_;
    BufferPool pool_;
    ReadinessOps ops_{fds_, pool_, "select"};
    bool skipped_kernel_ = false;
};

}  // namespace

std::unique_ptr<Backend> make_select_backend() { return std::make_unique<SelectBackend>(); }

}  // namespace tulip::asyncio::detail
