// TCP echo server protocol (Python's asyncio "Transports and protocols" example 18.5.4.3.2).
//
// Python's program serves on 127.0.0.1:8888 until Ctrl+C. To run as a self-contained test, this
// one serves on a port the kernel picks and, in the same loop, plays the client once with the
// loop's socket operations; then it closes the server, as Python's does on the way out.
#include <tulip/asyncio.hpp>

#include <cstdio>
#include <memory>
#include <string>

namespace asyncio = tulip::asyncio;

class EchoServerClientProtocol : public asyncio::Protocol {
public:
    void connection_made(asyncio::Transport& transport) override {
        auto peername = transport.get_extra_info("peername");
        std::printf("Connection from %s\n", std::any_cast<tulip::socket::Address>(peername).to_string().c_str());
        transport_ = &transport;
    }

    void data_received(std::string_view data) override {
        std::printf("Data received: '%.*s'\n", static_cast<int>(data.size()), data.data());
        std::printf("Send: '%.*s'\n", static_cast<int>(data.size()), data.data());
        transport_->write(data);
        std::printf("Close the client socket\n");
        transport_->close();
    }

private:
    asyncio::Transport* transport_ = nullptr;
};

asyncio::Coro<> client(asyncio::EventLoop& loop, std::uint16_t port) {
    tulip::socket::Socket s(AF_INET, SOCK_STREAM);
    s.setblocking(false);
    co_await loop.sock_connect(s, tulip::socket::Address::ipv4("127.0.0.1", port));
    co_await loop.sock_sendall(s, std::string_view("Hello World!"));
    std::string reply;
    for (std::string chunk; !(chunk = co_await loop.sock_recv(s, 100)).empty();) reply += chunk;
    std::printf("Client got back: '%s'\n", reply.c_str());
}

asyncio::Coro<> main_coro() {
    asyncio::EventLoop& loop = asyncio::get_running_loop();
    // Each client connection will create a new protocol instance
    auto server = co_await loop.create_server([] { return std::make_shared<EchoServerClientProtocol>(); },
                                              std::string("127.0.0.1"), 0);
    auto port = server->sockets().at(0).getsockname().port();
    std::printf("Serving on 127.0.0.1 (a free port)\n");
    co_await client(loop, port);
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
