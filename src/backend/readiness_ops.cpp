#include "readiness_ops.hpp"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <string>

#include "op_checks.hpp"
#include "tulip/exceptions.hpp"

namespace tulip::asyncio::detail {
namespace {

// Operation::backend_state bits.
constexpr std::uint32_t kQueued = 1;
constexpr std::uint32_t kConnecting = 2;  // connect() said EINPROGRESS; SO_ERROR tells the end

bool reads(OpKind kind) noexcept {
    return kind == OpKind::recv || kind == OpKind::accept || kind == OpKind::recvmsg;
}

std::size_t total_len(const msghdr& msg) noexcept {
    std::size_t n = 0;
    for (std::size_t i = 0; i < msg.msg_iovlen; ++i) n += msg.msg_iov[i].iov_len;
    return n;
}

// Stream sockets and non-sockets (pipes) are streams: a short read means drained.
bool is_stream(int fd) noexcept {
    int type = 0;
    socklen_t len = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) return true;
    return type == SOCK_STREAM;
}

}  // namespace

bool ReadinessOps::submit(Operation& op) {
    check_socket_op(op, name_);
    if (op.backend_state & kQueued)
        throw RuntimeError(std::string(name_) + " backend: operation submitted twice");
    FdTable::Entry& e = fds_.at(op.fd);
    if (e.reader || e.writer)
        throw RuntimeError(std::string(name_) + " backend: fd " + std::to_string(op.fd) +
                           " has a poll operation; it cannot also carry socket operations");
    if ((op.flags & kProvidedBuffer) && !pool_.created())
        pool_.create(Backend::kDefaultBufferCount, Backend::kDefaultBufferSize, name_);

    bool entered = !e.sock_mode;
    if (entered) {
        e.sock_mode = true;
        e.readable = e.writable = true;
        e.peer_closed = e.starved = false;
        e.stream = is_stream(op.fd);
    }
    op.backend_state = kQueued;
    op.backend_next = nullptr;
    op.more = false;
    ++pending_;
    changed_ = true;
    if (reads(op.kind)) {
        push(e.read_head, e.read_tail, op);
        if (e.readable && !e.starved) mark_runnable(op.fd, e);
    } else {
        push(e.write_head, e.write_tail, op);
        if (e.writable) mark_runnable(op.fd, e);
    }
    return entered;
}

bool ReadinessOps::cancel(Operation& op) noexcept {
    if (!(op.backend_state & kQueued)) return false;
    FdTable::Entry& e = fds_[op.fd];
    if (reads(op.kind)) {
        unlink(e.read_head, e.read_tail, op);
        if (!e.read_head) e.starved = false;  // its place in starved_ is skipped later
    } else {
        unlink(e.write_head, e.write_tail, op);
    }
    op.backend_state = 0;
    op.backend_next = nullptr;
    --pending_;
    changed_ = true;
    return true;
}

bool ReadinessOps::run_runnable() {
    std::size_t before = completed_;
    running_.swap(runnable_);
    for (int fd : running_) {
        FdTable::Entry& e = fds_[fd];
        e.runnable = false;
        if (e.sock_mode) run(fd);
    }
    running_.clear();
    return completed_ != before;
}

void ReadinessOps::deliver(int fd, std::uint32_t ready) {
    if (fd < 0 || static_cast<std::size_t>(fd) >= fds_.size()) return;
    FdTable::Entry& e = fds_[fd];
    if (!e.sock_mode) {
        fds_.deliver(fd, ready);
        return;
    }
    if (ready & (kPollHup | kPollErr | kPollRdHup)) e.peer_closed = true;
    if (ready & (kPollIn | kPollErr | kPollHup | kPollRdHup)) e.readable = true;
    if (ready & (kPollOut | kPollErr | kPollHup)) e.writable = true;
    run(fd);
}

void ReadinessOps::run(int fd) {
    run_reads(fd);
    run_writes(fd);
}

void ReadinessOps::run_reads(int fd) {
    for (int budget = kBudget; budget > 0; --budget) {
        // Look the entry up again each time: a completion may submit on a new fd and grow the table.
        FdTable::Entry* e = &fds_[fd];
        if (!e->sock_mode || !e->readable || !e->read_head) return;
        Operation& op = *e->read_head;
        void* provided = nullptr;
        std::uint16_t id = 0;
        if (op.flags & kProvidedBuffer) {
            if (!pool_.take(id)) {
                mark_starved(fd, *e);
                return;
            }
            provided = pool_.data(id);
        }
        int r = attempt(op, provided);
        if (r == -EAGAIN) {
            // give_back, not a bare put: the buffer may be the one a starved fd was woken for.
            if (provided) give_back(id);
            e->readable = false;
            return;
        }
        if (op.kind == OpKind::recv) {
            std::size_t asked = provided ? pool_.size() : op.len;
            if (r > 0 && e->stream && !e->peer_closed && static_cast<std::size_t>(r) < asked) e->readable = false;
            if (provided) {
                if (r > 0)
                    op.buffer_id = id;
                else
                    give_back(id);  // EOF or an error took no bytes: pass the buffer on
            }
        }
        bool more = (op.flags & kMultishot) && (op.kind == OpKind::accept ? r >= 0 : r > 0);
        if (!more) {
            pop(e->read_head, e->read_tail);
            changed_ = true;
        }
        finish(op, r, more);
    }
    FdTable::Entry& e = fds_[fd];
    if (e.sock_mode && e.readable && e.read_head && !e.starved) mark_runnable(fd, e);
}

