#include "tulip/asyncio/server.hpp"

#include "listener.hpp"
#include "loop_resources.hpp"
#include "tulip/asyncio/events.hpp"

namespace tulip::asyncio {

namespace {
// Python's constants.ACCEPT_RETRY_DELAY (seconds).
constexpr double kAcceptRetryDelay = 1.0;
}  // namespace

Server::Server(Passkey, EventLoop& loop, std::vector<socket::Socket> sockets, ProtocolFactory factory, int backlog)
    : loop_(loop), sockets_(std::move(sockets)), factory_(std::move(factory)), backlog_(backlog) {}

std::shared_ptr<Server> Server::make(EventLoop& loop, std::vector<socket::Socket> sockets, ProtocolFactory factory,
                                     int backlog) {
    loop.check_closed();
    auto s = std::make_shared<Server>(Passkey{}, loop, std::move(sockets), std::move(factory), backlog);
    for (auto& sock : s->sockets_) {
        sock.setblocking(false);
        s->listeners_.push_back(std::make_unique<detail::Listener>(loop, *s, sock.fileno()));
    }
    s->self_ = s;
    loop.resources().add(*s);
    return s;
}

Server::~Server() {
    listeners_.clear();
    if (retry_timer_) retry_timer_->cancel();
}

void Server::start_serving() {
    if (closed_) throw RuntimeError("Server is closed");
    if (serving_) return;
    serving_ = true;
    for (auto& sock : sockets_) sock.listen(backlog_);
    for (auto& l : listeners_) l->set_accepting(true);
}

void Server::pause_accepting_after_error() {
    for (auto& l : listeners_) l->set_accepting(false);
    if (retry_timer_) retry_timer_->cancel();
    TimerHandle h = loop_.call_later(kAcceptRetryDelay, [this] {
        retry_timer_.reset();
        if (serving_ && !closed_)
            for (auto& l : listeners_) l->set_accepting(true);
    });
    retry_timer_ = detail::Ref<detail::HandleNode>(h.node());
}

void Server::close() {
    if (closed_) return;
    closed_ = true;
    serving_ = false;
    if (retry_timer_) std::exchange(retry_timer_, {})->cancel();
    for (auto& l : listeners_) l->stop();  // withdraw the watches before the fds close
    sockets_.clear();
    if (serving_forever_ && !serving_forever_->done()) serving_forever_->cancel();
    serving_forever_.reset();
    loop_.resources().remove(*this);
    if (active_ == 0) wakeup();
    auto self = std::move(self_);  // may be the last reference: keep it to the end
}

void Server::detach() noexcept {
    --active_;
    if (active_ == 0 && closed_) wakeup();
}

void Server::wakeup() noexcept {
    for (auto& w : std::exchange(waiters_, {}))
        if (!w.done()) w.set_result();
}

void Server::loop_closing() noexcept {
    closed_ = true;
    serving_ = false;
    if (retry_timer_) std::exchange(retry_timer_, {})->cancel();
    listeners_.clear();
    sockets_.clear();
    serving_forever_.reset();
    waiters_.clear();
    auto self = std::move(self_);
}

Coro<void> Server::wait_closed() {
    if (closed_ && active_ == 0) co_return;
    Future<void> waiter = loop_.create_future<void>();
    waiters_.push_back(waiter);
    co_await waiter;
}

Coro<void> Server::serve_forever() {
    if (serving_forever_) throw RuntimeError("server is already being awaited on serve_forever()");
    if (closed_) throw RuntimeError("server is closed");
    start_serving();
    Future<void> forever = loop_.create_future<void>();
    serving_forever_ = forever;
    bool cancelled = false;
    try {
        co_await forever;
    } catch (const CancelledError&) {
        cancelled = true;
    }
    serving_forever_.reset();
    if (cancelled) {
        close();
        co_await wait_closed();
        throw CancelledError();
    }
}

}  // namespace tulip::asyncio
