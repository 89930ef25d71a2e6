// UDP echo server protocol (Python's asyncio "Transports and protocols" example 18.5.4.3.4).
//
// Python's server listens on 127.0.0.1:9999 until Ctrl+C. To run as a self-contained test, this
// one listens on a port the kernel picks and, in the same loop, plays the client once with the
// loop's socket operations; then it closes the endpoint, as Python's does on the way out.
#include <tulip/asyncio.hpp>

#include <cstdio>
#include <memory>
#include <string>

namespace asyncio = tulip::asyncio;

class EchoServerProtocol : public asyncio::DatagramProtocol {
public:
    void connection_made(asyncio::DatagramTransport& transport) override { transport_ = &transport; }

    void datagram_received(std::string_view data, const tulip::socket::Address& addr) override {
        std::string message(data);
        std::printf("Received '%s' from %s\n", message.c_str(), addr.to_string().c_str());
        std::printf("Send '%s' to %s\n", message.c_str(), addr.to_string().c_str());
        transport_->sendto(data, addr);
    }

private:
    asyncio::DatagramTransport* transport_ = nullptr;
};

asyncio::Coro<> client(asyncio::EventLoop& loop, const tulip::socket::Address& server) {
    tulip::socket::Socket s(AF_INET, SOCK_DGRAM);
    s.setblocking(false);
    co_await loop.sock_sendto(s, "Hello World!", server);
    auto [reply, from] = co_await loop.sock_recvfrom(s, 100);
    std::printf("Client got back: '%s'\n", reply.c_str());
}

asyncio::Coro<> main_coro() {
    asyncio::EventLoop& loop = asyncio::get_running_loop();
    std::printf("Starting UDP server\n");
    // One protocol instance will be created to serve all client requests
    asyncio::DatagramOptions options;
    options.local_addr = std::pair(std::string("127.0.0.1"), 0);
    auto [transport, protocol] =
        co_await loop.create_datagram_endpoint([] { return std::make_shared<EchoServerProtocol>(); }, std::move(options));
    co_await client(loop, *transport->sockname());
    transport->close();
}

int main() {
    try {
        asyncio::run(main_coro());
    } catch (const std::exception& e) {
        std::printf("error: %s\n", e.what());
        return 1;
    }
}
