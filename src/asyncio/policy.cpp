// get_event_loop / set_event_loop / new_event_loop and the policy behind them.
#include <memory>

#include "tulip/asyncio/events.hpp"

namespace tulip::asyncio {

namespace {

// What the default policy knows about one thread.
struct ThreadLoop {
    EventLoop* current = nullptr;
    std::unique_ptr<EventLoop> owned;  // a loop the policy created for this thread
};
thread_local ThreadLoop t_thread_loop;

EventLoopPolicy g_default_policy;
EventLoopPolicy* g_policy = nullptr;

}  // namespace

EventLoop& EventLoopPolicy::get_event_loop() {
    if (!t_thread_loop.current) {
        t_thread_loop.owned = new_event_loop();
        t_thread_loop.current = t_thread_loop.owned.get();
    }
    return *t_thread_loop.current;
}

void EventLoopPolicy::set_event_loop(EventLoop* loop) {
    if (t_thread_loop.owned && t_thread_loop.owned.get() != loop) t_thread_loop.owned.reset();
    t_thread_loop.current = loop;
}

std::unique_ptr<EventLoop> EventLoopPolicy::new_event_loop() { return std::make_unique<EventLoop>(); }

EventLoopPolicy& get_event_loop_policy() { return g_policy ? *g_policy : g_default_policy; }
void set_event_loop_policy(EventLoopPolicy* policy) { g_policy = policy; }

EventLoop& get_running_loop() {
    if (EventLoop* loop = detail::running_loop()) return *loop;
    throw RuntimeError("no running event loop");
}

EventLoop& get_event_loop() {
    if (EventLoop* loop = detail::running_loop()) return *loop;
    return get_event_loop_policy().get_event_loop();
}

void set_event_loop(EventLoop* loop) { get_event_loop_policy().set_event_loop(loop); }

std::unique_ptr<EventLoop> new_event_loop() { return get_event_loop_policy().new_event_loop(); }

}  // namespace tulip::asyncio
