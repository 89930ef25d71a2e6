// Get HTTP headers (Python's asyncio "Streams" example 18.5.5.7.3): connect to a URL's host and
// port with open_connection, send "HEAD <path> HTTP/1.0", and print the response's header lines
// up to the empty line that ends them.
//
//     get_http_headers http://example.com/     the example itself (plain http only)
//     get_http_headers                         self-contained: serves one HEAD on loopback in the
//                                              same loop and fetches its headers
//     get_http_headers --serve-once            serves one request on a free loopback port, after
//                                              printing "serving on http://127.0.0.1:PORT/"
//                                              (for comparing with another client, such as curl)
#include <tulip/asyncio.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace asyncio = tulip::asyncio;

struct Url {
    std::string host;
    int port = 80;
    std::string path = "/";
};

// urllib.parse.urlsplit, for what this example needs: http://host[:port][/path].
Url parse_url(std::string_view url) {
    constexpr std::string_view scheme = "http://";
    if (url.substr(0, scheme.size()) != scheme)
        throw tulip::ValueError("only http:// URLs are supported, got '" + std::string(url) + "'");
    url.remove_prefix(scheme.size());
    Url u;
    std::size_t slash = url.find('/');
    std::string_view authority = url.substr(0, slash);
    if (slash != std::string_view::npos) u.path = std::string(url.substr(slash));
    std::size_t colon = authority.rfind(':');
    if (colon != std::string_view::npos && authority.find(']', colon) == std::string_view::npos) {
        u.port = std::atoi(std::string(authority.substr(colon + 1)).c_str());
        authority = authority.substr(0, colon);
    }
    if (authority.size() >= 2 && authority.front() == '[') authority = authority.substr(1, authority.size() - 2);
    u.host = std::string(authority);
    if (u.host.empty() || u.port <= 0 || u.port > 65535)
        throw tulip::ValueError("bad URL: '" + std::string(url) + "'");
    return u;
}

asyncio::Coro<> print_http_headers(std::string url_text) {
    Url url = parse_url(url_text);
    auto [reader, writer] = co_await asyncio::open_connection(url.host, url.port);
    std::string query = "HEAD " + url.path + " HTTP/1.0\r\nHost: " + url.host + "\r\n\r\n";
    writer.write(query);
    for (;;) {
        std::string line = co_await reader.readline();
        if (line.empty()) break;  // EOF
        while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
        if (line.empty()) break;  // the end of the headers
        std::printf("HTTP header> %s\n", line.c_str());
    }
    // Ignore the body, close the socket.
    writer.close();
    co_await writer.wait_closed();
}

// --- the loopback server of the self-contained modes -------------------------------------------

// Reads one request up to its empty line and answers with headers only.
asyncio::Coro<> serve_head(asyncio::StreamReader reader, asyncio::StreamWriter writer) {
    for (;;) {
        std::string line = co_await reader.readline();
        if (line.empty() || line == "\r\n" || line == "\n") break;
    }
    writer.write(
        "HTTP/1.0 200 OK\r\n"
        "Server: tulip-example\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 13\r\n"
        "\r\n");
    co_await writer.drain();
    writer.close();
    co_await writer.wait_closed();
}

int port_of(const asyncio::Server& server) { return server.sockets().at(0).getsockname().port(); }

asyncio::Coro<> self_contained() {
    auto server = co_await asyncio::start_server(serve_head, "127.0.0.1", 0);
    co_await print_http_headers("http://127.0.0.1:" + std::to_string(port_of(*server)) + "/");
    server->close();
    co_await server->wait_closed();
}

// A coroutine with parameters rather than a capturing coroutine lambda: its frame owns them.
asyncio::Coro<> serve_and_signal(asyncio::Future<void> served, asyncio::StreamReader reader,
                                 asyncio::StreamWriter writer) {
    co_await serve_head(std::move(reader), std::move(writer));
    if (!served.done()) served.set_result();
}

asyncio::Coro<> serve_once() {
    auto served = asyncio::get_running_loop().create_future<void>();
    asyncio::ClientConnectedCallback handler = [served](asyncio::StreamReader reader, asyncio::StreamWriter writer) {
        return serve_and_signal(served, std::move(reader), std::move(writer));
    };
    auto server = co_await asyncio::start_server(handler, "127.0.0.1", 0);
    std::printf("serving on http://127.0.0.1:%d/\n", port_of(*server));
    std::fflush(stdout);
    co_await served;
    server->close();
    co_await server->wait_closed();
}

int main(int argc, char** argv) {
    try {
        std::string arg = argc > 1 ? argv[1] : "";
        if (arg == "--serve-once") asyncio::run(serve_once());
        else if (!arg.empty()) asyncio::run(print_http_headers(arg));
        else asyncio::run(self_contained());
    } catch (const std::exception& e) {
        std::printf("error: %s\n", e.what());
        return 1;
    }
}
