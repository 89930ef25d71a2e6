#include "listener.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <unistd.h>

#include <cerrno>
#include <utility>

#include "socket_transport.hpp"
#include "transport_errors.hpp"
#include "tulip/asyncio/events.hpp"
#include "tulip/asyncio/server.hpp"

namespace tulip::asyncio::detail {

Listener::Listener(EventLoop& loop, Server& server, int fd) : loop_(loop), server_(server), fd_(fd) {
    if (loop.backend().native_socket_ops()) ops_ = AcceptOps::create(loop, fd, *this);
    else watch_ = FdWatch::create(loop, fd, *this);
}

Listener::~Listener() { stop(); }

void Listener::stop() noexcept {
    if (watch_) std::exchange(watch_, nullptr)->release();
    if (ops_) std::exchange(ops_, nullptr)->release();
}

void Listener::on_accepted(int fd_or_error) {
    std::shared_ptr<Server> keep = server_.self_;
    if (fd_or_error >= 0) {
        if (keep) start_connection(fd_or_error);
        else ::close(fd_or_error);
        return;
    }
    // The multishot accept ended with the error; accept_failed pauses for resource errors,
    // otherwise accepting goes on at once (readiness backends simply see the fd ready again).
    if (keep && accept_failed(-fd_or_error) && ops_) {
        try {
            ops_->want_accept(true);
        } catch (...) {
            loop_.call_exception_handler({"Error on accept()", std::current_exception(), {}, {}});
        }
    }
}

bool Listener::accept_failed(int err) {
    if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED) return true;
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        loop_.call_exception_handler({"socket.accept() out of system resource", make_os_error(err, "accept"), {}, {}});
        server_.pause_accepting_after_error();
        return false;
    }
    loop_.call_exception_handler({"Error on accept()", make_os_error(err, "accept"), {}, {}});
    return true;
}

void Listener::on_fd_events(std::uint32_t) { accept_some(); }

void Listener::accept_some() {
    // A protocol factory may close the server and drop the last reference to it.
    std::shared_ptr<Server> keep = server_.self_;
    if (!keep || !watch_) return;
    for (int i = 0; i < server_.backlog_; ++i) {
        int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            accept_failed(errno);
            return;  // EAGAIN: drained; otherwise reported (and paused if out of resources)
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
