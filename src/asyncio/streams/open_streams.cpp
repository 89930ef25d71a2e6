// open_connection, start_server and their Unix forms (Python's streams module functions): a
// StreamReaderProtocol on the loop's create_connection / create_server.
#include <utility>

#include "tulip/asyncio/streams.hpp"

namespace tulip::asyncio {

namespace {

// The factory a server calls once per accepted connection: a fresh reader and protocol each.
EventLoop::ProtocolFactory server_factory(ClientConnectedCallback cb, std::size_t limit) {
    if (!cb) throw ValueError("start_server needs a client_connected_cb");
    // A bad limit fails now, not at the first connection.
    if (limit == 0) throw ValueError("Limit cannot be <= 0");
    return [cb = std::move(cb), limit]() -> std::shared_ptr<BaseProtocol> {
        return std::make_shared<StreamReaderProtocol>(StreamReader(limit), cb);
    };
}

std::pair<StreamReader, StreamWriter> stream_pair(StreamReader reader, std::shared_ptr<Transport> transport,
                                                  std::shared_ptr<StreamReaderProtocol> protocol) {
    StreamWriter writer(std::move(transport), std::move(protocol), reader);
    return {std::move(reader), std::move(writer)};
}

}  // namespace

Coro<std::pair<StreamReader, StreamWriter>> open_connection(std::optional<std::string> host, int port,
                                                            std::size_t limit, ConnectionOptions options) {
    EventLoop& loop = get_running_loop();
    StreamReader reader(limit);
    auto protocol = std::make_shared<StreamReaderProtocol>(reader);
    // Named before the co_await: g++ 12 destroys a capturing lambda temporary written inside a
    // co_await expression twice, which here would drop one reference to the protocol too many.
    auto factory = [protocol] { return protocol; };
    auto [transport, _] = co_await loop.create_connection(std::move(factory), std::move(host), port, std::move(options));
    co_return stream_pair(std::move(reader), std::move(transport), std::move(protocol));
}

Coro<std::shared_ptr<Server>> start_server(ClientConnectedCallback client_connected_cb,
                                           std::optional<std::string> host, int port, std::size_t limit,
                                           ServerOptions options) {
    EventLoop& loop = get_running_loop();
    EventLoop::ProtocolFactory factory = server_factory(std::move(client_connected_cb), limit);
    co_return co_await loop.create_server(std::move(factory), std::move(host), port, std::move(options));
}

Coro<std::pair<StreamReader, StreamWriter>> open_unix_connection(std::string path, std::size_t limit,
                                                                 ConnectionOptions options) {
    EventLoop& loop = get_running_loop();
    StreamReader reader(limit);
    auto protocol = std::make_shared<StreamReaderProtocol>(reader);
    auto factory = [protocol] { return protocol; };  // named: see open_connection
    auto [transport, _] = co_await loop.create_unix_connection(std::move(factory), std::move(path), std::move(options));
    co_return stream_pair(std::move(reader), std::move(transport), std::move(protocol));
}

Coro<std::shared_ptr<Server>> start_unix_server(ClientConnectedCallback client_connected_cb, std::string path,
                                                std::size_t limit, ServerOptions options) {
    EventLoop& loop = get_running_loop();
    EventLoop::ProtocolFactory factory = server_factory(std::move(client_connected_cb), limit);
    co_return co_await loop.create_unix_server(std::move(factory), std::move(path), std::move(options));
}

}  // namespace tulip::asyncio