void ReadinessOps::run_writes(int fd) {
    for (int budget = kBudget; budget > 0; --budget) {
        FdTable::Entry* e = &fds_[fd];
        if (!e->sock_mode || !e->writable || !e->write_head) return;
        Operation& op = *e->write_head;
        int r = attempt(op, nullptr);
        if (r == -EAGAIN) {
            e->writable = false;
            return;
        }
        if (op.kind == OpKind::send && r >= 0 && e->stream && !e->peer_closed &&
            static_cast<std::size_t>(r) < total_len(op.msg))
            e->writable = false;
        pop(e->write_head, e->write_tail);
        changed_ = true;
        finish(op, r, false);
    }
    FdTable::Entry& e = fds_[fd];
    if (e.sock_mode && e.writable && e.write_head) mark_runnable(fd, e);
}

int ReadinessOps::attempt(Operation& op, void* provided) {
    for (;;) {
        ssize_t n = -1;
        switch (op.kind) {
            case OpKind::recv:
                n = ::recv(op.fd, provided ? provided : op.buf, provided ? pool_.size() : op.len, MSG_DONTWAIT);
                break;
            case OpKind::recvmsg:
                n = ::recvmsg(op.fd, &op.msg, MSG_DONTWAIT);
                break;
            case OpKind::send:
            case OpKind::sendmsg:
                n = ::sendmsg(op.fd, &op.msg, MSG_DONTWAIT | MSG_NOSIGNAL);
                break;
            case OpKind::accept:
                n = ::accept4(op.fd, op.addr, op.addr ? &op.addrlen : nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
                break;
            case OpKind::connect:
                if (!(op.backend_state & kConnecting)) {
                    n = ::connect(op.fd, op.addr, op.addrlen);
                    if (n < 0 && (errno == EINPROGRESS || errno == EINTR)) {
                        op.backend_state |= kConnecting;  // finishing in the background
                        return -EAGAIN;
                    }
                } else {
                    int err = 0;
                    socklen_t len = sizeof err;
                    if (::getsockopt(op.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return -errno;
                    return -err;
                }
                break;
            case OpKind::poll:
                return -EINVAL;
        }
        if (n >= 0) return static_cast<int>(n);
        if (errno == EINTR) continue;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

void ReadinessOps::finish(Operation& op, int result, bool more) noexcept {
    op.more = more;
    if (!more) {
        op.backend_state = 0;
        op.backend_next = nullptr;
        --pending_;
    }
    ++completed_;
    op.complete(op, result);
}

void ReadinessOps::mark_runnable(int fd, FdTable::Entry& e) {
    if (e.runnable) return;
    e.runnable = true;
    runnable_.push_back(fd);
}

void ReadinessOps::mark_starved(int fd, FdTable::Entry& e) {
    if (e.starved) return;
    e.starved = true;
    changed_ = true;
    starved_.push_back(fd);
}

void ReadinessOps::give_back(std::uint16_t id) noexcept {
    pool_.put(id);
    // One waiting fd per returned buffer, oldest first: a busy pool is shared in turn.
    while (starved_head_ < starved_.size()) {
        int fd = starved_[starved_head_++];
        FdTable::Entry& e = fds_[fd];
        if (!e.sock_mode || !e.starved) continue;  // cancelled or forgotten meanwhile
        e.starved = false;
        changed_ = true;
        if (e.readable && e.read_head) {
            try {
                mark_runnable(fd, e);
            } catch (...) {
                // No memory for the list: the fd waits on the kernel instead (it is watched again).
            }
        }
        break;
    }
    if (starved_head_ == starved_.size()) {
        starved_.clear();
        starved_head_ = 0;
    }
}

bool ReadinessOps::forget(int fd) noexcept {
    if (fd < 0 || static_cast<std::size_t>(fd) >= fds_.size()) return false;
    FdTable::Entry& e = fds_[fd];
    if (!e.sock_mode) return false;
    bool runnable = e.runnable;  // its place in runnable_ stays and is skipped or reused
    e = FdTable::Entry{};
    e.runnable = runnable;
    return true;
}

void ReadinessOps::cancel_all() noexcept {
    for (std::size_t fd = 0; fd < fds_.size(); ++fd) {
        FdTable::Entry& e = fds_[fd];
        while (e.read_head) finish(pop(e.read_head, e.read_tail), -ECANCELED, false);
        while (e.write_head) finish(pop(e.write_head, e.write_tail), -ECANCELED, false);
    }
}

void ReadinessOps::push(Operation*& head, Operation*& tail, Operation& op) noexcept {
    op.backend_next = nullptr;
    if (tail)
        tail->backend_next = &op;
    else
        head = &op;
    tail = &op;
}

Operation& ReadinessOps::pop(Operation*& head, Operation*& tail) noexcept {
    Operation& op = *head;
    head = op.backend_next;
    if (!head) tail = nullptr;
    op.backend_next = nullptr;
    return op;
}

bool ReadinessOps::unlink(Operation*& head, Operation*& tail, Operation& op) noexcept {
    Operation* prev = nullptr;
    for (Operation* p = head; p; prev = p, p = p->backend_next) {
        if (p != &op) continue;
        (prev ? prev->backend_next : head) = op.backend_next;
        if (tail == &op) tail = prev;
        op.backend_next = nullptr;
        return true;
    }
    return false;
}

}  // namespace tulip::asyncio::detail
