// The loop's unit of scheduled work: a reference-counted callback node. A Handle or TimerHandle
// is a thin public wrapper around one; the ready queue and the timer heap hold them directly.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "tulip/asyncio/detail/block_cache.hpp"

namespace tulip::asyncio {
class EventLoop;
}

namespace tulip::asyncio::detail {

// Called by HandleNode::cancel() for a node that sits in its loop's timer heap (defined with the
// loop), so that the loop can count cancelled timers and compact the heap.
void note_timer_cancelled(EventLoop& loop) noexcept;

class HandleNode {
public:
    HandleNode() = default;
    HandleNode(const HandleNode&) = delete;
    HandleNode& operator=(const HandleNode&) = delete;
    virtual ~HandleNode() = default;

    // Nodes come from the per-thread block cache (block_cache.hpp): call_soon allocates nothing
    // in steady state. The virtual destructor passes the size of the complete CallbackNode<F>.
    static void* operator new(std::size_t size) { return block_cache::allocate(size); }
    static void operator delete(void* p, std::size_t size) noexcept { block_cache::deallocate(p, size); }

    // The count is atomic because call_soon_threadsafe hands a node (and a Handle to it) across
    // threads; everything else about a node belongs to the loop's thread.
    void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
    void release() noexcept {
        if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
    }

    bool cancelled() const noexcept { return cancelled_; }
    void cancel() noexcept {
        if (cancelled_) return;
        cancelled_ = true;
        if (timer_loop_) note_timer_cancelled(*timer_loop_);
        // Drop the callback (and what it captured) at once, as Python's Handle.cancel() does,
        // unless it is the callback that is running right now.
        if (!running_) drop_callback();
    }

    void run() {
        running_ = true;
        struct Reset {
            bool& flag;
            ~Reset() { flag = false; }
        } reset{running_};
        invoke();
    }

    // A short description for debug logs ("<lambda at file>" is all C++ can offer).
    virtual std::string describe() const { return "callback"; }

    // Timer bookkeeping, owned by the loop.
    std::int64_t when_ns = 0;
    EventLoop* timer_loop_ = nullptr;  // non-null while the node sits in a timer heap

protected:
    virtual void invoke() = 0;
    virtual void drop_callback() noexcept = 0;

private:
    std::atomic<std::uint32_t> refs_{0};
    bool cancelled_ = false;
    bool running_ = false;
};

template <class F>
class CallbackNode final : public HandleNode {
public:
    // Takes an rvalue or a copy of an lvalue callable (add_reader(fd, named_lambda) works).
    template <class G>
    explicit CallbackNode(G&& g) : fn_(std::in_place, std::forward<G>(g)) {}

protected:
    void invoke() override {
        if (fn_) (*fn_)();
    }
    void drop_callback() noexcept override { fn_.reset(); }

private:
    std::optional<F> fn_;
};

template <class F>
HandleNode* make_handle_node(F&& f) {
    return new CallbackNode<std::decay_t<F>>(std::forward<F>(f));
}

}  // namespace tulip::asyncio::detail
