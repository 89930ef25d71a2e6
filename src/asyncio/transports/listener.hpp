// One listening socket of a Server: an fd watch for reading and the accept loop behind it, or, on
// a completion backend, a multishot accept (AcceptOps).
#pragma once

#include "accept_ops.hpp"
#include "fd_watch.hpp"

namespace tulip::asyncio {
class EventLoop;
class Server;
}  // namespace tulip::asyncio

namespace tulip::asyncio::detail {

class Listener final : private FdWatchOwner, private AcceptOpsOwner {
public:
    Listener(EventLoop& loop, Server& server, int fd);
    ~Listener();
    Listener(const Listener&) = delete;
    Listener& operator=(const Listener&) = delete;

    void set_accepting(bool on) {
        if (watch_) watch_->want_read(on);
        if (ops_) ops_->want_accept(on);
    }
    // Withdraws the watch for good (before the listening socket closes). The listener itself
    // stays until the server goes: it may be inside its own accept loop right now.
    void stop() noexcept;

private:
    void on_fd_events(std::uint32_t events) override;
    void on_accepted(int fd_or_error) override;
    // An accept failed: report it; out of fds or memory, pause accepting for a while.
    // Returns false when accepting should stop for now.
    bool accept_failed(int err);
    // Accepts up to the backlog's worth of connections (Python's _accept_connection).
    void accept_some();
    void start_connection(int fd);

    EventLoop& loop_;
    Server& server_;
    int fd_;
    FdWatch* watch_ = nullptr;   // readiness backends
    AcceptOps* ops_ = nullptr;   // completion backends
};

}  // namespace tulip::asyncio::detail
