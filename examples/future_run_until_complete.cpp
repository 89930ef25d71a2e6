// Future with run_until_complete() (Python 3.6, asyncio "Tasks and coroutines" examples).
//
// slow_operation() sleeps (1 s in Python, 0.1 s here to keep the example fast) and then sets the
// future's result; the loop runs until the future is done.
#include <tulip/asyncio.hpp>

#include <cstdio>
#include <string>

using namespace std::chrono_literals;
namespace asyncio = tulip::asyncio;

asyncio::Coro<> slow_operation(asyncio::Future<std::string> future) {
    co_await asyncio::sleep(100ms);
    future.set_result("Future is done!");
}

int main() {
    asyncio::EventLoop& loop = asyncio::get_event_loop();
    asyncio::Future<std::string> future(loop);
    // Python's asyncio.ensure_future(slow_operation(future)): the loop is not running yet, so
    // the task is created on it directly.
    loop.create_task(slow_operation(future));
    loop.run_until_complete(future);
    std::puts(future.result().c_str());
    loop.close();
}
