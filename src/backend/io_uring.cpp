// The io_uring backend: the completion backend. One ring per loop; everything prepared during an
// iteration goes to the kernel in the one io_uring_enter of the next wait().
//
// Socket operations are submitted as they are: RECV, SENDMSG (MSG_NOSIGNAL), RECVMSG, ACCEPT,
// CONNECT. A multishot recv reads into a ring of provided buffers (IORING_RECV_MULTISHOT with
// IOSQE_BUFFER_SELECT, Linux 6.0), so an idle connection pins no buffer; when the ring runs dry
// the kernel ends the recv with -ENOBUFS, the data stays in the socket, and the recv is armed
// again as buffers come back. Where the kernel consumes provided buffers incrementally (Linux
// 6.12), the buffers are large and a recv takes only what it brings, so one completion can carry
// a busy connection's whole socket queue (io_uring_buf_ring.hpp). A multishot accept (Linux
// 5.19) returns each new fd.
//
// poll is a one-shot POLL_ADD re-armed after each completion: a multishot poll reports only new
// wake-ups, while add_reader must keep firing on every iteration in which the fd is readable, as
// Python's does. Cancellation is asynchronous (ASYNC_CANCEL): cancel() returns false and the
// operation completes one last time: -ECANCELED, or its real result when it finished first.
#include <liburing.h>
#include <poll.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "fd_table.hpp"
#include "io_uring_buf_ring.hpp"
#include "io_uring_probe.hpp"
#include "op_checks.hpp"
#include "ring_handoff.hpp"

namespace tulip::asyncio::detail {
namespace {

// Operation::backend_state bits.
constexpr std::uint32_t kActive = 1;     // submitted by the loop and not cancelled
constexpr std::uint32_t kInFlight = 2;   // an SQE for it is queued or in the kernel
constexpr std::uint32_t kStarved = 4;    // a multishot recv waiting for provided buffers

constexpr std::uint16_t kBufferGroup = 0;

// The default pool when buffers are consumed incrementally: the same 4 MiB as Backend's default,
// in buffers large enough for one recv to take a busy connection's whole socket queue (on the
// bulk echo, 16 x 256 KiB, 32 x 128 KiB, 8 x 128 KiB and 4 x 1 MiB ran alike; 64 KiB buffers
// cost 20-30% more CPU per message). Small reads share a buffer.
constexpr std::uint32_t kIncrementalBufferCount = 32;
constexpr std::uint32_t kIncrementalBufferSize = 128 * 1024;

class IoUringBackend final : public Backend {
public:
    // Throws OSError when the kernel refuses (old kernel, seccomp, io_uring_disabled).
    explicit IoUringBackend(bool incremental_buffers) : incremental_buffers_(incremental_buffers) {
        io_uring_params params{};
        params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
        params.cq_entries = kCqEntries;
        int r = io_uring_queue_init_params(kEntries, &ring_, &params);
        if (r == -EINVAL) {
            // Kernels before 6.1 lack DEFER_TASKRUN (and before 6.0 SINGLE_ISSUER).
            params = {};
            params.flags = IORING_SETUP_CQSIZE;
            params.cq_entries = kCqEntries;
            r = io_uring_queue_init_params(kEntries, &ring_, &params);
        }
        if (r < 0) raise_os_error(-r, "io_uring_setup");
        ring_set_up();
        arm_wakeup();
    }
    IoUringBackend(const IoUringBackend&) = delete;
    IoUringBackend& operator=(const IoUringBackend&) = delete;
    ~IoUringBackend() override {
        drain_for_exit();
        ring_torn_down();
        io_uring_queue_exit(&ring_);  // before bufs_ unmaps the ring and the buffers
    }

    std::string_view name() const noexcept override { return "io_uring"; }
    bool native_socket_ops() const noexcept override { return true; }

    void submit(Operation& op) override {
        check_socket_op(op, "io_uring");
        if (op.backend_state & kActive) throw RuntimeError("io_uring backend: operation submitted twice");
        if (op.kind == OpKind::poll) {
            if (!(op.backend_state & kInFlight)) ++pending_;
            op.backend_state |= kActive;
            if (!(op.backend_state & kInFlight)) arm_poll(op);
            return;
        }
        if (op.backend_state & kInFlight)
            throw RuntimeError("io_uring backend: operation submitted again before its final completion");
        if ((op.flags & kProvidedBuffer) && !bufs_.created()) make_default_pool();
        op.more = false;
        op.backend_next = nullptr;
        op.backend_state = kActive;
        ++pending_;
        arm(op);
    }

