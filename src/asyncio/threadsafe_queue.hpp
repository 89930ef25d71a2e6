// The cross-thread door of the loop: call_soon_threadsafe pushes here under a mutex and wakes the
// backend; the loop moves the nodes to its ready queue at the start of each iteration.
#pragma once

#include <atomic>
#include <mutex>
#include <vector>

#include "tulip/asyncio/detail/handle_node.hpp"

namespace tulip::asyncio::detail {

class LoopThreadsafeQueue {
public:
    // Takes over one reference on node. Returns false once the loop has closed the door.
    bool push(HandleNode* node) {
        std::lock_guard lock(mutex_);
        if (closed_) return false;
        nodes_.push_back(node);
        has_items_.store(true, std::memory_order_release);
        return true;
    }
    bool maybe_has_items() const noexcept { return has_items_.load(std::memory_order_acquire); }
    // Swaps the pending nodes into `out` (whose references pass to the caller).
    void take(std::vector<HandleNode*>& out) {
        std::lock_guard lock(mutex_);
        out.swap(nodes_);
        has_items_.store(false, std::memory_order_relaxed);
    }
    void close() {
        std::lock_guard lock(mutex_);
        closed_ = true;
    }

private:
    std::mutex mutex_;
    std::vector<HandleNode*> nodes_;
    std::atomic<bool> has_items_{false};
    bool closed_ = false;
};

}  // namespace tulip::asyncio::detail
