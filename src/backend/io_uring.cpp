// The io_uring backend: the completion backend. One ring per loop; everything prepared during an
// iteration goes to the kernel in the one io_uring_enter of the next wait().
//
// poll is a one-shot POLL_ADD re-armed after each completion: a multishot poll reports only new
// wake-ups, while add_reader must keep firing on every iteration in which the fd is readable, as
// Python's does. Cancellation is asynchronous (ASYNC_CANCEL): cancel() returns false and the
// operation completes one last time with -ECANCELED once the kernel has let go of it.
#include <liburing.h>
#include <poll.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "fd_table.hpp"

namespace tulip::asyncio::detail {
namespace {

// Operation::backend_state bits.
constexpr std::uint32_t kActive = 1;     // submitted by the loop and not cancelled
constexpr std::uint32_t kInFlight = 2;   // an SQE for it is queued or in the kernel

class IoUringBackend final : public Backend {
public:
    // Throws OSError when the kernel refuses (old kernel, seccomp, io_uring_disabled).
    IoUringBackend() {
        io_uring_params params{};
        params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
        int r = io_uring_queue_init_params(kEntries, &ring_, &params);
        if (r == -EINVAL) {
            // Kernels before 6.1 lack DEFER_TASKRUN (and before 6.0 SINGLE_ISSUER).
            params = {};
            r = io_uring_queue_init_params(kEntries, &ring_, &params);
        }
        if (r < 0) raise_os_error(-r, "io_uring_setup");
        arm_wakeup();
    }
    IoUringBackend(const IoUringBackend&) = delete;
    IoUringBackend& operator=(const IoUringBackend&) = delete;
    ~IoUringBackend() override { io_uring_queue_exit(&ring_); }

    std::string_view name() const noexcept override { return "io_uring"; }

    void submit(Operation& op) override {
        if (op.fd < 0) throw OSError(EBADF, "io_uring backend: invalid fd " + std::to_string(op.fd));
        if (op.backend_state & kActive) throw RuntimeError("io_uring backend: operation submitted twice");
        if (!(op.backend_state & kInFlight)) ++pending_;
        op.backend_state |= kActive;
        if (!(op.backend_state & kInFlight)) arm_poll(op);
    }

    bool cancel(Operation& op) noexcept override {
        if (!(op.backend_state & kActive)) return !(op.backend_state & kInFlight);
        op.backend_state &= ~kActive;
        if (!(op.backend_state & kInFlight)) {
            --pending_;
            return true;
        }
        io_uring_sqe* sqe = next_sqe();
        io_uring_prep_cancel(sqe, &op, 0);
        io_uring_sqe_set_data(sqe, nullptr);  // the cancel's own completion carries nothing
        return false;
    }

    void wait(std::int64_t timeout_ns) override {
        int r;
        if (timeout_ns == 0) {
            r = io_uring_submit_and_get_events(&ring_);
        } else {
            __kernel_timespec ts{};
            ts.tv_sec = timeout_ns / 1'000'000'000;
            ts.tv_nsec = timeout_ns % 1'000'000'000;
            io_uring_cqe* cqe = nullptr;
            r = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, timeout_ns > 0 ? &ts : nullptr, nullptr);
        }
        if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY && r != -EAGAIN)
            raise_os_error(-r, "io_uring_enter");
        reap();
    }

    void wakeup() noexcept override { wakeup_.notify(); }
    std::size_t pending_ops() const noexcept override { return pending_; }

private:
    io_uring_sqe* next_sqe() noexcept {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        while (!sqe) {
            // The submission queue is full: hand it to the kernel now and take a fresh slot.
            io_uring_submit(&ring_);
            sqe = io_uring_get_sqe(&ring_);
        }
        return sqe;
    }

    void arm_poll(Operation& op) {
        io_uring_sqe* sqe = next_sqe();
        unsigned mask = (op.poll_events & kPollIn ? POLLIN : 0) | (op.poll_events & kPollOut ? POLLOUT : 0);
        io_uring_prep_poll_add(sqe, op.fd, mask);
        io_uring_sqe_set_data(sqe, &op);
        op.backend_state |= kInFlight;
    }

    void arm_wakeup() {
        io_uring_sqe* sqe = next_sqe();
        io_uring_prep_poll_multishot(sqe, wakeup_.fd(), POLLIN);
        io_uring_sqe_set_data(sqe, &wakeup_tag_);
    }

    void reap() {
        io_uring_cqe* cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring_, head, cqe) {
            ++seen;
            void* data = io_uring_cqe_get_data(cqe);
            if (!data) continue;  // an ASYNC_CANCEL's own result
            if (data == &wakeup_tag_) {
                wakeup_.drain();
                if (!(cqe->flags & IORING_CQE_F_MORE)) rearm_wakeup_ = true;
                continue;
            }
            finish(*static_cast<Operation*>(data), cqe->res);
        }
        io_uring_cq_advance(&ring_, seen);
        if (rearm_wakeup_) {
            rearm_wakeup_ = false;
            arm_wakeup();
        }
    }

    void finish(Operation& op, int res) noexcept {
        op.backend_state &= ~kInFlight;
        if (!(op.backend_state & kActive)) {
            // Cancelled: this is the final completion; the owner may free op now.
            --pending_;
            op.backend_state = 0;
            op.complete(op, -ECANCELED);
            return;
        }
        if (res < 0) {
            // The fd is unusable (EBADF after close, ...): report an error, as poll(2) would.
            op.complete(op, static_cast<int>(kPollErr));
        } else {
            std::uint32_t bits = (res & POLLIN ? kPollIn : 0u) | (res & POLLOUT ? kPollOut : 0u) |
                                 (res & POLLERR ? kPollErr : 0u) | (res & POLLHUP ? kPollHup : 0u) |
                                 (res & POLLNVAL ? kPollErr : 0u);
            op.complete(op, static_cast<int>(bits));
        }
        // Level-triggered: look again on the next wait(). After an error the fd is not watched
        // any more (re-arming would only repeat the error); the owner cancels the operation.
        if ((op.backend_state & kActive) && res >= 0) arm_poll(op);
    }

    static constexpr unsigned kEntries = 256;
    io_uring ring_{};
    WakeupFd wakeup_;
    char wakeup_tag_ = 0;  // its address marks the wake-up poll's completions
    bool rearm_wakeup_ = false;
    std::size_t pending_ = 0;
};

}  // namespace

std::unique_ptr<Backend> make_io_uring_backend(std::string& why) {
    try {
        return std::make_unique<IoUringBackend>();
    } catch (const OSError& e) {
        why = e.what();
        return nullptr;
    }
}

}  // namespace tulip::asyncio::detail
