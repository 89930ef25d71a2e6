// Queues for tasks (Python's asyncio/queues.py, with Python 3.13's shutdown()): Queue<T> (FIFO),
// PriorityQueue<T, Compare> (smallest first) and LifoQueue<T> (last in, first out).
//
// A queue belongs to the tasks of one event loop and is not thread-safe. qsize() is exact: no
// other task can run between qsize() and the next operation of the same task.
//
//     asyncio::Queue<Job> jobs(100);           // at most 100 items; 0 (the default) = unbounded
//     co_await jobs.put(job);                  // waits while the queue is full (backpressure)
//     Job next = co_await jobs.get();          // waits while it is empty
//     jobs.task_done();                        // after processing an item taken with get()
//     co_await jobs.join();                    // until every item put has been task_done()
//
// Waiting, waking and cancellation follow CPython: each waiting task awaits a Future<void> of its
// own; put_nowait() wakes the first waiting getter and get_nowait() the first waiting putter. A
// woken task takes its item (or slot) only when it runs, so a task that calls get() meanwhile
// may take the item first; the woken task then simply waits again. A task cancelled in get()
// or put() raises CancelledError having taken or added nothing, and if it had just been woken
// it passes the wake-up on to the next waiter, so no item or free slot is left unclaimed.
//
// Subclasses may change the storage order by overriding put_item() and get_item() (Python's
// _put and _get), as PriorityQueue and LifoQueue do.
#pragma once

#include <algorithm>
#include <cstddef>
#include <deque>
#include <functional>
#include <utility>

#include "tulip/asyncio/coro.hpp"
#include "tulip/asyncio/exceptions.hpp"
#include "tulip/asyncio/locks.hpp"
#include "tulip/exceptions.hpp"

namespace tulip::asyncio {

template <class T>
class Queue {
public:
    using value_type = T;

    // maxsize 0 means unbounded.
    explicit Queue(std::size_t maxsize = 0) : maxsize_(maxsize) { finished_.set(); }
    Queue(const Queue&) = delete;
    Queue& operator=(const Queue&) = delete;
    virtual ~Queue() = default;

    std::size_t qsize() const noexcept { return items_.size(); }
    std::size_t maxsize() const noexcept { return maxsize_; }
    bool empty() const noexcept { return items_.empty(); }
    // Never true for an unbounded queue.
    bool full() const noexcept { return maxsize_ > 0 && items_.size() >= maxsize_; }

    // Adds item, first waiting while the queue is full. QueueShutDown once shutdown() was called.
    // On cancellation: raises CancelledError with nothing added (item is dropped), and a free
    // slot this task had been woken for goes to the next waiting putter.
    Coro<> put(T item);
    // Adds item now: QueueShutDown after shutdown(), QueueFull when full. When it raises, item
    // is left as it was (not moved from).
    void put_nowait(const T& item) {
        check_can_put();
        T copy(item);
        commit_put(std::move(copy));
    }
    void put_nowait(T&& item) {
        check_can_put();
        commit_put(std::move(item));
    }

    // Removes and returns an item, first waiting while the queue is empty. QueueShutDown once
    // the queue is shut down and empty. On cancellation: raises CancelledError with nothing
    // taken, and an item this task had been woken for goes to the next waiting getter.
    Coro<T> get();
    // Removes and returns an item now: QueueEmpty when empty (QueueShutDown if also shut down).
    T get_nowait();

    // Marks one item taken with get() as processed. ValueError("task_done() called too many
    // times") when every item put has been marked already.
    void task_done();
    // Waits until every item put has been marked with task_done(); returns at once if so. On
    // cancellation: raises CancelledError; the queue is unchanged.
    Coro<> join();

    // Python 3.13: later puts raise QueueShutDown, and gets too once the queue is empty (at once
    // with immediate=true, which also drops the items left and marks them done, which may end a
    // join()). Every task waiting in put() or get() wakes up to find that out.
    void shutdown(bool immediate = false);

    // Introspection (Python's repr shows these): tasks waiting in get(), in put(), and items not
    // yet marked with task_done().
    std::size_t getter_count() const noexcept { return getters_.size(); }
    std::size_t putter_count() const noexcept { return putters_.size(); }
    std::size_t unfinished_tasks() const noexcept { return unfinished_tasks_; }

protected:
    // Python's _put and _get: where an item goes and which one comes out. items_ holds them.
    virtual void put_item(T&& item) { items_.push_back(std::move(item)); }
    virtual T get_item() {
        T item = std::move(items_.front());
        items_.pop_front();
        return item;
    }

