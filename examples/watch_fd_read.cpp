// Watch a file descriptor for read events (Python 3.6, asyncio "Base Event Loop" examples).
//
// add_reader() on one end of a socket pair; the other end "receives data from the network".
#include <sys/socket.h>
#include <unistd.h>

#include <tulip/asyncio.hpp>

#include <cstdio>
#include <string_view>

namespace asyncio = tulip::asyncio;

int main() {
    // Create a pair of connected file descriptors
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) {
        std::perror("socketpair");
        return 1;
    }
    int rsock = fds[0], wsock = fds[1];
    asyncio::EventLoop& loop = asyncio::get_event_loop();

    // Register the file descriptor for read event
    loop.add_reader(rsock, [&] {
        char data[100];
        ssize_t n = ::recv(rsock, data, sizeof data, 0);
        std::printf("Received: %.*s\n", static_cast<int>(n > 0 ? n : 0), data);
        // We are done: unregister the file descriptor
        loop.remove_reader(rsock);
        // Stop the event loop
        loop.stop();
    });

    // Simulate the reception of data from the network
    loop.call_soon([&] {
        std::string_view data = "abc";
        [[maybe_unused]] ssize_t sent = ::send(wsock, data.data(), data.size(), 0);
    });

    // Run the event loop
    loop.run_forever();

    // We are done, close sockets and the event loop
    ::close(rsock);
    ::close(wsock);
    loop.close();
}
