// What the readiness backends (epoll, poll, select) share: for each fd, the poll operation
// watching it for reading and the one watching it for writing, and how readiness reported by
// the kernel becomes their completions. An fd carrying socket operations instead keeps their
// queues and "may be readable/writable" flags here too (readiness_ops.hpp drives them).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "backend.hpp"
#include "tulip/exceptions.hpp"

namespace tulip::asyncio::detail {

class FdTable {
public:
    struct Entry {
        Operation* reader = nullptr;
        Operation* writer = nullptr;
        // kPollIn/kPollOut bits the backend's kernel object currently has for the fd.
        std::uint32_t registered = 0;
        // epoll: the registration is the edge-triggered one of waits that carry a file token
        // (Operation::file_token), kept after their last operation is released; `token` names
        // the open file it was made for. Poll and select do not use these.
        bool edge = false;
        std::uint32_t token = 0;

        // Socket operations, queued in submission order per direction.
        Operation* read_head = nullptr;
        Operation* read_tail = nullptr;
        Operation* write_head = nullptr;
        Operation* write_tail = nullptr;
        bool sock_mode = false;    // socket operations use the fd (until Backend::forget)
        bool readable = true;      // may be readable: try the syscall before waiting
        bool writable = true;      // may be writable
        bool peer_closed = false;  // hang-up or error seen: a short read no longer means drained
        bool stream = true;        // a short read or write means the kernel buffer is drained/full
        bool runnable = false;     // in ReadinessOps' list of fds to try on the next wait()
        bool starved = false;      // its provided-buffer recv waits for a buffer

        // What the kernel must watch: the poll operations' interest or, in socket mode, the
        // directions with an operation waiting (a starved recv waits for a buffer, not the fd).
        std::uint32_t wanted() const noexcept {
            if (sock_mode) return (read_head && !starved ? kPollIn : 0u) | (write_head ? kPollOut : 0u);
            return (reader ? kPollIn : 0u) | (writer ? kPollOut : 0u);
        }
    };

    // Records op; returns the fd's entry so that the backend can update its registration.
    // Throws for a bad fd or when the direction is taken by another operation.
    Entry& add(Operation& op, const char* backend_name) {
        if (op.fd < 0) throw OSError(EBADF, std::string(backend_name) + " backend: invalid fd " + std::to_string(op.fd));
        if (static_cast<std::size_t>(op.fd) >= entries_.size()) entries_.resize(op.fd + 1);
        Entry& e = entries_[op.fd];
        if (e.sock_mode)
            throw RuntimeError(std::string(backend_name) + " backend: fd " + std::to_string(op.fd) +
                               " carries socket operations; it cannot also have a poll operation");
        Operation*& place = (op.poll_events & kPollIn) ? e.reader : e.writer;
        if (place != &op) {
            if (place)
                throw RuntimeError(std::string(backend_name) + " backend: fd " + std::to_string(op.fd) +
                                   " already has a poll operation for that direction");
            place = &op;
            ++pending_;
        }
        return e;
    }

    // Forgets op; returns its fd's entry, or null when op was not recorded.
    Entry* remove(Operation& op) noexcept {
        if (op.fd < 0 || static_cast<std::size_t>(op.fd) >= entries_.size()) return nullptr;
        Entry& e = entries_[op.fd];
        if (e.reader == &op) {
            e.reader = nullptr;
        } else if (e.writer == &op) {
            e.writer = nullptr;
        } else {
            return nullptr;
        }
        --pending_;
        return &e;
    }

    // Completes the operations of fd that `ready` (kPoll* bits) concerns. Errors and hang-ups
    // wake both directions, as poll(2) reports them.
    void deliver(int fd, std::uint32_t ready) noexcept {
        if (fd < 0 || static_cast<std::size_t>(fd) >= entries_.size()) return;
        if (Operation* r = entries_[fd].reader; r && (ready & (kPollIn | kPollErr | kPollHup)))
            r->complete(*r, static_cast<int>(ready));
        // Re-read: a completion never runs user code, but stay safe if that ever changes.
        if (Operation* w = entries_[fd].writer; w && (ready & (kPollOut | kPollErr | kPollHup)))
            w->complete(*w, static_cast<int>(ready));
    }

    std::size_t pending() const noexcept { return pending_; }
    std::size_t size() const noexcept { return entries_.size(); }
    // The entry of fd, made when needed.
    Entry& at(int fd) {
        if (static_cast<std::size_t>(fd) >= entries_.size()) entries_.resize(fd + 1);
        return entries_[fd];
    }
    Entry& operator[](std::size_t fd) noexcept { return entries_[fd]; }

private:
    std::vector<Entry> entries_;
    std::size_t pending_ = 0;
};

// An eventfd that wakes a readiness backend from another thread or a signal handler.
class WakeupFd {
public:
    WakeupFd();
    ~WakeupFd();
    WakeupFd(const WakeupFd&) = delete;
    WakeupFd& operator=(const WakeupFd&) = delete;

    int fd() const noexcept { return fd_; }
    void notify() noexcept;  // async-signal-safe
    void drain() noexcept;

private:
    int fd_ = -1;
};

// Nanoseconds to a poll(2)/epoll_wait(2) millisecond timeout, rounded up so that a timer is
// never reached early (which would make the loop spin), and clamped to what int holds.
inline int timeout_ms_rounded_up(std::int64_t timeout_ns) noexcept {
    if (timeout_ns < 0) return -1;
    std::int64_t ms = (timeout_ns + 999'999) / 1'000'000;
    return ms > 1'000'000'000 ? 1'000'000'000 : static_cast<int>(ms);
}

}  // namespace tulip::asyncio::detail
