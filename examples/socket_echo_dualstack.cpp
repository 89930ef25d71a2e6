// Echo server and client for IPv4 and IPv6 (Python's socket documentation, "Example": the second
// pair of programs, with Python 3.8's create_server() for the dual-stack server).
//
// The server listens on one AF_INET6 socket that also accepts IPv4 (dualstack_ipv6) where the
// platform allows it, and otherwise on the first address getaddrinfo(None, port, AF_UNSPEC,
// SOCK_STREAM, 0, AI_PASSIVE) gives that can be bound, as Python's IPv6 example server does. The
// client is Python's: it tries every address getaddrinfo() gives for the host until one connects.
// It runs twice, for 127.0.0.1 and for ::1. As in the IPv4 example, the server runs in a thread
// on a port the kernel picks.
#include <tulip/socket.hpp>

#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <thread>

namespace {
namespace socket = tulip::socket;

std::optional<socket::Socket> open_server() {
    if (socket::has_dualstack_ipv6()) {
        try {
            return socket::create_server("", 0, {.family = AF_INET6, .backlog = 1, .dualstack_ipv6 = true});
        } catch (const tulip::OSError&) {
            // IPv6 is compiled in but not configured: fall back on the getaddrinfo() loop.
        }
    }
    for (const auto& res : socket::getaddrinfo(std::nullopt, 0, AF_UNSPEC, SOCK_STREAM, 0, AI_PASSIVE)) {
        std::optional<socket::Socket> s;
        try {
            s.emplace(res.family, res.type, res.proto);
            s->bind(res.address);
            s->listen(1);
        } catch (const tulip::OSError&) {
            continue;  // s closes itself
        }
        return s;
    }
    return std::nullopt;
}

// Python's client: the first address of `host` that accepts a connection.
std::optional<socket::Socket> open_client(const char* host, std::uint16_t port) {
    for (const auto& res : socket::getaddrinfo(host, port, AF_UNSPEC, SOCK_STREAM)) {
        std::optional<socket::Socket> s;
        try {
            s.emplace(res.family, res.type, res.proto);
            s->connect(res.address);
        } catch (const tulip::OSError&) {
            continue;
        }
        return s;
    }
    return std::nullopt;
}

}  // namespace

int main() {
    try {
        auto s = open_server();
        if (!s) {
            std::printf("could not open socket\n");
            return 1;
        }
        auto local = s->getsockname();
        bool dual = local.family() == AF_INET6 && s->getsockopt(IPPROTO_IPV6, IPV6_V6ONLY) == 0;
        std::printf("Listening on %s%s\n", local.to_string().c_str(), dual ? " (dual-stack)" : "");
        bool serves_v4 = local.family() == AF_INET || dual;
        bool serves_v6 = local.family() == AF_INET6;
        const char* hosts[] = {"127.0.0.1", "::1"};

        // If a client cannot connect, the server's accept() gives up after a while rather than
        // keep the program (and the thread join below) waiting forever.
        s->settimeout(30.0);
        std::exception_ptr server_error;
        std::jthread server([&, listener = std::move(*s), connections = int(serves_v4) + int(serves_v6)]() mutable {
            try {
                for (int i = 0; i < connections; ++i) {
                    auto [conn, addr] = listener.accept();
                    std::printf("Connected by %s\n", addr.to_string().c_str());
                    for (std::string data; !(data = conn.recv(1024)).empty();) conn.sendall(data);
                }
            } catch (...) {
                server_error = std::current_exception();
            }
        });

        int failures = 0;
        for (const char* host : hosts) {
            bool v6 = std::string(host) == "::1";
            if (!(v6 ? serves_v6 : serves_v4)) {
                std::printf("%s: skipped, the server does not listen on that family here\n", host);
                continue;
            }
            auto c = open_client(host, local.port());
            if (!c) {
                std::printf("could not open socket to %s\n", host);
                ++failures;
                continue;
            }
            auto peer = c->getpeername();  // before the exchange: a closed connection has no peer
            c->sendall("Hello, world");
            c->shutdown(SHUT_WR);
            std::string received;
            for (std::string chunk; !(chunk = c->recv(1024)).empty();) received += chunk;
            std::printf("Received '%s' from %s\n", received.c_str(), peer.to_string().c_str());
        }
        server.join();  // a jthread: joined on the way out of an exception too
        if (server_error) std::rethrow_exception(server_error);
        return failures == 0 ? 0 : 1;
    } catch (const std::exception& e) {
        std::printf("error: %s\n", e.what());
        return 1;
    }
}
