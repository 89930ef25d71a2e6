// TCP echo client protocol (Python's asyncio "Transports and protocols" example 18.5.4.3.1).
//
// Python's client talks to the echo server of the next example on 127.0.0.1:8888. To run as a
// self-contained test, this one starts that server (echo, then close) in the same loop on a port
// the kernel picks, then runs the client protocol against it.
#include <tulip/asyncio.hpp>

#include <cstdio>
#include <memory>
#include <string>

namespace asyncio = tulip::asyncio;

class EchoClientProtocol : public asyncio::Protocol {
public:
    EchoClientProtocol(std::string message, asyncio::Future<void> on_con_lost)
        : message_(std::move(message)), on_con_lost_(std::move(on_con_lost)) {}

    void connection_made(asyncio::Transport& transport) override {
        transport.write(message_);
        std::printf("Data sent: '%s'\n", message_.c_str());
    }

    void data_received(std::string_view data) override {
        std::printf("Data received: '%.*s'\n", static_cast<int>(data.size()), data.data());
    }

    void connection_lost(std::exception_ptr) override {
        std::printf("The server closed the connection\n");
        on_con_lost_.set_result();
    }

private:
    std::string message_;
    asyncio::Future<void> on_con_lost_;
};

// The server side of the pair: echo what comes, then close (example 18.5.4.3.2, quietly).
class EchoThenClose : public asyncio::Protocol {
public:
    void connection_made(asyncio::Transport& transport) override { transport_ = &transport; }
    void data_received(std::string_view data) override {
        transport_->write(data);
        transport_->close();
    }

private:
    asyncio::Transport* transport_ = nullptr;
};

asyncio::Coro<> main_coro() {
    asyncio::EventLoop& loop = asyncio::get_running_loop();
    auto server =
        co_await loop.create_server([] { return std::make_shared<EchoThenClose>(); }, std::string("127.0.0.1"), 0);
    int port = server->sockets().at(0).getsockname().port();

    asyncio::Future<void> on_con_lost = loop.create_future<void>();
    std::string message = "Hello World!";
    auto factory = [&] { return std::make_shared<EchoClientProtocol>(message, on_con_lost); };
    auto [transport, protocol] = co_await loop.create_connection(factory, std::string("127.0.0.1"), port);

    // Wait until the protocol signals that the connection is lost and close the transport.
    co_await on_con_lost;
    transport->close();
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
