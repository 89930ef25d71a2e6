// Server (Python's asyncio.base_events.Server): what loop.create_server() and
// create_unix_server() return. It owns the listening sockets and creates a transport and a
// protocol for each accepted connection.
//
//     auto server = co_await loop.create_server([] { return std::make_shared<Echo>(); }, "127.0.0.1", 8888);
//     asyncio::Server::Scope scope(server);  // closes it on the way out, as `async with server`
//     co_await server->serve_forever();
//
// The loop keeps a server alive until close() (as Python's loop does through its readers), and
// closes it when the loop itself closes.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <memory>
#include <vector>

#include "tulip/asyncio/detail/handle_node.hpp"
#include "tulip/asyncio/detail/loop_resource.hpp"
#include "tulip/asyncio/detail/ref.hpp"
#include "tulip/asyncio/futures.hpp"
#include "tulip/asyncio/protocols.hpp"
#include "tulip/socket.hpp"

namespace tulip::asyncio {

class EventLoop;
template <class T>
class Coro;

namespace detail {
class Listener;
class SocketTransport;
}  // namespace detail

class Server final : private detail::LoopResource {
public:
    using ProtocolFactory = std::function<std::shared_ptr<BaseProtocol>()>;

    // Made by the loop (create_server and friends); not for direct use.
    struct Passkey {
        explicit Passkey() = default;
    };
    Server(Passkey, EventLoop& loop, std::vector<socket::Socket> sockets, ProtocolFactory factory, int backlog);
    static std::shared_ptr<Server> make(EventLoop& loop, std::vector<socket::Socket> sockets,
                                        ProtocolFactory factory, int backlog);
    ~Server();

    EventLoop& get_loop() const noexcept { return loop_; }
    // The listening sockets; empty once closed. Do not accept on them or close them.
    const std::vector<socket::Socket>& sockets() const noexcept { return sockets_; }
    bool is_serving() const noexcept { return serving_; }
    // Listens and accepts (does nothing when serving). Python's is a coroutine that only does
    // this; here it is a plain call. RuntimeError once closed.
    void start_serving();
    // Starts serving and waits until cancelled; cancelling it closes the server and waits for
    // it (wait_closed). RuntimeError if the server is closed or serve_forever already runs.
    Coro<void> serve_forever();
    // Stops listening and closes the listening sockets; connections stay open. Idempotent.
    void close();
    // Returns once the server is closed and every connection it accepted is gone (Python 3.12).
    Coro<void> wait_closed();
    // Connections accepted by the server and still open.
    std::size_t active_connections() const noexcept { return active_; }

    // Closes the server when it goes out of scope (Python's `async with server:`).
    class Scope {
    public:
        explicit Scope(std::shared_ptr<Server> server) noexcept : server_(std::move(server)) {}
        Scope(const Scope&) = delete;
        Scope& operator=(const Scope&) = delete;
        ~Scope() {
            if (server_) server_->close();
        }

    private:
        std::shared_ptr<Server> server_;
    };

private:
    friend class detail::Listener;
    friend class detail::SocketTransport;

    void attach() noexcept { ++active_; }
    void detach() noexcept;
    void wakeup() noexcept;
    void loop_closing() noexcept override;
    // After an out-of-fds accept: stop accepting for a while (Python's ACCEPT_RETRY_DELAY).
    void pause_accepting_after_error();

    EventLoop& loop_;
    std::vector<socket::Socket> sockets_;
    std::vector<std::unique_ptr<detail::Listener>> listeners_;
    ProtocolFactory factory_;
    int backlog_;
    std::size_t active_ = 0;
    bool serving_ = false;
    bool closed_ = false;
    std::shared_ptr<Server> self_;  // the loop's reference until close()
    std::vector<Future<void>> waiters_;
    std::optional<Future<void>> serving_forever_;
    detail::Ref<detail::HandleNode> retry_timer_;
};

}  // namespace tulip::asyncio
