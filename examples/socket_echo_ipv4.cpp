// Echo server and client over IPv4 (Python's socket documentation, "Example": the first pair of
// programs).
//
// Python runs the server and the client as two programs on a fixed port (50007). To run as a
// self-contained test, this one runs the server in a thread on a port the kernel picks, and the
// client in main() against it. The client half-closes after sending, so that it can read the
// echo up to the end of the stream instead of trusting a single recv() to return all of it.
#include <tulip/socket.hpp>

#include <cstdio>
#include <exception>
#include <string>
#include <thread>

namespace {
namespace socket = tulip::socket;
}  // namespace

// Echo server program: one connection, echoed until the client stops sending.
void serve(socket::Socket s) {
    auto [conn, addr] = s.accept();
    std::printf("Connected by %s\n", addr.to_string().c_str());
    for (;;) {
        std::string data = conn.recv(1024);
        if (data.empty()) break;
        conn.sendall(data);
    }
}

int main() {
    try {
        const char* HOST = "";  // Symbolic name meaning all available interfaces
        socket::Socket s(AF_INET, SOCK_STREAM);
        s.bind(HOST, 0);  // Python's example uses port 50007; 0 lets the kernel pick a free one
        s.listen(1);
        std::uint16_t PORT = s.getsockname().port();
        s.settimeout(30.0);  // a client that never comes ends the server, not the test's patience
        std::exception_ptr server_error;
        std::jthread server([&server_error, listener = std::move(s)]() mutable {
            try {
                serve(std::move(listener));
            } catch (...) {
                server_error = std::current_exception();
            }
        });

        // Echo client program
        std::string received;
        {
            socket::Socket c(AF_INET, SOCK_STREAM);
            c.connect("localhost", PORT);  // The remote host
            c.sendall("Hello, world");
            c.shutdown(SHUT_WR);
            for (std::string chunk; !(chunk = c.recv(1024)).empty();) received += chunk;
        }
        server.join();  // a jthread: joined on the way out of an exception too
        if (server_error) std::rethrow_exception(server_error);
        std::printf("Received '%s'\n", received.c_str());
    } catch (const std::exception& e) {
        std::printf("error: %s\n", e.what());
        return 1;
    }
}
