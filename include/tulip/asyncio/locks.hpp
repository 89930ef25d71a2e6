// Synchronisation primitives (Python's asyncio/locks.py): Lock, Event, Condition, Semaphore and
// BoundedSemaphore, plus LockGuard, which stands in for `async with`.
//
// They are for the tasks of one event loop and are not thread-safe (neither are Python's). They
// follow CPython 3.12 exactly:
//
// - Waiting tasks are woken in FIFO order. Each waiting task awaits a Future<void> of its own,
//   kept in the primitive's FIFO list; waking a task means setting its future's result.
// - A waiting task is cancelled through that future: Task::cancel() cancels it, and the call
//   (acquire(), wait(), ...) raises CancelledError inside the task with nothing acquired.
// - A task that was woken but is cancelled before it runs passes its wake-up on to the next
//   waiter, so no wake-up is lost (CPython's _wake_up_first / _wake_up_next rules).
// - A primitive binds itself to the running loop the first time a task has to wait on it;
//   waiting on it from another loop raises RuntimeError("... is bound to a different event
//   loop"). Creating one needs no loop.
//
// Primitives can be neither copied nor moved (tasks wait on their address). Destroying one while
// tasks still wait on it is a bug: those tasks are forgotten and never wake up.
//
// `async with lock:` becomes an RAII guard, since release() is synchronous:
//
//     {
//         auto guard = co_await lock.acquire_guard();
//         ...                       // the critical section
//     }                             // released here, on an exception or a cancellation too
//
// acquire_guard() exists on Lock, Condition, Semaphore and BoundedSemaphore.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <utility>

#include "tulip/asyncio/coro.hpp"
#include "tulip/asyncio/events.hpp"
#include "tulip/asyncio/exceptions.hpp"
#include "tulip/asyncio/futures.hpp"
#include "tulip/exceptions.hpp"

namespace tulip::asyncio {

namespace detail {

class WaiterList;

// One waiting task: the future it awaits, linked into a primitive's FIFO list (CPython's
// `fut` in `self._waiters`). It lives in the waiting coroutine's frame and unlinks itself when
// it goes away: that is CPython's `finally: self._waiters.remove(fut)`, and it also holds when
// the frame is destroyed without being resumed (a pending task at loop close).
class Waiter {
public:
    // Creates a pending future on `loop` and appends this waiter to `list`.
    Waiter(WaiterList& list, EventLoop& loop);
    Waiter(const Waiter&) = delete;
    Waiter& operator=(const Waiter&) = delete;
    ~Waiter() { unlink(); }

    const Future<>& future() const noexcept { return future_; }
    // Sets the future's result unless it is done already; true if it did.
    bool wake();
    // Leaves the list (if still in one).
    void unlink() noexcept;
    bool linked() const noexcept { return list_ != nullptr; }
    Waiter* next() const noexcept { return next_; }

private:
    friend class WaiterList;
    Future<> future_;
    WaiterList* list_ = nullptr;
    Waiter* prev_ = nullptr;
    Waiter* next_ = nullptr;
};

// An intrusive FIFO of waiters (CPython's collections.deque of futures, with O(1) removal).
class WaiterList {
public:
    WaiterList() = default;
    WaiterList(const WaiterList&) = delete;
    WaiterList& operator=(const WaiterList&) = delete;
    // Detaches the waiters still linked, so that their frames never touch a dead list.
    ~WaiterList();

    bool empty() const noexcept { return head_ == nullptr; }
    std::size_t size() const noexcept { return size_; }
    Waiter* front() const noexcept { return head_; }

    void push_back(Waiter& w) noexcept;
    void remove(Waiter& w) noexcept;
    Waiter* pop_front() noexcept;

