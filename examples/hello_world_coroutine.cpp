// Hello World with a coroutine (Python 3.6, asyncio "Tasks and coroutines" examples).
#include <tulip/asyncio.hpp>

#include <cstdio>

namespace asyncio = tulip::asyncio;

asyncio::Coro<> hello_world() {
    std::puts("Hello World!");
    co_return;
}

int main() {
    asyncio::EventLoop& loop = asyncio::get_event_loop();
    // Blocking call which returns when the hello_world() coroutine is done
    loop.run_until_complete(hello_world());
    loop.close();
}
