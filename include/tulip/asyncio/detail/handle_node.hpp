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

class HandleNode;
// Called by HandleNode::cancel() for a node that sits in its loop's timer heap (defined with the
// loop): the loop takes it out of the heap at once and drops the heap's reference.
void remove_cancelled_timer(EventLoop& loop, HandleNode& node) noexcept;

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

    // A node made by call_soon_threadsafe crosses threads: the loop's queue holds it and the
    // calling thread keeps a Handle to it, and either may drop the last reference. Its count is
    // atomic (mark_shared(), called before the first reference is taken and published with the
    // node). Every other node is made, run and freed on its loop's thread, as Python requires of
    // call_soon and call_later; its count is a plain relaxed load and store, saving the four
    // locked read-modify-writes of a call_soon (~5 ns each). Only the count is shared: cancel()
    // on a call_soon_threadsafe Handle from another thread is no more thread-safe than Python's.
    void mark_shared() noexcept { shared_ = true; }
    void add_ref() noexcept {
        if (shared_) refs_.fetch_add(1, std::memory_order_relaxed);
        else refs_.store(refs_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
    void release() noexcept {
        if (shared_) {
            if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
            return;
        }
        std::uint32_t left = refs_.load(std::memory_order_relaxed) - 1;
        if (left == 0) delete this;
        else refs_.store(left, std::memory_order_relaxed);
    }

    bool cancelled() const noexcept { return cancelled_; }
    void cancel() noexcept {
        if (cancelled_) return;
        cancelled_ = true;
        // Drop the callback (and what it captured) at once, as Python's Handle.cancel() does,
        // unless it is the callback that is running right now.
        if (!running_) drop_callback();
        // Last: it drops the heap's reference, which may have been the only one.
        if (timer_loop_) remove_cancelled_timer(*timer_loop_, *this);
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
    std::uint32_t heap_index_ = 0;     // its place there (detail::TimerHeap)

protected:
    virtual void invoke() = 0;
    virtual void drop_callback() noexcept = 0;

private:
    std::atomic<std::uint32_t> refs_{0};
    bool shared_ = false;  // set once, before the node is published to another thread
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
