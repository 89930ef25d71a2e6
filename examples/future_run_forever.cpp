// Future with run_forever() (Python 3.6, asyncio "Tasks and coroutines" examples).
//
// slow_operation() sleeps (1 s in Python, 0.1 s here to keep the example fast) and then sets the
// future's result; the future's done callback prints it and stops the loop.
#include <tulip/asyncio.hpp>

#include <cstdio>
#include <string>

using namespace std::chrono_literals;
namespace asyncio = tulip::asyncio;

asyncio::Coro<> slow_operation(asyncio::Future<std::string> future) {
    co_await asyncio::sleep(100ms);
    future.set_result("Future is done!");
}

void got_result(const asyncio::Future<std::string>& future) {
    std::puts(future.result().c_str());
    future.get_loop().stop();
}

int main() {
    asyncio::EventLoop& loop = asyncio::get_event_loop();
    asyncio::Future<std::string> future(loop);
    // Python's asyncio.ensure_future(slow_operation(future)), on the loop that is not running yet.
    loop.create_task(slow_operation(future));
    future.add_done_callback(got_result);
    loop.run_forever();
    loop.close();
}
