#include "io_watchers.hpp"

#include "tulip/asyncio/events.hpp"

namespace tulip::asyncio::detail {

void IoWatchers::watch(int fd, bool write, HandleNode* node) {
    Ref<HandleNode> handle(node);
    if (fd < 0) throw OSError(EBADF, "add_" + std::string(write ? "writer" : "reader") + ": invalid fd " + std::to_string(fd));
    Table& table = write ? writers_ : readers_;
    auto it = table.find(fd);
    if (it != table.end()) {
        // Python cancels the old handle and keeps the registration.
        it->second->handle->cancel();
        it->second->handle = std::move(handle);
        return;
    }
    auto w = std::make_unique<Watch>();
    w->kind = OpKind::poll;
    w->fd = fd;
    w->poll_events = write ? kPollOut : kPollIn;
    w->complete = &IoWatchers::on_ready;
    w->handle = std::move(handle);
    w->loop = &loop_;
    backend_.submit(*w);
    table.emplace(fd, std::move(w));
}

bool IoWatchers::unwatch(int fd, bool write) {
    Table& table = write ? writers_ : readers_;
    auto it = table.find(fd);
    if (it == table.end()) return false;
    stop(*it->second);
    table.erase(it);
    return true;
}

void IoWatchers::clear() noexcept {
    for (auto& [fd, w] : readers_) stop(*w);
    for (auto& [fd, w] : writers_) stop(*w);
    readers_.clear();
    writers_.clear();
}

void IoWatchers::stop(Watch& w) noexcept {
    w.handle->cancel();  // a copy already on the ready queue must not run
    // Readiness backends release a poll at once; completion backends will confirm with a final
    // completion, which on_ready ignores because the handle is cancelled. The Watch must then
    // outlive that completion: the io_uring backend (issue 6) keeps such ops until confirmed.
    backend_.cancel(w);
}

void IoWatchers::on_ready(Operation& op, int /*events*/) noexcept {
    auto& w = static_cast<Watch&>(op);
    if (!w.handle->cancelled()) w.loop->schedule_handle(*w.handle);
}

}  // namespace tulip::asyncio::detail
