// Set signal handlers for SIGINT and SIGTERM (Python 3.6, asyncio "Base Event Loop" examples).
//
// Python's example waits for the user to press Ctrl+C or to kill it. So that it can run as a
// test, this one sends the signals to itself: a SIGINT after 50 ms, then a SIGTERM after 50 ms.
// ::kill() to its own, single-threaded process delivers the signal before it returns; the C
// handler only wakes the loop, and ask_exit() runs later, on the loop, like any callback.
#include <signal.h>
#include <unistd.h>

#include <tulip/asyncio.hpp>

#include <cstdio>
#include <string>

namespace asyncio = tulip::asyncio;

void ask_exit(const std::string& signame, asyncio::EventLoop& loop) {
    std::printf("got signal %s: exit\n", signame.c_str());
    loop.stop();
}

int main() {
    asyncio::EventLoop& loop = asyncio::get_event_loop();
    for (auto [signum, signame] : {std::pair{SIGINT, "SIGINT"}, std::pair{SIGTERM, "SIGTERM"}})
        loop.add_signal_handler(signum, [signame = std::string(signame), &loop] { ask_exit(signame, loop); });

    std::puts("Event loop running forever, press Ctrl+C to interrupt.");
    std::printf("pid %d: send SIGINT or SIGTERM to exit.\n", static_cast<int>(::getpid()));

    // Instead of a user: Ctrl+C first, then a kill.
    for (int signum : {SIGINT, SIGTERM}) {
        loop.call_later(0.05, [signum] { ::kill(::getpid(), signum); });
        loop.run_forever();
    }
    loop.close();  // removes the handlers: SIGINT and SIGTERM get their default disposition back
}
