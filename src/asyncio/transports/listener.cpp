#include "listener.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <utility>

#include "socket_transport.hpp"
#include "tulip/asyncio/events.hpp"
#include "tulip/asyncio/server.hpp"

namespace tulip::asyncio::detail {

namespace {

std::exception_ptr os_error(int err, const std::string& what) {
    try {
        raise_os_error(err, what);
    } catch (...) {
        return std::current_exception();
    }
}

}  // namespace

Listener::Listener(EventLoop& loop, Server& server, int fd)
    : loop_(loop), server_(server), fd_(fd), watch_(FdWatch::create(loop, fd, *this)) {}

Listener::~Listener() { stop(); }

void Listener::stop() noexcept {
    if (watch_) std::exchange(watch_, nullptr)->release();
}

void Listener::on_fd_events(std::uint32_t) { accept_some(); }

void Listener::accept_some() {
    // A protocol factory may close the server and drop the last reference to it.
    std::shared_ptr<Server> keep = server_.self_;
    if (!keep || !watch_) return;
    for (int i = 0; i < server_.backlog_; ++i) {
        int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED) return;
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
                loop_.call_exception_handler(
                    {"socket.accept() out of system resource", os_error(err, "accept"), {}, {}});
                server_.pause_accepting_after_error();
                return;
            }
            loop_.call_exception_handler({"Error on accept()", os_error(err, "accept"), {}, {}});
            return;
        }
        start_connection(fd);
        if (!server_.is_serving() || !watch_) return;  // a protocol factory closed the server
    }
}

void Listener::start_connection(int fd) {
    try {
        socket::Socket conn(socket::Socket::Fileno{fd});
        auto protocol = server_.factory_();
        SocketTransport::create(loop_, std::move(conn), std::move(protocol), std::nullopt, server_.self_);
    } catch (...) {
        // The fd is closed by the Socket (or was never adopted if Fileno failed).
        loop_.call_exception_handler(
            {"Error on transport creation for incoming connection", std::current_exception(), {}, {}});
    }
}

}  // namespace tulip::asyncio::detail
