// Parallel execution of tasks (Python 3.6, asyncio "Tasks and coroutines" examples).
//
// gather() wraps the three factorial() coroutines in tasks that run concurrently; each step
// sleeps (1 s in Python, 0.1 s here to keep the example fast), so their lines interleave as in
// Python's output.
#include <tulip/asyncio.hpp>

#include <cstdio>
#include <string>

using namespace std::chrono_literals;
namespace asyncio = tulip::asyncio;

asyncio::Coro<> factorial(std::string name, int number) {
    long f = 1;
    for (int i = 2; i <= number; ++i) {
        std::printf("Task %s: Compute factorial(%d)...\n", name.c_str(), i);
        co_await asyncio::sleep(100ms);
        f *= i;
    }
    std::printf("Task %s: factorial(%d) = %ld\n", name.c_str(), number, f);
}

int main() {
    asyncio::EventLoop& loop = asyncio::get_event_loop();
    loop.run_until_complete(asyncio::gather(
        factorial("A", 2),
        factorial("B", 3),
        factorial("C", 4)));
    loop.close();
}
