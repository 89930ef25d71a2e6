// EventLoop: the iteration (Python's BaseEventLoop._run_once), timers, the cross-thread door,
// closing, and the exception handler.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <mutex>
#include <unordered_set>

#include "../backend/backend.hpp"
#include "tulip/log.hpp"
#include "io_watchers.hpp"
#include "signals.hpp"
#include "thread_pool.hpp"
#include "threadsafe_queue.hpp"
#include "transports/fd_watch.hpp"
#include "transports/loop_resources.hpp"
#include "tulip/asyncio/events.hpp"

namespace tulip::asyncio {

namespace detail {
namespace {

// A task entry of the ready queue: the queue's reference is adopted and dropped after the step.
inline void step_task(TaskCore& task) {
    auto owner = Ref<FutureStateBase>::adopt(&task.future_state());
    if (!owner->done()) task.step();
}

thread_local EventLoop* t_running_loop = nullptr;

// Loops that exist, so that a future outliving its loop does not report to a dead one.
std::mutex g_live_loops_mutex;
std::unordered_set<const EventLoop*>& live_loops() {
    static std::unordered_set<const EventLoop*> loops;
    return loops;
}

// Deadlines are clamped here so that huge delays cannot overflow (reliability check 21).
constexpr std::int64_t kFarFuture = std::numeric_limits<std::int64_t>::max() / 2;

std::string describe_exception(const std::exception_ptr& e) {
    if (!e) return {};
    try {
        std::rethrow_exception(e);
    } catch (const CancelledError& c) {
        return "CancelledError(" + c.message() + ")";
    } catch (const std::exception& x) {
        return x.what();
    } catch (...) {
        return "unknown exception";
    }
}

}  // namespace

EventLoop* running_loop() noexcept { return t_running_loop; }

bool loop_is_alive(const EventLoop* loop) noexcept {
    std::lock_guard lock(g_live_loops_mutex);
    return live_loops().count(loop) != 0;
}

void remove_cancelled_timer(EventLoop& loop, HandleNode& node) noexcept { loop.remove_cancelled_timer(node); }

}  // namespace detail

double TimerHandle::when() const noexcept {
    return node() ? static_cast<double>(node()->when_ns) / 1e9 : 0.0;
}

EventLoop::EventLoop() : EventLoop(LoopOptions{}) {}

EventLoop::EventLoop(LoopOptions options)
    : backend_(detail::make_backend(options.backend)),
      threadsafe_(std::make_unique<detail::LoopThreadsafeQueue>()),
      io_(std::make_unique<detail::IoWatchers>(*this, *backend_)),
      resources_(std::make_unique<detail::LoopResources>()) {
    if (const char* env = std::getenv("TULIP_DEBUG"); env && *env && std::string(env) != "0")
        debug_ = true;
    virtual_clock_ = options.virtual_clock;
    if (options.read_buffer_pool && backend_->native_socket_ops())
        backend_->set_buffer_pool(options.read_buffer_pool->count, options.read_buffer_pool->size);
    if (options.shuffle_seed) {
        shuffle_ = true;
        shuffle_state_ = *options.shuffle_seed;
    }
    std::lock_guard lock(detail::g_live_loops_mutex);
    detail::live_loops().insert(this);
}

EventLoop::~EventLoop() {
    if (running_) {
        tulip::logger().critical("EventLoop destroyed while running");
        std::terminate();
    }
    close();
    std::lock_guard lock(detail::g_live_loops_mutex);
    detail::live_loops().erase(this);
}

std::int64_t EventLoop::now_ns() const noexcept {
    if (virtual_clock_) return virtual_now_ns_;
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

double EventLoop::time() const noexcept { return static_cast<double>(now_ns()) / 1e9; }

std::int64_t EventLoop::deadline_at(double when_seconds) const noexcept {
    if (std::isnan(when_seconds)) return detail::kFarFuture;  // never fires; cancel() to drop it
    double ns = when_seconds * 1e9;
    if (ns >= static_cast<double>(detail::kFarFuture)) return detail::kFarFuture;
    if (ns <= 0) return 0;
    return static_cast<std::int64_t>(std::ceil(ns));
}

std::int64_t EventLoop::deadline_after(double delay_seconds) const noexcept {
    if (std::isnan(delay_seconds)) return detail::kFarFuture;
    // One clock read (~30 ns on kvm-clock), used for both the overflow check and the result.
    std::int64_t now = now_ns();
    double ns = std::max(0.0, delay_seconds) * 1e9;
    if (ns >= static_cast<double>(detail::kFarFuture) - static_cast<double>(now)) return detail::kFarFuture;
    return now + static_cast<std::int64_t>(std::ceil(ns));
}

void EventLoop::check_closed() const {
    if (closed_) throw RuntimeError("Event loop is closed");
}

// --- scheduling -----------------------------------------------------------------------------

detail::Ref<detail::HandleNode> EventLoop::push_timer(std::int64_t when_ns, detail::HandleNode* node) {
    detail::Ref<detail::HandleNode> handle(node);
    check_closed();
    node->when_ns = when_ns;
    timers_.push(node);
    node->add_ref();  // the heap's reference
    node->timer_loop_ = this;
    return handle;
}

detail::Ref<detail::HandleNode> EventLoop::enqueue_threadsafe(detail::HandleNode* node) {
    node->mark_shared();  // before any reference: the count is atomic from here on
    detail::Ref<detail::HandleNode> handle(node);
    node->add_ref();  // the queue's reference
    if (!threadsafe_->push(node)) {
        node->release();
        throw RuntimeError("Event loop is closed");
    }
    backend_->wakeup();
    return handle;
}

void EventLoop::schedule_task_step(detail::TaskCore& task) {
    task.future_state().add_ref();
    ready_.push_task(&task);
}

void EventLoop::register_task(detail::TaskCore& task) noexcept {
    task.next_live = live_tasks_;
    if (live_tasks_) live_tasks_->prev_live = &task;
    live_tasks_ = &task;
    task.registered = true;
    ++live_task_count_;
}

void EventLoop::unregister_task(detail::TaskCore& task) noexcept {
    if (!task.registered) return;
    if (task.prev_live) task.prev_live->next_live = task.next_live;
    else live_tasks_ = task.next_live;
    if (task.next_live) task.next_live->prev_live = task.prev_live;
    task.prev_live = task.next_live = nullptr;
    task.registered = false;
    --live_task_count_;
}

void EventLoop::watch_fd(int fd, bool write, detail::HandleNode* node) {
    detail::Ref<detail::HandleNode> owner(node);  // freed if we throw before handing it on
    check_closed();
    io_->watch(fd, write, owner.get());
}

bool EventLoop::remove_reader(int fd) { return !closed_ && io_->unwatch(fd, false); }
bool EventLoop::remove_writer(int fd) { return !closed_ && io_->unwatch(fd, true); }

void EventLoop::watch_signal(int sig, detail::HandleNode* node) {
    detail::Ref<detail::HandleNode> owner(node);
    check_closed();
    if (!signals_) signals_ = std::make_unique<detail::SignalDispatcher>(*this, *backend_);
    signals_->add(sig, owner.get());
}

bool EventLoop::remove_signal_handler(int sig) {
    if (!signals_) return false;
    return signals_->remove(sig);
}

detail::Backend& EventLoop::backend() const noexcept { return *backend_; }

std::string_view EventLoop::backend_name() const noexcept { return backend_ ? backend_->name() : "closed"; }

LoopStats EventLoop::stats() const noexcept {
    LoopStats s;
    s.ready = ready_.size();
    s.timers = timers_.size();
    s.io_watchers = io_ ? io_->size() : 0;
    s.pending_ops = backend_ ? backend_->pending_ops() : 0;
    s.live_tasks = live_task_count_;
    return s;
}

void EventLoop::submit_to_executor(std::function<void()> job) {
    check_closed();
    if (!executor_) executor_ = std::make_unique<detail::ThreadPool>(detail::ThreadPool::default_max_workers());
    executor_->submit(std::move(job));
}

void EventLoop::shutdown_default_executor() {
    if (executor_) executor_->shutdown();
}

// --- running --------------------------------------------------------------------------------

void EventLoop::run_forever() {
    check_closed();
    if (running_) throw RuntimeError("This event loop is already running");
    if (detail::t_running_loop)
        throw RuntimeError("Cannot run the event loop while another loop is running");
    detail::t_running_loop = this;
    running_ = true;
    struct Reset {
        EventLoop& loop;
        ~Reset() {
            loop.stopping_ = false;
            loop.running_ = false;
            detail::t_running_loop = nullptr;
        }
    } reset{*this};
    for (;;) {
        run_once();
        if (stopping_) break;
    }
}

void EventLoop::stop_when_done(detail::FutureStateBase& future) {
    if (future.done()) {
        // Python runs one more iteration in this case; stopping at once is equivalent because
        // nothing else was asked for.
        stop();
        return;
    }
    future.add_done_callback([this] { stop(); });
}

void EventLoop::run_until_done(detail::FutureStateBase& future) {
    stop_when_done(future);
    run_forever();
    if (!future.done()) throw RuntimeError("Event loop stopped before Future completed.");
}

std::int64_t EventLoop::compute_timeout_ns() const noexcept {
    if (!ready_.empty() || stopping_ || threadsafe_->maybe_has_items()) return 0;
    if (timers_.empty()) return -1;
    return std::max<std::int64_t>(0, timers_.next_deadline() - now_ns());
}

void EventLoop::remove_cancelled_timer(detail::HandleNode& node) noexcept {
    timers_.remove(node);
    node.timer_loop_ = nullptr;
    node.release();  // the heap's reference
}

void EventLoop::move_due_timers() {
    std::int64_t now = now_ns();
    while (!timers_.empty() && timers_.next_deadline() <= now) {
        detail::HandleNode* node = timers_.pop();
        node->timer_loop_ = nullptr;
        ready_.push_handle(node);  // the heap's reference moves to the ready queue
    }
}

void EventLoop::run_once() {
    std::int64_t timeout = compute_timeout_ns();
    if (virtual_clock_ && timeout != 0) {
        // Instead of blocking until the next timer, pretend the time has passed.
        backend_->wait(0);
        if (timeout > 0) virtual_now_ns_ += timeout;
    } else {
        backend_->wait(timeout);
    }
    if (threadsafe_->maybe_has_items()) {
        std::vector<detail::HandleNode*> nodes;
        threadsafe_->take(nodes);
        for (auto* node : nodes) ready_.push_handle(node);
    }
    move_due_timers();

    // asyncio's fairness rule: run only what was ready when this iteration started; whatever
    // those callbacks schedule waits for the next iteration, after the next I/O poll.
    std::size_t ntodo = ready_.size();
    if (shuffle_) {
        // splitmix64: small, seedable, good enough to pick permutations.
        auto next = [this] {
            std::uint64_t z = (shuffle_state_ += 0x9e3779b97f4a7c15ULL);
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
            return z ^ (z >> 31);
        };
        ready_.shuffle_front(ntodo, next);
    }
    for (std::size_t i = 0; i < ntodo && !ready_.empty(); ++i) {
        detail::ReadyQueue::Entry entry = ready_.pop();
        if (entry.kind == detail::ReadyQueue::Kind::fd_watch && !debug_) {
            // The usual entry of an I/O-bound loop, run here without run_entry's frame.
            try {
                entry.fd_watch()->dispatch();
            } catch (...) {
                report_callback_exception("transport I/O", nullptr);
            }
            continue;
        }
        if (entry.kind == detail::ReadyQueue::Kind::task && !debug_) {
            // The other usual one: a task woken by I/O.
            detail::step_task(*entry.task());
            continue;
        }
        run_entry(entry);
    }
}

void EventLoop::run_entry(detail::ReadyQueue::Entry entry) {
    std::int64_t started = debug_ ? now_ns() : 0;
    switch (entry.kind) {
        case detail::ReadyQueue::Kind::task:
            detail::step_task(*entry.task());
            if (debug_) log_if_slow(started, "task step");
            return;
        case detail::ReadyQueue::Kind::fd_watch:
            // No node and no reference: the most frequent entry of an I/O-bound loop.
            try {
                entry.fd_watch()->dispatch();
            } catch (...) {
                report_callback_exception("transport I/O", nullptr);
            }
            if (debug_) log_if_slow(started, "transport I/O");
            return;
        case detail::ReadyQueue::Kind::handle:
            break;
    }
    auto node = detail::Ref<detail::HandleNode>::adopt(entry.handle());
    if (node->cancelled()) return;
    run_handle(*node);
    if (debug_) log_if_slow(started, "callback");
}

void EventLoop::run_handle(detail::HandleNode& node) {
    try {
        node.run();
    } catch (...) {
        report_callback_exception(node.describe(), &node);
    }
}

void EventLoop::report_callback_exception(const std::string& what, detail::HandleNode* node) noexcept {
    ExceptionContext context;
    context.exception = std::current_exception();
    try {
        context.message = "Exception in callback " + what;
        if (node) context.handle = Handle(detail::Ref<detail::HandleNode>(node));
    } catch (...) {
    }
    call_exception_handler(context);
}

void EventLoop::log_if_slow(std::int64_t started_ns, const char* what) {
    double took = static_cast<double>(now_ns() - started_ns) / 1e9;
    if (took >= slow_callback_duration) tulip::logger().warn("Executing {} took {:.3f} seconds", what, took);
}

// --- closing --------------------------------------------------------------------------------

void EventLoop::close() {
    if (running_) throw RuntimeError("Cannot close a running event loop");
    if (closed_) return;
    closed_ = true;
    // Let executor jobs finish and post their results, then shut the cross-thread door.
    if (executor_) executor_->shutdown();
    threadsafe_->close();
    release_everything_scheduled();
    destroy_pending_tasks();
    // What the abandoned tasks' frames scheduled while being destroyed.
    release_everything_scheduled();
    if (signals_) signals_->shutdown();
    // Open transports and servers close their fds and withdraw their operations (no callbacks).
    resources_->close_all();
    io_->clear();
    drain_cancelled_operations();
    signals_.reset();
    executor_.reset();
}

void EventLoop::drain_cancelled_operations() noexcept {
    // A completion backend confirms cancellations asynchronously; wait (briefly, the kernel
    // answers at once) for every one so that no operation outlives the loop's bookkeeping.
    for (int attempt = 0; attempt < 1000 && backend_->pending_ops() > 0; ++attempt) {
        try {
            backend_->wait(1'000'000);
        } catch (...) {
            break;
        }
    }
}

void EventLoop::release_everything_scheduled() noexcept {
    while (!ready_.empty()) {
        auto entry = ready_.pop();
        switch (entry.kind) {
            case detail::ReadyQueue::Kind::task: entry.task()->future_state().release(); break;
            case detail::ReadyQueue::Kind::handle: entry.handle()->release(); break;
            case detail::ReadyQueue::Kind::fd_watch: entry.fd_watch()->drop_queued(); break;
        }
    }
    timers_.clear([](detail::HandleNode* node) { node->release(); });
    std::vector<detail::HandleNode*> nodes;
    threadsafe_->take(nodes);
    for (auto* node : nodes) node->release();
}

void EventLoop::destroy_pending_tasks() noexcept {
    // A pending task's frame holds the futures it awaits, which hold the task: destroy the frames
    // to break those cycles. Hold every task first, because destroying one frame may free others.
    std::vector<detail::Ref<detail::FutureStateBase>> held;
    std::vector<detail::TaskCore*> tasks;
    for (auto* t = live_tasks_; t; t = t->next_live) {
        held.emplace_back(&t->future_state());
        tasks.push_back(t);
    }
    for (auto* t : tasks) {
        unregister_task(*t);
        t->abandon_pending();
    }
}

// --- errors ---------------------------------------------------------------------------------

void EventLoop::default_exception_handler(const ExceptionContext& context) {
    std::string text = context.message.empty() ? "Unhandled exception in event loop" : context.message;
    if (!context.future.empty() && context.message.find(context.future) == std::string::npos)
        text += " (" + context.future + ")";
    if (context.exception) text += ": " + detail::describe_exception(context.exception);
    tulip::logger().error("{}", text);
}

void EventLoop::call_exception_handler(const ExceptionContext& context) noexcept {
    try {
        if (!exception_handler_) {
            default_exception_handler(context);
            return;
        }
        try {
            exception_handler_(*this, context);
        } catch (...) {
            ExceptionContext failure;
            failure.message = "Unhandled error in exception handler";
            failure.exception = std::current_exception();
            default_exception_handler(failure);
            default_exception_handler(context);
        }
    } catch (...) {
        // Logging itself failed (out of memory): nothing more can be done.
    }
}

}  // namespace tulip::asyncio
