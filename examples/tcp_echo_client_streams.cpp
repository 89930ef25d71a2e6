// TCP echo client using streams (Python's asyncio "Streams" example 18.5.5.7.1).
//
// Python's client talks to the echo server of the next example on 127.0.0.1:8888. To run as a
// self-contained test, this one starts that server (read, echo, close) in the same loop on a
// port the kernel picks, then runs the client against it.
#include <tulip/asyncio.hpp>

#include <cstdio>
#include <string>

namespace asyncio = tulip::asyncio;

// The server of example 18.5.5.7.2, quietly.
asyncio::Coro<> handle_echo(asyncio::StreamReader reader, asyncio::StreamWriter writer) {
    std::string data = co_await reader.read(100);
    writer.write(data);
    co_await writer.drain();
    writer.close();
    co_await writer.wait_closed();
}

asyncio::Coro<> tcp_echo_client(std::string message, int port) {
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", port);

    std::printf("Send: '%s'\n", message.c_str());
    writer.write(message);

    std::string data = co_await reader.read(100);
    std::printf("Received: '%s'\n", data.c_str());

    std::printf("Close the socket\n");
    writer.close();
    co_await writer.wait_closed();
}

asyncio::Coro<> main_coro() {
    auto server = co_await asyncio::start_server(handle_echo, "127.0.0.1", 0);  // Python: port 8888
    int port = server->sockets().at(0).getsockname().port();

    std::string message = "Hello World!";
    co_await tcp_echo_client(message, port);

    server->close();
    co_await server->wait_closed();
}

int main() {
    try {
        asyncio::run(main_coro());
    } catch (const std::exception& e) {
        std::printf("error: %s\n", e.what());
        return 1;
    }
}
