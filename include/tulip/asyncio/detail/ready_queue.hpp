// The loop's ready queue: a growable ring of callback nodes, task steps and fd-watch dispatches.
//
// Resuming a task pushes a pointer, never allocates (the ring only grows, to the largest number
// of simultaneously ready items ever seen).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

namespace tulip::asyncio::detail {

class FdWatch;
class HandleNode;
class TaskCore;

class ReadyQueue {
public:
    enum class Kind : std::uint8_t { handle, task, fd_watch };
    struct Entry {
        void* item = nullptr;
        Kind kind = Kind::handle;
        HandleNode* handle() const noexcept { return static_cast<HandleNode*>(item); }
        TaskCore* task() const noexcept { return static_cast<TaskCore*>(item); }
        FdWatch* fd_watch() const noexcept { return static_cast<FdWatch*>(item); }
    };

    ReadyQueue() = default;
    ReadyQueue(const ReadyQueue&) = delete;
    ReadyQueue& operator=(const ReadyQueue&) = delete;

    // The queue takes over one reference that the caller holds on the item.
    void push_handle(HandleNode* h) { push({h, Kind::handle}); }
    void push_task(TaskCore* t) { push({t, Kind::task}); }
    // No reference: the watch stays alive while it is queued (fd_watch.hpp).
    void push_fd_watch(FdWatch* w) { push({w, Kind::fd_watch}); }

    std::size_t size() const noexcept { return count_; }
    bool empty() const noexcept { return count_ == 0; }

    Entry pop() noexcept {
        Entry e = ring_[head_];
        head_ = (head_ + 1) & (capacity_ - 1);
        --count_;
        return e;
    }

    // Test hook (LoopOptions::shuffle_seed): permutes the first n entries, so that tests can
    // check that invariants do not depend on one particular interleaving.
    template <class Rng>
    void shuffle_front(std::size_t n, Rng& rng) {
        if (n > count_) n = count_;
        for (std::size_t i = n; i > 1; --i) {
            std::size_t j = static_cast<std::size_t>(rng() % i);
            std::swap(at(i - 1), at(j));
        }
    }

private:
    Entry& at(std::size_t i) noexcept { return ring_[(head_ + i) & (capacity_ - 1)]; }

    void push(Entry e) {
        if (count_ == capacity_) [[unlikely]] grow();
        ring_[(head_ + count_) & (capacity_ - 1)] = e;
        ++count_;
    }

    [[gnu::noinline]] void grow() {
        std::size_t new_capacity = capacity_ ? capacity_ * 2 : 256;
        auto bigger = std::make_unique<Entry[]>(new_capacity);
        for (std::size_t i = 0; i < count_; ++i) bigger[i] = ring_[(head_ + i) & (capacity_ - 1)];
        ring_ = std::move(bigger);
        capacity_ = new_capacity;
        head_ = 0;
    }

    std::unique_ptr<Entry[]> ring_;
    std::size_t capacity_ = 0;  // always a power of two
    std::size_t head_ = 0;
    std::size_t count_ = 0;
};

}  // namespace tulip::asyncio::detail
