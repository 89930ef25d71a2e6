// Register an open socket to wait for data using streams (Python's asyncio "Streams" example
// 18.5.5.7.4).
//
// open_connection() on one end of a socket pair; the other end "receives data from the network".
#include <tulip/asyncio.hpp>
#include <tulip/socket.hpp>

#include <cstdio>
#include <string>

namespace asyncio = tulip::asyncio;
namespace {
namespace socket = tulip::socket;
}  // namespace

asyncio::Coro<> wait_for_data(socket::Socket rsock, socket::Socket& wsock) {
    asyncio::EventLoop& loop = asyncio::get_running_loop();

    // Register the open socket to wait for data
    asyncio::ConnectionOptions options;
    options.sock = std::move(rsock);
    auto [reader, writer] = co_await asyncio::open_connection(std::nullopt, 0, asyncio::stream_default_limit,
                                                              std::move(options));

    // Simulate the reception of data from the network
    loop.call_soon([&wsock] { wsock.send("abc"); });

    // Wait for data
    std::string data = co_await reader.read(100);

    // Got data, we are done: close the socket
    std::printf("Received: %s\n", data.c_str());
    writer.close();
    co_await writer.wait_closed();

    // Close the second socket
    wsock.close();
}

int main() {
    try {
        // Create a pair of connected sockets
        auto [rsock, wsock] = socket::socketpair();
        asyncio::run(wait_for_data(std::move(rsock), wsock));
    } catch (const std::exception& e) {
        std::printf("error: %s\n", e.what());
        return 1;
    }
}
