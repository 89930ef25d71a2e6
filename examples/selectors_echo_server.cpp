// The selectors chapter's example (Python 3, 18.4.3): an echo server on DefaultSelector.
//
// tulip::socket is not used yet: the raw POSIX calls in the helpers below stand in for Python's
// socket objects. A client thread sends one message so that the program runs by itself; the
// server stops when that client has gone.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <tulip/exceptions.hpp>
#include <tulip/selectors.hpp>

#include <cstdio>
#include <functional>
#include <string_view>
#include <thread>

namespace selectors = tulip::selectors;
using Callback = std::function<void(int fd, int mask)>;

namespace {

int check(int rc, const char* what) {
    if (rc < 0) tulip::raise_last_os_error(what);
    return rc;
}

sockaddr_in localhost(in_port_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return addr;
}

// sock = socket.socket(); sock.bind(('localhost', 0)); sock.listen(100); sock.setblocking(False)
int listening_socket(in_port_t& port) {
    int sock = check(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), "socket");
    sockaddr_in addr = localhost(0);
    socklen_t len = sizeof addr;
    check(::bind(sock, reinterpret_cast<sockaddr*>(&addr), len), "bind");
    check(::listen(sock, 100), "listen");
    check(::getsockname(sock, reinterpret_cast<sockaddr*>(&addr), &len), "getsockname");
    port = ntohs(addr.sin_port);
    return sock;
}

void client(in_port_t port) {
    int sock = check(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket");
    sockaddr_in addr = localhost(port);
    check(::connect(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr), "connect");
    std::string_view message = "hello";
    check(static_cast<int>(::send(sock, message.data(), message.size(), MSG_NOSIGNAL)), "send");
    char echo[100];
    std::size_t got = 0;
    while (got < message.size()) {
        int n = check(static_cast<int>(::recv(sock, echo + got, sizeof echo - got, 0)), "recv");
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
    }
    std::printf("client received '%.*s'\n", static_cast<int>(got), echo);
    ::close(sock);
}

}  // namespace

int main() {
    selectors::DefaultSelector sel;
    bool serving = true;

    Callback read = [&](int conn, int) {
        char data[1000];
        ssize_t n = ::recv(conn, data, sizeof data, 0);  // Should be ready
        if (n > 0) {
            std::printf("echoing '%.*s' to fd %d\n", static_cast<int>(n), data, conn);
            ::send(conn, data, static_cast<std::size_t>(n), MSG_NOSIGNAL);  // Hope it won't block
        } else {
            std::printf("closing fd %d\n", conn);
            sel.unregister(conn);
            ::close(conn);
            serving = false;  // the example's only client has gone
        }
    };

    Callback accept = [&](int sock, int) {
        sockaddr_in addr{};
        socklen_t len = sizeof addr;
        int conn = check(::accept4(sock, reinterpret_cast<sockaddr*>(&addr), &len, SOCK_NONBLOCK | SOCK_CLOEXEC),
                         "accept");  // Should be ready
        char host[INET_ADDRSTRLEN];
        ::inet_ntop(AF_INET, &addr.sin_addr, host, sizeof host);
        std::printf("accepted fd %d from %s:%u\n", conn, host, ntohs(addr.sin_port));
        sel.register_(conn, selectors::EVENT_READ, read);
    };

    in_port_t port = 0;
    int sock = listening_socket(port);
    std::printf("listening on 127.0.0.1:%u\n", port);
    std::fflush(stdout);
    sel.register_(sock, selectors::EVENT_READ, accept);

    std::thread client_thread(client, port);
    while (serving) {
        auto events = sel.select();
        for (auto& [key, mask] : events) {
            const auto& callback = std::any_cast<const Callback&>(key.data);
            callback(key.fileobj, mask);
        }
    }
    client_thread.join();
    sel.unregister(sock);
    ::close(sock);
    sel.close();
}
