// Register an open socket to wait for data using a protocol (Python's asyncio "Transports and
// protocols" example 18.5.4.3.5): a socket pair, one end wrapped in a transport with
// create_connection(sock=...); the other end "receives data from the network".
#include <tulip/asyncio.hpp>

#include <cstdio>
#include <memory>

namespace asyncio = tulip::asyncio;

int main() {
    asyncio::EventLoop& loop = asyncio::get_event_loop();

    class MyProtocol : public asyncio::Protocol {
    public:
        explicit MyProtocol(asyncio::EventLoop& loop) : loop_(loop) {}
        void connection_made(asyncio::Transport& transport) override { transport_ = &transport; }
        void data_received(std::string_view data) override {
            std::printf("Received: %.*s\n", static_cast<int>(data.size()), data.data());
            // We are done: close the transport (it will call connection_lost())
            transport_->close();
        }
        void connection_lost(std::exception_ptr) override {
            // The socket has been closed, stop the event loop
            loop_.stop();
        }

    private:
        asyncio::EventLoop& loop_;
        asyncio::Transport* transport_ = nullptr;
    };

    // Create a pair of connected sockets
    auto [rsock, wsock] = tulip::socket::socketpair();

    // Register the socket to wait for data
    asyncio::ConnectionOptions options;
    options.sock = std::move(rsock);
    auto [transport, protocol] = loop.run_until_complete(loop.create_connection(
        [&loop] { return std::make_shared<MyProtocol>(loop); }, std::nullopt, 0, std::move(options)));

    // Simulate the reception of data from the network
    tulip::socket::Socket& writer = wsock;
    loop.call_soon([&writer] { writer.send(std::string_view("abc")); });

    // Run the event loop
    loop.run_forever();

    // We are done, close sockets and the event loop
    wsock.close();
    loop.close();
}
