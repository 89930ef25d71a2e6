// The selectors chapter's example (Python 3, 18.4.3): an echo server on DefaultSelector, with
// tulip::socket for the sockets. A client thread sends one message so that the program runs by
// itself; the server stops when that client has gone.
#include <tulip/selectors.hpp>
#include <tulip/socket.hpp>

#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <thread>

namespace {

namespace selectors = tulip::selectors;
namespace socket = tulip::socket;
using Callback = std::function<void(int fd, int mask)>;

void client(socket::Address server) {
    socket::Socket sock = socket::create_connection(server.host(), server.port());
    sock.sendall("hello");
    std::string echo;
    while (echo.size() < 5) {
        std::string chunk = sock.recv(100);
        if (chunk.empty()) break;
        echo += chunk;
    }
    std::printf("client received '%s'\n", echo.c_str());
}

}  // namespace

int main() {
    selectors::DefaultSelector sel;
    std::map<int, socket::Socket> connections;  // the selector holds fds; the sockets live here
    bool serving = true;

    Callback read = [&](int fd, int) {
        socket::Socket& conn = connections.at(fd);
        std::string data = conn.recv(1000);  // Should be ready
        if (!data.empty()) {
            std::printf("echoing '%s' to fd %d\n", data.c_str(), fd);
            conn.send(data);  // Hope it won't block
        } else {
            std::printf("closing fd %d\n", fd);
            sel.unregister(fd);
            connections.erase(fd);  // closes it
            serving = false;        // the example's only client has gone
        }
    };

    // sock = socket.socket(); sock.bind(('localhost', 0)); sock.listen(100); sock.setblocking(False)
    socket::Socket sock(AF_INET, SOCK_STREAM);
    sock.bind("localhost", 0);
    sock.listen(100);
    sock.setblocking(false);

    Callback accept = [&](int, int) {
        auto [conn, addr] = sock.accept();  // Should be ready
        conn.setblocking(false);
        int fd = conn.fileno();
        std::printf("accepted fd %d from %s\n", fd, addr.to_string().c_str());
        connections.emplace(fd, std::move(conn));
        sel.register_(fd, selectors::EVENT_READ, read);
    };

    socket::Address where = sock.getsockname();
    std::printf("listening on %s\n", where.to_string().c_str());
    std::fflush(stdout);
    sel.register_(sock.fileno(), selectors::EVENT_READ, accept);

    std::thread client_thread(client, where);
    while (serving) {
        auto events = sel.select();
        for (auto& [key, mask] : events) {
            const auto& callback = std::any_cast<const Callback&>(key.data);
            callback(key.fileobj, mask);
        }
    }
    client_thread.join();
    sel.unregister(sock.fileno());
    sel.close();
}