    // CPython's Queue._wakeup_next: pops waiters until one is woken (skipping those already
    // done, i.e. cancelled). True if one was woken.
    bool pop_and_wake_next();
    // Wakes the first n waiters that are not done; returns how many it woke.
    std::size_t wake_pending(std::size_t n);
    // True if every waiter's future is cancelled (true for an empty list).
    bool all_cancelled() const noexcept;

private:
    Waiter* head_ = nullptr;
    Waiter* tail_ = nullptr;
    std::size_t size_ = 0;
};

// CPython's _LoopBoundMixin: the loop a primitive waits on, bound at the first wait.
class LoopBinding {
public:
    // The running loop. Binds to it on first use; raises RuntimeError when a different loop is
    // running than the one bound, or none is.
    EventLoop& get(const char* what);

private:
    EventLoop* loop_ = nullptr;
};

}  // namespace detail

// A held Lock, Condition or Semaphore that is released when the guard goes out of scope (the
// C++ spelling of `async with`). Move-only. Obtained with `co_await x.acquire_guard()`, or made
// by hand around a primitive the caller has acquired.
//
// Release the primitive through the guard (guard.release()), not directly: a guard whose
// primitive was released behind its back releases it again, which raises inside a destructor
// and ends the program.
template <class L>
class [[nodiscard]] LockGuard {
public:
    LockGuard() noexcept = default;
    // Takes over a primitive that the caller holds.
    explicit LockGuard(L& held) noexcept : held_(&held) {}
    LockGuard(LockGuard&& other) noexcept : held_(std::exchange(other.held_, nullptr)) {}
    LockGuard& operator=(LockGuard&& other) noexcept {
        if (this != &other) {
            release();
            held_ = std::exchange(other.held_, nullptr);
        }
        return *this;
    }
    ~LockGuard() { release(); }

    // Releases now rather than at the end of the scope; does nothing if already released.
    void release() {
        if (L* p = std::exchange(held_, nullptr)) p->release();
    }
    // Gives up the guard without releasing: the caller owns the release again.
    L* detach() noexcept { return std::exchange(held_, nullptr); }
    bool owns() const noexcept { return held_ != nullptr; }
    explicit operator bool() const noexcept { return owns(); }

private:
    L* held_ = nullptr;
};

namespace detail {
// acquire() then wrap: nothing can cancel the task between the two (no suspension point).
template <class L>
Coro<LockGuard<L>> acquire_guard(L& primitive) {
    co_await primitive.acquire();
    co_return LockGuard<L>(primitive);
}
}  // namespace detail

// A mutual-exclusion lock that no task owns: any task may release it.
class Lock {
public:
    Lock() = default;
    Lock(const Lock&) = delete;
    Lock& operator=(const Lock&) = delete;

    bool locked() const noexcept { return locked_; }

    // Waits until the lock is free, takes it, returns true. Waiters get it in FIFO order; a new
    // caller takes a free lock at once only if no task waits for it (or all of those are
    // cancelled). On cancellation: raises CancelledError without the lock; if this task had been
    // chosen to take it, the next waiter is woken instead.
    Coro<bool> acquire();
    // Frees the lock and wakes the first waiter. RuntimeError("Lock is not acquired.") when the
    // lock is not locked.
    void release();
    // acquire(), returning a guard that releases. Cancellation as acquire().
    Coro<LockGuard<Lock>> acquire_guard() { return detail::acquire_guard(*this); }

    // Tasks in the FIFO, including a woken one that has not run yet (Python's "waiters:N").
    std::size_t waiter_count() const noexcept { return waiters_.size(); }

private:
    void wake_up_first();

    detail::WaiterList waiters_;
    detail::LoopBinding loop_;
    bool locked_ = false;
};

// A flag that tasks can wait for (threading.Event for tasks).
class Event {
public:
    Event() = default;
    Event(const Event&) = delete;
    Event& operator=(const Event&) = delete;

    bool is_set() const noexcept { return value_; }
    // Sets the flag and wakes every waiting task (they run on a later iteration, and return true
    // even if clear() is called before they run).
    void set();
    // Clears the flag; later wait() calls block until the next set().
    void clear() noexcept { value_ = false; }
    // Returns true at once when the flag is set, else waits for set(). On cancellation: raises
    // CancelledError and the event is unchanged.
    Coro<bool> wait();