    std::deque<T> items_;

private:
    void check_can_put() const;
    void commit_put(T&& item);
    // CPython's `except:` branch of put() and get(): a waiter leaving early. If it had been woken
    // and what it was woken for is still there, the next waiter gets the wake-up.
    static void leave(detail::Waiter& waiter, detail::WaiterList& list, bool still_available);

    std::size_t maxsize_;
    detail::WaiterList getters_;
    detail::WaiterList putters_;
    detail::LoopBinding loop_;
    std::size_t unfinished_tasks_ = 0;
    Event finished_;
    bool shutdown_ = false;
};

// Items come out smallest first under Compare, as with Python's heapq (note: the opposite of
// std::priority_queue, which pops the largest). Equal items come out in no particular order.
template <class T, class Compare = std::less<T>>
class PriorityQueue : public Queue<T> {
public:
    explicit PriorityQueue(std::size_t maxsize = 0, Compare compare = Compare())
        : Queue<T>(maxsize), after_{std::move(compare)} {}

protected:
    void put_item(T&& item) override {
        this->items_.push_back(std::move(item));
        std::push_heap(this->items_.begin(), this->items_.end(), after_);
    }
    T get_item() override {
        std::pop_heap(this->items_.begin(), this->items_.end(), after_);
        T item = std::move(this->items_.back());
        this->items_.pop_back();
        return item;
    }

private:
    // The std heap algorithms keep the greatest element first; invert to keep the smallest.
    struct After {
        Compare less;
        bool operator()(const T& a, const T& b) const { return less(b, a); }
    };
    After after_;
};

// Items come out most recently added first.
template <class T>
class LifoQueue : public Queue<T> {
public:
    using Queue<T>::Queue;

protected:
    T get_item() override {
        T item = std::move(this->items_.back());
        this->items_.pop_back();
        return item;
    }
};

// --- Queue<T> -------------------------------------------------------------------------------

template <class T>
Coro<> Queue<T>::put(T item) {
    while (full()) {
        if (shutdown_) throw QueueShutDown();
        detail::Waiter putter(putters_, loop_.get("Queue"));
        try {
            co_await putter.future();
        } catch (...) {
            leave(putter, putters_, !full());
            throw;
        }
    }
    put_nowait(std::move(item));
}

template <class T>
void Queue<T>::check_can_put() const {
    if (shutdown_) throw QueueShutDown();
    if (full()) throw QueueFull();
}

template <class T>
void Queue<T>::commit_put(T&& item) {
    put_item(std::move(item));
    ++unfinished_tasks_;
    finished_.clear();
    getters_.pop_and_wake_next();
}

template <class T>
Coro<T> Queue<T>::get() {
    while (empty()) {
        if (shutdown_) throw QueueShutDown();
        detail::Waiter getter(getters_, loop_.get("Queue"));
        try {
            co_await getter.future();
        } catch (...) {
            leave(getter, getters_, !empty());
            throw;
        }
    }
    co_return get_nowait();
}

template <class T>
T Queue<T>::get_nowait() {
    if (empty()) {
        if (shutdown_) throw QueueShutDown();
        throw QueueEmpty();
    }
    T item = get_item();
    putters_.pop_and_wake_next();
    return item;
}

template <class T>
void Queue<T>::leave(detail::Waiter& waiter, detail::WaiterList& list, bool still_available) {
    waiter.future().cancel();  // in case it is still pending
    // It may have left the list already: popped by the get_nowait()/put_nowait() that woke it.
    waiter.unlink();
    if (still_available && !waiter.future().cancelled()) list.pop_and_wake_next();
}

template <class T>
void Queue<T>::task_done() {
    if (unfinished_tasks_ == 0) throw ValueError("task_done() called too many times");
    if (--unfinished_tasks_ == 0) finished_.set();
}

template <class T>
Coro<> Queue<T>::join() {
    if (unfinished_tasks_ > 0) co_await finished_.wait();
}

template <class T>
void Queue<T>::shutdown(bool immediate) {
    shutdown_ = true;
    if (immediate) {
        while (!empty()) {
            (void)get_item();
            if (unfinished_tasks_ > 0) --unfinished_tasks_;
        }
        if (unfinished_tasks_ == 0) finished_.set();
    }
    // Every waiting task re-checks the queue and raises QueueShutDown (getters once it is empty).
    while (getters_.pop_and_wake_next()) {
    }
    while (putters_.pop_and_wake_next()) {
    }
}

}  // namespace tulip::asyncio
