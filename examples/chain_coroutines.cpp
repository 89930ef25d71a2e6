// Chain coroutines (Python 3.6, asyncio "Tasks and coroutines" examples).
//
// print_sum() awaits compute(), which sleeps (1 s in Python, 0.1 s here to keep the example
// fast) before returning the sum. Awaiting a Coro runs it inline, as `await` does in Python.
#include <tulip/asyncio.hpp>

#include <cstdio>

using namespace std::chrono_literals;
namespace asyncio = tulip::asyncio;

asyncio::Coro<int> compute(int x, int y) {
    std::printf("Compute %d + %d ...\n", x, y);
    co_await asyncio::sleep(100ms);
    co_return x + y;
}

asyncio::Coro<> print_sum(int x, int y) {
    int result = co_await compute(x, y);
    std::printf("%d + %d = %d\n", x, y, result);
}

int main() {
    asyncio::EventLoop& loop = asyncio::get_event_loop();
    loop.run_until_complete(print_sum(1, 2));
    loop.close();
}
