// Hello World with call_soon() (Python 3.6, asyncio "Base Event Loop" examples).
//
// Schedules hello_world() with call_soon(), runs the loop until hello_world() stops it.
#include <tulip/asyncio.hpp>

#include <cstdio>

namespace asyncio = tulip::asyncio;

void hello_world(asyncio::EventLoop& loop) {
    std::puts("Hello World");
    loop.stop();
}

int main() {
    asyncio::EventLoop& loop = asyncio::get_event_loop();

    // Schedule a call to hello_world()
    loop.call_soon(hello_world, std::ref(loop));

    // Blocking call interrupted by loop.stop()
    loop.run_forever();
    loop.close();
}
