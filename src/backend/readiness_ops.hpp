// Socket operations on a readiness backend (epoll, poll, select): try the syscall first and wait
// for readiness only on EAGAIN.
//
// Each fd in socket mode keeps a "may be readable" and a "may be writable" flag. They start true;
// EAGAIN clears one, and so does a short read or write on a stream (the kernel buffer was
// drained or filled: trying again would cost a syscall that fails), unless the peer hung up.
// Readiness reported by the kernel sets them again. An operation whose direction may be ready
// is tried on the next wait(), before the kernel is asked anything; the others wait for the
// kernel. So the epoll backend can register the fd once, edge-triggered, for its whole life.
//
// All syscalls and completions happen inside wait(), never in submit() or cancel(): the owner is
// never re-entered, and cancel() always releases at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "buffer_pool.hpp"
#include "fd_table.hpp"

namespace tulip::asyncio::detail {

// A peer hang-up bit beyond poll(2)'s own (POLLRDHUP).
inline constexpr std::uint32_t kPollRdHup = 0x2000;

class ReadinessOps {
public:
    ReadinessOps(FdTable& fds, BufferPool& pool, const char* backend_name) noexcept
        : fds_(fds), pool_(pool), name_(backend_name) {}

    // Queues op. Returns true when op.fd enters socket mode (the backend registers it then).
    // Throws for a bad fd, an fd with poll operations, or an unusable combination of flags.
    bool submit(Operation& op);
    // Unqueues op; always releases it at once. False when op was not queued.
    bool cancel(Operation& op) noexcept;

    // Tries the operations of the fds that may be ready. True when something completed.
    bool run_runnable();
    bool has_runnable() const noexcept { return !runnable_.empty(); }

    // The kernel reports fd ready (kPoll* bits and kPollRdHup): poll operations or socket ones.
    void deliver(int fd, std::uint32_t ready);

    void give_back(std::uint16_t id) noexcept;
    // Leaves socket mode. True when fd was in it.
    bool forget(int fd) noexcept;

    // Whether the set of directions waiting on the kernel changed since the last call.
    bool take_changed() noexcept {
        bool c = changed_;
        changed_ = false;
        return c;
    }
    std::size_t pending() const noexcept { return pending_; }

    // Completes every queued operation with -ECANCELED (the backend is being destroyed).
    void cancel_all() noexcept;

private:
    static constexpr int kBudget = 16;  // completions per fd and direction per wait(): fairness

    void run(int fd);
    void run_reads(int fd);
    void run_writes(int fd);
    // One syscall for op; -EAGAIN when it must wait.
    int attempt(Operation& op, void* provided);
    void finish(Operation& op, int result, bool more) noexcept;
    void mark_runnable(int fd, FdTable::Entry& e);
    void mark_starved(int fd, FdTable::Entry& e);

    static void push(Operation*& head, Operation*& tail, Operation& op) noexcept;
    static Operation& pop(Operation*& head, Operation*& tail) noexcept;
    static bool unlink(Operation*& head, Operation*& tail, Operation& op) noexcept;

    FdTable& fds_;
    BufferPool& pool_;
    const char* name_;
    std::vector<int> runnable_;
    std::vector<int> running_;  // runnable_ being processed (kept to reuse its capacity)
    std::vector<int> starved_;  // fds whose provided-buffer recv waits for a buffer, in order
    std::size_t starved_head_ = 0;
    std::size_t completed_ = 0;
    std::size_t pending_ = 0;
    bool changed_ = false;
};

}  // namespace tulip::asyncio::detail
