// The epoll backend: a readiness backend. An fd with poll operations is registered with the union
// of what they watch (level-triggered), re-registered only when that union changes. An fd with
// socket operations is registered once, edge-triggered for both directions, until forget():
// readiness_ops.hpp keeps its "may be readable/writable" flags between the edges. An fd whose
// poll operations all carry the same file token (the sock_* waits) is registered edge-triggered
// and stays so after they are released, until an event finds no wait on it, a poll operation
// without that token comes, or forget(): a steady sock_recv loop costs no epoll_ctl.
//
// Each registration's epoll_data holds the fd in its low 32 bits and the file token (0 for
// the others) in its high 32 bits, so an event from a registration left behind by a closed
// file that a duplicate keeps open is told apart from the events of a new file on the number.
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

std::uint64_t pack(int fd, std::uint32_t token) noexcept {
    return static_cast<std::uint32_t>(fd) | (std::uint64_t{token} << 32);
}

// True when token is nonzero and every poll operation on the fd carries it.
bool edge_waits_only(const FdTable::Entry& e, std::uint32_t token) noexcept {
    return token != 0 && (!e.reader || e.reader->file_token == token) && (!e.writer || e.writer->file_token == token);
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
        ev.data.u64 = pack(wakeup_.fd(), 0);
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
            if (edge_waits_only(e, op.file_token)) {
                arm_edge(op.fd, e, op.file_token);
            } else {
                update(op.fd, e);
            }
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
            // An edge registration stays: the next wait on the same file costs nothing.
            if (e->edge) return true;
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
            std::uint64_t data = events_[i].data.u64;
            int fd = static_cast<int>(static_cast<std::uint32_t>(data));
            auto token = static_cast<std::uint32_t>(data >> 32);
            if (fd == wakeup_.fd() && token == 0) {
                wakeup_.drain();
                continue;
            }
            if (token != 0 && !current_edge_event(fd, token)) continue;
            ops_.deliver(fd, from_epoll(events_[i].events));
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
        bool edge = drop_edge(fd);
        if (ops_.forget(fd) || edge) ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
    }

private:
    void register_for_life(Operation& op) {
        drop_edge(op.fd);  // the ADD below becomes a MOD if the fd is still registered
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
        ev.data.u64 = pack(op.fd, 0);
        // EEXIST: the number was closed and reused while a duplicate kept the old registration.
        if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, op.fd, &ev) < 0 &&
            (errno != EEXIST || ::epoll_ctl(epfd_, EPOLL_CTL_MOD, op.fd, &ev) < 0)) {
            int err = errno;
            ops_.cancel(op);
            ops_.forget(op.fd);
            raise_os_error(err, "epoll_ctl(ADD, fd " + std::to_string(op.fd) + ")");
        }
    }

    // Brings epoll's registration of fd in line with its operations (level-triggered).
    void update(int fd, FdTable::Entry& e) {
        std::uint32_t wanted = e.wanted();
        if (wanted == e.registered && !e.edge) return;
        epoll_event ev{};
        ev.events = to_epoll(wanted);
        ev.data.u64 = pack(fd, 0);
        if (wanted == 0) {
            // ENOENT/EBADF: the fd was closed (and so dropped by the kernel) before we got here.
            if (::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, &ev) < 0 && errno != ENOENT && errno != EBADF)
                raise_last_os_error("epoll_ctl(DEL, fd " + std::to_string(fd) + ")");
        } else {
            add_or_modify(fd, e.registered != 0, ev);
        }
        e.registered = wanted;
        e.edge = false;
        e.token = 0;
    }

    // Registers fd edge-triggered for the waits on one open file (`token`), or finds it so
    // already: then, the steady state of a sock_* loop, no epoll_ctl at all. The waiter has just
    // had EAGAIN, so the next edge is what it waits for. A registration made for another token
    // may belong to a file closed since (dropped by the kernel, or kept by a duplicate): it is
    // replaced, MOD failing over to ADD.
    void arm_edge(int fd, FdTable::Entry& e, std::uint32_t token) {
        std::uint32_t wanted = e.wanted();
        bool same_file = e.edge && e.token == token;
        if (same_file && (e.registered & wanted) == wanted) return;
        std::uint32_t interest = wanted | (same_file ? e.registered : 0u);
        epoll_event ev{};
        ev.events = to_epoll(interest) | EPOLLRDHUP | EPOLLET;
        ev.data.u64 = pack(fd, token);
        add_or_modify(fd, e.registered != 0, ev);
        e.registered = interest;
        e.edge = true;
        e.token = token;
    }

    // MOD when we believe fd registered, else ADD; each fails over to the other, since the
    // number may have been closed and reused behind our back (ENOENT, EEXIST).
    void add_or_modify(int fd, bool registered, epoll_event& ev) {
        int first = registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
        if (::epoll_ctl(epfd_, first, fd, &ev) == 0) return;
        int expected = registered ? ENOENT : EEXIST;
        if (errno != expected || ::epoll_ctl(epfd_, registered ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev) < 0)
            raise_last_os_error(std::string(registered ? "epoll_ctl(MOD" : "epoll_ctl(ADD") + ", fd " +
                                std::to_string(fd) + ")");
    }

    // An event of an edge registration (token != 0): true when it is the current file's and a
    // wait wants the fd. An event from a registration left by a closed file that a duplicate
    // keeps open is skipped: it cannot be deleted (the number names another file or none), and,
    // edge-triggered, it only costs a wake-up per edge of that file, never a busy loop (the
    // level-triggered trap of libuv #1148 and uvloop #61). When no wait wants the fd any more,
    // the registration is dropped now, as libuv's uv__io_poll drops a watcher stopped since.
    bool current_edge_event(int fd, std::uint32_t token) noexcept {
        if (fd < 0 || static_cast<std::size_t>(fd) >= fds_.size()) return false;
        FdTable::Entry& e = fds_[fd];
        if (!e.edge || e.token != token) return false;
        if (e.reader || e.writer) return true;
        // EBADF/ENOENT: the file was closed; a duplicate keeps the item, now skipped above.
        ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
        drop_edge(fd);
        return false;
    }

    // Forgets fd's edge registration, if it has one with no wait on it; true if it had.
    bool drop_edge(int fd) noexcept {
        if (fd < 0 || static_cast<std::size_t>(fd) >= fds_.size()) return false;
        FdTable::Entry& e = fds_[fd];
        if (!e.edge || e.reader || e.writer) return false;
        e.edge = false;
        e.token = 0;
        e.registered = 0;
        return true;
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
