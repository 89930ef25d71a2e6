// TCP echo server using streams (Python's asyncio "Streams" example 18.5.5.7.2).
//
// Python's server listens on 127.0.0.1:8888 until Ctrl+C. To run as a self-contained test, this
// one listens on a port the kernel picks and serves until one client (the client of the
// previous example, in the same loop) has been answered.
#include <tulip/asyncio.hpp>

#include <cstdio>
#include <string>

namespace asyncio = tulip::asyncio;

asyncio::Coro<> handle_echo(asyncio::StreamReader reader, asyncio::StreamWriter writer) {
    std::string data = co_await reader.read(100);
    std::string message = data;
    auto addr = writer.get_extra_info("peername");
    std::printf("Received '%s' from %s\n", message.c_str(),
                std::any_cast<tulip::socket::Address>(addr).to_string().c_str());

    std::printf("Send: '%s'\n", message.c_str());
    writer.write(data);
    co_await writer.drain();

    std::printf("Close the client socket\n");
    writer.close();
    co_await writer.wait_closed();
}

// The client of example 18.5.5.7.1, quietly.
asyncio::Coro<std::string> one_client(int port) {
    auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", port);
    writer.write("Hello World!");
    std::string reply = co_await reader.read();  // up to the server's close
    writer.close();
    co_await writer.wait_closed();
    co_return reply;
}

asyncio::Coro<> main_coro() {
    auto server = co_await asyncio::start_server(handle_echo, "127.0.0.1", 0);  // Python: port 8888

    // Serve requests until the client is done (Python: until Ctrl+C)
    std::printf("Serving on %s\n", server->sockets().at(0).getsockname().to_string().c_str());
    std::string reply = co_await one_client(server->sockets().at(0).getsockname().port());
    std::printf("Client got back: '%s'\n", reply.c_str());

    // Close the server
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
