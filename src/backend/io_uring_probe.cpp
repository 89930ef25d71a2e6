// The once-per-process test behind io_uring_usable(): set up a ring, register a one-buffer
// provided-buffer ring (incrementally consumed if the kernel can: io_uring_incremental_buffers()),
// arm a multishot recv on a socketpair and check that it delivers a byte and stays armed.
#include "io_uring_probe.hpp"

#include <liburing.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>

#include "io_uring_buf_ring.hpp"
#include "ring_handoff.hpp"
#include "tulip/exceptions.hpp"

namespace tulip::asyncio::detail {
namespace {

constexpr std::uint16_t kProbeGroup = 0;
constexpr std::uint64_t kRecvTag = 1;

std::string os_reason(const char* call, int err) { return std::string(call) + ": " + std::strerror(err); }

// A ring, a buffer ring and a socketpair, released in the right order whatever the outcome:
// the ring first (the kernel lets go of the buffer ring's pages), then the mappings.
class ProbeRing {
public:
    ~ProbeRing() {
        if (ring_ok_) {
            ring_torn_down();
            io_uring_queue_exit(&ring_);
        }
        for (int fd : pair_)
            if (fd >= 0) ::close(fd);
    }

    // Empty when it works, else what is missing.
    std::optional<std::string> setup_error() {
        if (int r = io_uring_queue_init(4, &ring_, 0); r < 0) return os_reason("io_uring_setup", -r);
        ring_ok_ = true;
        ring_set_up();
        return std::nullopt;
    }

    std::optional<std::string> feature_error() {
        if (auto err = register_buffer_ring()) return err;
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair_) < 0)
            return os_reason("socketpair", errno);
        return check_multishot_recv();
    }
    bool incremental() const noexcept { return buffers_.incremental(); }

private:
    std::optional<std::string> register_buffer_ring() {
        try {
            buffers_.create(ring_, kProbeGroup, 1, 64, true);
        } catch (const OSError& e) {
            return std::string("provided buffer rings (Linux 5.19) are missing: ") + e.what();
        }
        return std::nullopt;
    }

    std::optional<std::string> check_multishot_recv() {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        io_uring_prep_recv_multishot(sqe, pair_[0], nullptr, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = kProbeGroup;
        io_uring_sqe_set_data64(sqe, kRecvTag);
        if (::write(pair_[1], "x", 1) != 1) return os_reason("write", errno);
        __kernel_timespec timeout{.tv_sec = 5, .tv_nsec = 0};
        io_uring_cqe* cqe = nullptr;
        if (int r = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &timeout, nullptr); r < 0)
            return os_reason("io_uring_enter (multishot recv probe)", -r);
        int res = cqe->res;
        bool more = cqe->flags & IORING_CQE_F_MORE;
        io_uring_cqe_seen(&ring_, cqe);
        if (res < 0) return "multishot recv (Linux 6.0) is missing: " + os_reason("recv", -res);
        if (res != 1 || !more) return std::string("multishot recv (Linux 6.0) is missing: the recv did not stay armed");
        return std::nullopt;
    }

    io_uring ring_{};
    bool ring_ok_ = false;
    int pair_[2] = {-1, -1};
    IoUringBufRing buffers_;  // unmapped after the destructor's body has torn the ring down
};

struct Verdict {
    std::string missing;  // empty: usable
    bool incremental = false;
};

std::mutex verdict_mutex;
std::optional<Verdict> verdict;  // set once the features were tested

// Tests once (under verdict_mutex); null with the reason in `why` when io_uring_setup is refused.
const Verdict* probe_once(std::string& why) {
    if (!verdict) {
        ProbeRing probe;
        if (auto err = probe.setup_error()) {
            why = *err;
            return nullptr;
        }
        std::optional<std::string> missing = probe.feature_error();
        verdict = Verdict{missing.value_or(""), !missing && probe.incremental()};
    }
    why = verdict->missing;
    return &*verdict;
}

}  // namespace

bool io_uring_usable(std::string& why) {
    std::lock_guard lock(verdict_mutex);
    const Verdict* v = probe_once(why);
    return v && v->missing.empty();
}

bool io_uring_incremental_buffers() {
    std::lock_guard lock(verdict_mutex);
    std::string why;
    const Verdict* v = probe_once(why);
    return v && v->incremental;
}

}  // namespace tulip::asyncio::detail
