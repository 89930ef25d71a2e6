// What the completion-backend I/O helpers (StreamOps, AcceptOps, DatagramOps) share: their
// backend operations and whether the backend still holds each, the one reusable ready-queue node
// that runs their dispatch (queued once until it runs), the owner pointer that release() clears,
// and the rule that the helper frees itself only once the owner let go of it, the backend let go
// of every operation and no dispatch is running (an owner may release from inside a call).
//
// A base template (CRTP), all inline: a completion, a submit and a dispatch cost what the
// hand-written versions did, with no virtual call or allocation added. Derived provides
// `void deliver()` (what a dispatch does) and makes NativeOps a friend (it deletes Derived).
#pragma once

#include <cstdint>
#include <utility>

#include "../../backend/backend.hpp"
#include "dispatch_node.hpp"
#include "tulip/asyncio/detail/handle_node.hpp"
#include "tulip/asyncio/detail/ref.hpp"
#include "tulip/asyncio/events.hpp"

namespace tulip::asyncio::detail {

template <class Derived, class Owner>
class NativeOps {
public:
    NativeOps(const NativeOps&) = delete;
    NativeOps& operator=(const NativeOps&) = delete;

protected:
    // One operation of the helper. in_backend(): submitted and not yet released by the backend
    // (by its last completion, or by a cancel() that returned true).
    class Op : public Operation {
    public:
        bool in_backend() const noexcept { return in_backend_; }

    private:
        friend class NativeOps;
        Derived* self_ = nullptr;
        bool in_backend_ = false;
    };

    NativeOps(EventLoop& loop, Owner& owner, const char* what)
        : loop_(loop), backend_(loop.backend()), owner_(&owner), node_(new DispatchNode<NativeOps>(this, what)) {}
    ~NativeOps() { node_->cancel(); }

    void init(Op& op, OpKind kind, int fd, Operation::Complete complete, std::uint8_t flags = 0) noexcept {
        op.kind = kind;
        op.flags = flags;
        op.fd = fd;
        op.complete = complete;
        op.self_ = static_cast<Derived*>(this);
    }

    // Submits op. When the backend throws, undo() runs and the exception goes on.
    void submit(Op& op) {
        backend_.submit(op);
        op.in_backend_ = true;
        ++held_;
    }
    template <class Undo>
    void submit(Op& op, Undo&& undo) {
        try {
            backend_.submit(op);
        } catch (...) {
            undo();
            throw;
        }
        op.in_backend_ = true;
        ++held_;
    }
    // Cancels op if the backend holds it; it stays in_backend() while its final completion is
    // still to come.
    void cancel(Op& op) noexcept {
        if (op.in_backend_ && backend_.cancel(op)) let_go(op);
    }

    // For a completion function: notes a last completion and returns the helper.
    static Derived& completed(Operation& op) noexcept {
        auto& o = static_cast<Op&>(op);
        Derived& self = *o.self_;
        if (!op.more && o.in_backend_) self.let_go(o);
        return self;
    }

    // Puts the dispatch on the loop's ready queue, once until it runs.
    void schedule() noexcept {
        if (queued_) return;
        queued_ = true;
        loop_.schedule_handle(*node_);
    }

    // release(): the owner is gone; cancels the operations and forgets the fd in the backend.
    // Derived then frees what is not in the kernel's hands and calls free_if_released().
    template <class... Ops>
    void detach(int fd, Ops&... ops) noexcept {
        owner_ = nullptr;
        (cancel(ops), ...);
        backend_.forget(fd);
    }
    // Deletes the helper once released, idle in the backend and outside a dispatch. Returns
    // whether it did: nothing of it may be touched then.
    bool free_if_released() noexcept {
        if (owner_ || held_ != 0 || dispatching_) return false;
        delete static_cast<Derived*>(this);
        return true;
    }

    EventLoop& loop_;
    Backend& backend_;
    Owner* owner_;

private:
    friend class DispatchNode<NativeOps>;

    void let_go(Op& op) noexcept {
        op.in_backend_ = false;
        --held_;
    }
    void dispatch() {
        queued_ = false;
        dispatching_ = true;
        // Also when deliver() throws: the owner may have released meanwhile.
        struct Done {
            NativeOps& ops;
            ~Done() {
                ops.dispatching_ = false;
                ops.free_if_released();
            }
        } done{*this};
        static_cast<Derived*>(this)->deliver();
    }

    Ref<HandleNode> node_;  // reused for every dispatch: no allocation per event
    int held_ = 0;          // operations the backend holds
    bool queued_ = false;
    bool dispatching_ = false;
};

}  // namespace tulip::asyncio::detail