    std::size_t waiter_count() const noexcept { return waiters_.size(); }

private:
    detail::WaiterList waiters_;
    detail::LoopBinding loop_;
    bool value_ = false;
};

// A condition variable: tasks holding its lock wait() until another task notify()s them.
class Condition {
public:
    // With a Lock of its own.
    Condition() : lock_(&owned_lock_.emplace()) {}
    // Sharing `lock`, which must outlive the condition (Python's Condition(lock)).
    explicit Condition(Lock& lock) noexcept : lock_(&lock) {}
    Condition(const Condition&) = delete;
    Condition& operator=(const Condition&) = delete;

    // The underlying lock's operations.
    bool locked() const noexcept { return lock_->locked(); }
    Coro<bool> acquire() { return lock_->acquire(); }
    void release() { lock_->release(); }
    Coro<LockGuard<Condition>> acquire_guard() { return detail::acquire_guard(*this); }

    // Releases the lock, waits for notify()/notify_all(), re-acquires the lock and returns true.
    // RuntimeError("cannot wait on un-acquired lock") when the lock is not held. May return
    // spuriously: re-check the state (or use wait_for()).
    //
    // On cancellation (or any error) the lock is still re-acquired before CancelledError
    // propagates, even if that takes more cancellations; and since the task may already have
    // been notified, one other waiter is notified in its place.
    Coro<bool> wait();

    // Waits until predicate() is true and returns its last value. The lock must be held unless
    // the predicate is true at once. Cancellation as wait().
    template <class Predicate>
    Coro<std::decay_t<std::invoke_result_t<Predicate&>>> wait_for(Predicate predicate);

    // Wakes up to n waiting tasks (they still have to re-acquire the lock, which the caller
    // holds). RuntimeError("cannot notify on un-acquired lock") when the lock is not held.
    void notify(std::size_t n = 1);
    void notify_all();

    std::size_t waiter_count() const noexcept { return waiters_.size(); }

private:
    // Re-takes the lock after a wait, even through cancellations; rethrows the last of those.
    Coro<> reacquire();

    std::optional<Lock> owned_lock_;
    Lock* lock_;
    detail::WaiterList waiters_;
    detail::LoopBinding loop_;
};

template <class Predicate>
Coro<std::decay_t<std::invoke_result_t<Predicate&>>> Condition::wait_for(Predicate predicate) {
    auto result = predicate();
    while (!result) {
        co_await wait();
        result = predicate();
    }
    co_return result;
}

// A counter of free slots: acquire() takes one (waiting while there is none), release() gives
// one back.
class Semaphore {
public:
    // ValueError when value is negative.
    explicit Semaphore(std::int64_t value = 1);
    Semaphore(const Semaphore&) = delete;
    Semaphore& operator=(const Semaphore&) = delete;
    virtual ~Semaphore() = default;

    // True when acquire() would wait: no slot is free, or tasks are already waiting (FIFO: a new
    // caller does not overtake them).
    bool locked() const noexcept;
    // Takes a slot, waiting for one in FIFO order; returns true. On cancellation: raises
    // CancelledError without a slot; a slot that release() had already handed to this task goes
    // to the next waiter.
    Coro<bool> acquire();
    // Gives a slot back and wakes the first waiter. Any task may release.
    virtual void release();
    Coro<LockGuard<Semaphore>> acquire_guard() { return detail::acquire_guard(*this); }

    // Free slots not yet promised to a woken task (Python's _value).
    std::int64_t value() const noexcept { return value_; }
    std::size_t waiter_count() const noexcept { return waiters_.size(); }

private:
    // Hands a slot to the first waiter that is not done yet; false if there is none.
    bool wake_up_next();

    detail::WaiterList waiters_;
    detail::LoopBinding loop_;
    std::int64_t value_;
};

// A Semaphore whose release() refuses to go above the initial value.
class BoundedSemaphore : public Semaphore {
public:
    explicit BoundedSemaphore(std::int64_t value = 1) : Semaphore(value), bound_(value) {}

    // ValueError("BoundedSemaphore released too many times ...") when every slot is free already.
    void release() override;

private:
    std::int64_t bound_;
};

}  // namespace tulip::asyncio
