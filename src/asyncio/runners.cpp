#include "tulip/asyncio/runners.hpp"

namespace tulip::asyncio::detail {

void cancel_all_tasks(EventLoop& loop) noexcept {
    try {
        std::vector<TaskRef> tasks = all_tasks(loop);
        if (tasks.empty()) return;
        std::size_t remaining = tasks.size();
        for (auto& t : tasks) {
            t.cancel();
            t.core()->future_state().add_done_callback([&loop, &remaining] {
                if (--remaining == 0) loop.stop();
            });
        }
        loop.run_forever();
        for (auto& t : tasks) {
            auto& state = t.core()->future_state();
            if (!state.done() || state.cancelled()) continue;
            if (auto error = state.exception()) {
                ExceptionContext context;
                context.message = "unhandled exception during asyncio::run() shutdown";
                context.exception = error;
                context.future = state.describe();
                loop.call_exception_handler(context);
            }
        }
    } catch (...) {
        ExceptionContext context;
        context.message = "error while cancelling the tasks left at the end of asyncio::run()";
        context.exception = std::current_exception();
        loop.call_exception_handler(context);
    }
}

void finish_run(EventLoop& loop) noexcept {
    cancel_all_tasks(loop);
    try {
        loop.shutdown_default_executor();
        // Run the results that executor jobs posted while finishing.
        auto flushed = loop.create_future<void>();
        loop.call_soon([flushed] { flushed.set_result(); });
        loop.run_until_complete(flushed);
    } catch (...) {
    }
    set_event_loop(nullptr);
    try {
        loop.close();
    } catch (...) {
    }
}

}  // namespace tulip::asyncio::detail
