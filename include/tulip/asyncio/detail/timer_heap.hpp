// The loop's timers: a binary min-heap of (deadline, sequence) that knows where each node sits,
// so that a cancelled timer leaves the heap at once (O(log n)) instead of waiting, cancelled, for
// its deadline or for a compaction pass. Its node then goes back to the block cache and the next
// call_later reuses it: with a million pending timers, schedule-and-cancel touches no fresh memory.
// (asyncio leaves cancelled timers in its heap and compacts when half are cancelled; libuv removes
// them at once, as here. docs/performance.md has the measurements.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "tulip/asyncio/detail/handle_node.hpp"

namespace tulip::asyncio::detail {

class TimerHeap {
public:
    bool empty() const noexcept { return entries_.empty(); }
    std::size_t size() const noexcept { return entries_.size(); }
    // The earliest deadline; the heap must not be empty.
    std::int64_t next_deadline() const noexcept { return entries_.front().when_ns; }

    // Adds node (its when_ns already set). Equal deadlines keep their call order.
    void push(HandleNode* node) {
        entries_.push_back({node->when_ns, next_seq_++, node});
        sift_up(entries_.size() - 1);
    }

    // Removes and returns the earliest node; the heap must not be empty.
    HandleNode* pop() noexcept {
        HandleNode* node = entries_.front().node;
        remove_at(0);
        return node;
    }

    // Removes node, which must be in this heap.
    void remove(HandleNode& node) noexcept { remove_at(node.heap_index_); }

    // Removes every node, passing each to fn. Every node is marked as out of the heap before fn
    // sees the first one, so a node that fn frees may cancel other timers safely.
    template <class F>
    void clear(F&& fn) noexcept {
        auto entries = std::exchange(entries_, {});
        for (auto& e : entries) e.node->timer_loop_ = nullptr;
        for (auto& e : entries) fn(e.node);
    }

private:
    struct Entry {
        std::int64_t when_ns;
        std::uint64_t seq;  // ties keep call order
        HandleNode* node;
    };
    static bool earlier(const Entry& a, const Entry& b) noexcept {
        return a.when_ns != b.when_ns ? a.when_ns < b.when_ns : a.seq < b.seq;
    }

    void place(std::size_t i, Entry e) noexcept {
        e.node->heap_index_ = static_cast<std::uint32_t>(i);
        entries_[i] = e;
    }

    void remove_at(std::size_t i) noexcept {
        Entry last = entries_.back();
        entries_.pop_back();
        if (i == entries_.size()) return;  // it was the last entry
        place(i, last);
        if (i > 0 && earlier(last, entries_[(i - 1) / 2])) sift_up(i);
        else sift_down(i);
    }

    void sift_up(std::size_t i) noexcept {
        Entry e = entries_[i];
        while (i > 0) {
            std::size_t parent = (i - 1) / 2;
            if (!earlier(e, entries_[parent])) break;
            place(i, entries_[parent]);
            i = parent;
        }
        place(i, e);
    }

    void sift_down(std::size_t i) noexcept {
        Entry e = entries_[i];
        const std::size_t n = entries_.size();
        for (;;) {
            std::size_t child = 2 * i + 1;
            if (child >= n) break;
            if (child + 1 < n && earlier(entries_[child + 1], entries_[child])) ++child;
            if (!earlier(entries_[child], e)) break;
            place(i, entries_[child]);
            i = child;
        }
        place(i, e);
    }

    std::vector<Entry> entries_;
    std::uint64_t next_seq_ = 0;
};

}  // namespace tulip::asyncio::detail
