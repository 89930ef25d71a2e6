// One listening socket of a Server: an fd watch for reading and the accept loop behind it.
#pragma once

#include "fd_watch.hpp"

namespace tulip::asyncio {
class EventLoop;
class Server;
}  // namespace tulip::asyncio

namespace tulip::asyncio::detail {

class Listener final : private FdWatchOwner {
public:
    Listener(EventLoop& loop, Server& server, int fd);
    ~Listener();
    Listener(const Listener&) = delete;
    Listener& operator=(const Listener&) = delete;

    void set_accepting(bool on) { watch_->want_read(on); }

private:
    void on_fd_events(std::uint32_t events) override;
    // Accepts up to the backlog's worth of connections (Python's _accept_connection).
    void accept_some();
    void start_connection(int fd);

    EventLoop& loop_;
    Server& server_;
    int fd_;
    FdWatch* watch_;
};

}  // namespace tulip::asyncio::detail
