#include "tulip/asyncio/locks.hpp"

#include <exception>
#include <string>

namespace tulip::asyncio {

namespace detail {

// --- Waiter and WaiterList ------------------------------------------------------------------

Waiter::Waiter(WaiterList& list, EventLoop& loop) : future_(loop) { list.push_back(*this); }

bool Waiter::wake() {
    if (future_.done()) return false;
    future_.set_result();
    return true;
}

void Waiter::unlink() noexcept {
    if (list_) list_->remove(*this);
}

WaiterList::~WaiterList() {
    while (head_) pop_front();
}

void WaiterList::push_back(Waiter& w) noexcept {
    w.list_ = this;
    w.prev_ = tail_;
    w.next_ = nullptr;
    if (tail_) {
        tail_->next_ = &w;
    } else {
        head_ = &w;
    }
    tail_ = &w;
    ++size_;
}

void WaiterList::remove(Waiter& w) noexcept {
    if (w.prev_) {
        w.prev_->next_ = w.next_;
    } else {
        head_ = w.next_;
    }
    if (w.next_) {
        w.next_->prev_ = w.prev_;
    } else {
        tail_ = w.prev_;
    }
    w.list_ = nullptr;
    w.prev_ = w.next_ = nullptr;
    --size_;
}

Waiter* WaiterList::pop_front() noexcept {
    Waiter* w = head_;
    if (w) remove(*w);
    return w;
}

bool WaiterList::pop_and_wake_next() {
    while (Waiter* w = pop_front()) {
        if (w->wake()) return true;
    }
    return false;
}

std::size_t WaiterList::wake_pending(std::size_t n) {
    std::size_t woken = 0;
    // Setting a result only schedules the waiting task: the list does not change under us.
    for (Waiter* w = head_; w && woken < n; w = w->next()) {
        if (w->wake()) ++woken;
    }
    return woken;
}

bool WaiterList::all_cancelled() const noexcept {
    for (Waiter* w = head_; w; w = w->next()) {
        if (!w->future().cancelled()) return false;
    }
    return true;
}

// --- LoopBinding ----------------------------------------------------------------------------

EventLoop& LoopBinding::get(const char* what) {
    EventLoop& running = get_running_loop();
    if (!loop_) loop_ = &running;
    if (loop_ != &running) throw RuntimeError(std::string(what) + " is bound to a different event loop");
    return running;
}

}  // namespace detail

// --- Lock -----------------------------------------------------------------------------------

Coro<bool> Lock::acquire() {
    // Fair: a free lock is taken at once only if nobody (alive) is queued for it.
    if (!locked_ && waiters_.all_cancelled()) {
        locked_ = true;
        co_return true;
    }
    {
        detail::Waiter waiter(waiters_, loop_.get("Lock"));
        try {
            co_await waiter.future();
        } catch (const CancelledError&) {
            waiter.unlink();
            // The lock is free, so release() may have chosen this task: make sure the task now at
            // the head of the queue runs instead.
            if (!locked_) wake_up_first();
            throw;
        }
    }
    locked_ = true;
    co_return true;
}

void Lock::release() {
    if (!locked_) throw RuntimeError("Lock is not acquired.");
    locked_ = false;
    wake_up_first();
}

void Lock::wake_up_first() {
    // Only the head: if it is done already it is either on its way to take the lock or
    // cancelled, and a cancelled head passes the wake-up on when it runs (acquire's catch).
    if (detail::Waiter* first = waiters_.front()) first->wake();
}

// --- Event ----------------------------------------------------------------------------------

void Event::set() {
    if (value_) return;
    value_ = true;
    waiters_.wake_pending(waiters_.size());
}

Coro<bool> Event::wait() {
    if (value_) co_return true;
    detail::Waiter waiter(waiters_, loop_.get("Event"));
    co_await waiter.future();
    co_return true;
}

// --- Condition ------------------------------------------------------------------------------

Coro<bool> Condition::wait() {
    if (!locked()) throw RuntimeError("cannot wait on un-acquired lock");
    std::exception_ptr error;
    {
        detail::Waiter waiter(waiters_, loop_.get("Condition"));
        release();
        try {
            co_await waiter.future();
        } catch (...) {
            error = std::current_exception();
        }
    }
    // The lock must be held again on every way out, as the caller's guard expects.
    try {
        co_await reacquire();
    } catch (...) {
        error = std::current_exception();  // the most recent error wins, as in Python
    }
    if (error) {
        // This task may have been notified already: notify another one in its place (a spurious
        // wake-up at worst, which the Condition protocol allows).
        waiters_.wake_pending(1);
        std::rethrow_exception(error);
    }
    co_return true;
}

Coro<> Condition::reacquire() {
    std::exception_ptr cancelled;
    for (;;) {
        try {
            co_await lock_->acquire();
            break;
        } catch (const CancelledError&) {
            cancelled = std::current_exception();
        }
    }
    if (cancelled) std::rethrow_exception(cancelled);
}

void Condition::notify(std::size_t n) {
    if (!locked()) throw RuntimeError("cannot notify on un-acquired lock");
    waiters_.wake_pending(n);
}

void Condition::notify_all() { notify(waiters_.size()); }

// --- Semaphore ------------------------------------------------------------------------------

Semaphore::Semaphore(std::int64_t value) : value_(value) {
    if (value < 0)
        throw ValueError("Semaphore initial value must be >= 0, got " + std::to_string(value));
}

bool Semaphore::locked() const noexcept { return value_ == 0 || !waiters_.all_cancelled(); }

Coro<bool> Semaphore::acquire() {
    if (!locked()) {
        --value_;
        co_return true;
    }
    std::exception_ptr error;
    {
        detail::Waiter waiter(waiters_, loop_.get("Semaphore"));
        try {
            co_await waiter.future();
        } catch (...) {
            error = std::current_exception();
            // wake_up_next() had already taken a slot for this task, which will not use it.
            if (waiter.future().done() && !waiter.future().cancelled()) ++value_;
        }
    }
    // Tasks that came while slots were promised had to queue (FIFO): wake as many as now fit.
    while (value_ > 0 && wake_up_next()) {
    }
    if (error) std::rethrow_exception(error);
    co_return true;
}

void Semaphore::release() {
    ++value_;
    wake_up_next();
}

bool Semaphore::wake_up_next() {
    for (detail::Waiter* w = waiters_.front(); w; w = w->next()) {
        if (!w->future().done()) {
            --value_;  // the slot is promised to that task from now on
            w->wake();
            return true;
        }
    }
    return false;
}

void BoundedSemaphore::release() {
    if (value() >= bound_)
        throw ValueError("BoundedSemaphore released too many times (its initial value is " +
                         std::to_string(bound_) + ")");
    Semaphore::release();
}

}  // namespace tulip::asyncio