    bool cancel(Operation& op) noexcept override {
        if (!(op.backend_state & kActive)) return !(op.backend_state & kInFlight);
        op.backend_state &= ~kActive;
        if (op.backend_state & kStarved) {
            unlink_starved(op);
            release(op);
            return true;
        }
        if (!(op.backend_state & kInFlight)) {
            release(op);
            return true;
        }
        io_uring_sqe* sqe = next_sqe();
        io_uring_prep_cancel64(sqe, reinterpret_cast<std::uintptr_t>(&op), 0);
        io_uring_sqe_set_data(sqe, nullptr);  // the cancel's own completion carries nothing
        return false;
    }

    void wait(std::int64_t timeout_ns) override {
        rearm_starved();
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

    void set_buffer_pool(std::uint32_t count, std::uint32_t size) override {
        bufs_.create(ring_, kBufferGroup, count, size, incremental_buffers_);
    }
    std::byte* provided_buffer(std::uint16_t id) noexcept override { return bufs_.data(id); }
    std::uint32_t provided_buffer_size() const noexcept override { return bufs_.size(); }

    void give_back(std::uint16_t id) noexcept override {
        bufs_.give_back(id);
        // The next wait() arms the recvs that wait for buffers (rearm_starved).
    }

    void forget(int) noexcept override {}  // nothing is registered per fd

private:
    void make_default_pool() {
        // The once-per-process probe found out whether the kernel has IOU_PBUF_RING_INC.
        if (incremental_buffers_ && io_uring_incremental_buffers())
            set_buffer_pool(kIncrementalBufferCount, kIncrementalBufferSize);
        else
            set_buffer_pool(kDefaultBufferCount, kDefaultBufferSize);
    }

    io_uring_sqe* next_sqe() noexcept {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        while (!sqe) {
            // The submission queue is full: hand it to the kernel now and take a fresh slot.
            io_uring_submit(&ring_);
            sqe = io_uring_get_sqe(&ring_);
        }
        return sqe;
    }

    void arm(Operation& op) noexcept {
        io_uring_sqe* sqe = next_sqe();
        switch (op.kind) {
            case OpKind::recv:
                if (op.flags & kProvidedBuffer) {
                    io_uring_prep_recv_multishot(sqe, op.fd, nullptr, 0, 0);
                    sqe->flags |= IOSQE_BUFFER_SELECT;
                    sqe->buf_group = kBufferGroup;
                } else {
                    io_uring_prep_recv(sqe, op.fd, op.buf, op.len, 0);
                }
                break;
            case OpKind::send:
            case OpKind::sendmsg:
                io_uring_prep_sendmsg(sqe, op.fd, &op.msg, MSG_NOSIGNAL);
                break;
            case OpKind::recvmsg:
                io_uring_prep_recvmsg(sqe, op.fd, &op.msg, 0);
                break;
            case OpKind::accept:
                if (op.flags & kMultishot)
                    io_uring_prep_multishot_accept(sqe, op.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
                else
                    io_uring_prep_accept(sqe, op.fd, op.addr, op.addr ? &op.addrlen : nullptr,
                                         SOCK_NONBLOCK | SOCK_CLOEXEC);
                break;
            case OpKind::connect:
                io_uring_prep_connect(sqe, op.fd, op.addr, op.addrlen);
                break;
            case OpKind::poll:
                break;  // arm_poll
        }
        io_uring_sqe_set_data(sqe, &op);
        op.backend_state |= kInFlight;
        ++in_flight_;
    }

    void arm_poll(Operation& op) {
        io_uring_sqe* sqe = next_sqe();
        unsigned mask = (op.poll_events & kPollIn ? POLLIN : 0) | (op.poll_events & kPollOut ? POLLOUT : 0);
        io_uring_prep_poll_add(sqe, op.fd, mask);
        io_uring_sqe_set_data(sqe, &op);
        op.backend_state |= kInFlight;
        ++in_flight_;
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
                if (!(cqe->flags & IORING_CQE_F_MORE) && !closing_) rearm_wakeup_ = true;
                continue;
            }
            auto& op = *static_cast<Operation*>(data);
            if (op.kind == OpKind::poll)
                finish_poll(op, cqe->res);
            else
                finish(op, cqe->res, cqe->flags);
        }
        io_uring_cq_advance(&ring_, seen);
        if (rearm_wakeup_) {
            rearm_wakeup_ = false;
            arm_wakeup();
        }
    }

