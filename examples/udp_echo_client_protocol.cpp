// UDP echo client protocol (Python's asyncio "Transports and protocols" example 18.5.4.3.3).
//
// Python's client talks to the echo server of the next example on 127.0.0.1:9999. To run as a
// self-contained test, this one starts that server (quietly) in the same loop on a port the
// kernel picks, then runs the client protocol against it.
#include <tulip/asyncio.hpp>

#include <cstdio>
#include <memory>
#include <string>

namespace asyncio = tulip::asyncio;

class EchoClientProtocol : public asyncio::DatagramProtocol {
public:
    EchoClientProtocol(std::string message, asyncio::Future<void> on_con_lost)
        : message_(std::move(message)), on_con_lost_(std::move(on_con_lost)) {}

    void connection_made(asyncio::DatagramTransport& transport) override {
        transport_ = &transport;
        std::printf("Send: %s\n", message_.c_str());
        transport_->sendto(message_);
    }

    void datagram_received(std::string_view data, const tulip::socket::Address&) override {
        std::printf("Received: %.*s\n", static_cast<int>(data.size()), data.data());
        std::printf("Close the socket\n");
        transport_->close();
    }

    void error_received(std::exception_ptr exc) override {
        try {
            std::rethrow_exception(exc);
        } catch (const std::exception& e) {
            std::printf("Error received: %s\n", e.what());
        }
    }

    void connection_lost(std::exception_ptr) override {
        std::printf("Connection closed\n");
        on_con_lost_.set_result();
    }

private:
    std::string message_;
    asyncio::Future<void> on_con_lost_;
    asyncio::DatagramTransport* transport_ = nullptr;
};

// The server side of the pair: echo each datagram to its sender (example 18.5.4.3.4, quietly).
class Echo : public asyncio::DatagramProtocol {
public:
    void connection_made(asyncio::DatagramTransport& transport) override { transport_ = &transport; }
    void datagram_received(std::string_view data, const tulip::socket::Address& addr) override {
        transport_->sendto(data, addr);
    }

private:
    asyncio::DatagramTransport* transport_ = nullptr;
};

asyncio::Coro<> main_coro() {
    asyncio::EventLoop& loop = asyncio::get_running_loop();
    asyncio::DatagramOptions server_options;
    server_options.local_addr = std::pair(std::string("127.0.0.1"), 0);
    auto [server, echo] =
        co_await loop.create_datagram_endpoint([] { return std::make_shared<Echo>(); }, std::move(server_options));

    asyncio::Future<void> on_con_lost = loop.create_future<void>();
    std::string message = "Hello World!";
    auto factory = [&] { return std::make_shared<EchoClientProtocol>(message, on_con_lost); };
    asyncio::DatagramOptions options;
    options.remote_addr = std::pair(std::string("127.0.0.1"), static_cast<int>(server->sockname()->port()));
    auto [transport, protocol] = co_await loop.create_datagram_endpoint(factory, std::move(options));
    // Wait until the protocol signals that the connection is lost and close the transport.
    co_await on_con_lost;
    transport->close();
    server->close();
}

int main() {
    try {
        asyncio::run(main_coro());
    } catch (const std::exception& e) {
        std::printf("error: %s\n", e.what());
        return 1;
    }
}