    void finish(Operation& op, int res, unsigned cqe_flags) noexcept {
        if (cqe_flags & IORING_CQE_F_BUFFER) {
            auto id = static_cast<std::uint16_t>(cqe_flags >> IORING_CQE_BUFFER_SHIFT);
            if (res > 0) {
                op.buffer_id = id;
                op.buffer_offset = bufs_.take(id, static_cast<std::uint32_t>(res), cqe_flags);
            } else {
                bufs_.taken_empty(id, cqe_flags);  // no bytes for the owner to give back
            }
        }
        if (cqe_flags & IORING_CQE_F_MORE) {  // a multishot operation goes on
            deliver(op, res, true);
            return;
        }
        op.backend_state &= ~kInFlight;
        --in_flight_;
        if ((op.backend_state & kActive) && (op.flags & kMultishot) && !closing_) {
            if (op.kind == OpKind::recv && res == -ENOBUFS) {
                // The buffer ring ran dry; the bytes wait in the socket until buffers come back
                // (rearm_starved, at the start of every wait()).
                starve(op);
                return;
            }
            // Ended without an error (CQ overflow, the kernel's own limits): go on. Arm before
            // delivering, so that a cancel() from the completion finds the operation in flight.
            if (op.kind == OpKind::accept ? res >= 0 : res > 0) {
                arm(op);
                deliver(op, res, true);
                return;
            }
        }
        bool cancelled = !(op.backend_state & kActive);
        release(op);
        deliver(op, cancelled && res == -ENOBUFS ? -ECANCELED : res, false);
    }

    void finish_poll(Operation& op, int res) noexcept {
        op.backend_state &= ~kInFlight;
        --in_flight_;
        if (closing_) {
            // At exit a poll's owner may be gone already (the loop drops its watches before
            // its backend): release it without a word, as before socket operations existed.
            release(op);
            return;
        }
        if (!(op.backend_state & kActive)) {
            // Cancelled: this is the final completion; the owner may free op now.
            release(op);
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

    void deliver(Operation& op, int result, bool more) noexcept {
        op.more = more;
        op.complete(op, result);
    }

    void release(Operation& op) noexcept {
        op.backend_state = 0;
        op.backend_next = nullptr;
        --pending_;
    }

    // Arms, oldest first, as many recvs waiting for buffers as the ring holds buffers now (those
    // not handed out by a reaped completion and not yet given back). A recv armed this way may
    // still find the ring empty, when an armed recv took the buffer first: it waits again, and
    // the next wait() counts again. Counting free buffers rather than re-arming one recv per
    // give_back() matters: a re-armed recv can end without taking a buffer (EOF, a reset), and
    // the buffer would then sit in the ring with recvs waiting for it for ever.
    void rearm_starved() noexcept {
        if (!starved_head_) return;
        std::size_t free = bufs_.count() > bufs_.out() ? bufs_.count() - bufs_.out() : 0;
        for (; free > 0 && starved_head_; --free) {
            Operation& op = *starved_head_;
            unlink_starved(op);
            arm(op);
        }
    }

    void starve(Operation& op) noexcept {
        op.backend_state |= kStarved;
        op.backend_next = nullptr;
        (starved_tail_ ? starved_tail_->backend_next : starved_head_) = &op;
        starved_tail_ = &op;
    }

    void unlink_starved(Operation& op) noexcept {
        Operation* prev = nullptr;
        for (Operation* p = starved_head_; p; prev = p, p = p->backend_next) {
            if (p != &op) continue;
            (prev ? prev->backend_next : starved_head_) = op.backend_next;
            if (starved_tail_ == &op) starved_tail_ = prev;
            break;
        }
        op.backend_next = nullptr;
        op.backend_state &= ~kStarved;
    }

    // Before the ring goes: cancel everything in the kernel and wait until it let go of every
    // request, so that no buffer is written after its owner was told it is free. Socket
    // operations still held complete (-ECANCELED, or their real result).
    void drain_for_exit() noexcept {
        closing_ = true;
        while (Operation* op = starved_head_) {
            unlink_starved(*op);
            release(*op);
            deliver(*op, -ECANCELED, false);
        }
        io_uring_sqe* sqe = next_sqe();
        io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
        io_uring_sqe_set_data(sqe, nullptr);
        for (int i = 0; i < 1000 && in_flight_ > 0; ++i) {
            __kernel_timespec ts{0, 10'000'000};
            io_uring_cqe* cqe = nullptr;
            io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
            reap();
        }
    }

    static constexpr unsigned kEntries = 256;
    static constexpr unsigned kCqEntries = 4096;
    io_uring ring_{};
    WakeupFd wakeup_;
    char wakeup_tag_ = 0;  // its address marks the wake-up poll's completions
    bool rearm_wakeup_ = false;
    bool closing_ = false;
    std::size_t pending_ = 0;
    std::size_t in_flight_ = 0;  // requests the kernel holds (the wake-up poll aside)
    bool incremental_buffers_;  // consume provided buffers incrementally if the kernel can
    IoUringBufRing bufs_;
    Operation* starved_head_ = nullptr;
    Operation* starved_tail_ = nullptr;
};

}  // namespace

std::unique_ptr<Backend> make_io_uring_backend(std::string& why, bool incremental_buffers) {
    try {
        return std::make_unique<IoUringBackend>(incremental_buffers);
    } catch (const OSError& e) {
        why = e.what();
        return nullptr;
    }
}

}  // namespace tulip::asyncio::detail
