#include "io_watchers.hpp"

#include "tulip/asyncio/events.hpp"

namespace tulip::asyncio::detail {

void IoWatchers::watch(int fd, bool write, HandleNode* node) {
    Ref<HandleNode> handle(node);
    if (fd < 0)
        throw OSError(EBADF, std::string(write ? "add_writer" : "add_reader") + ": invalid fd " + std::to_string(fd));
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
    w->owner = this;
    backend_.submit(*w);
    table.emplace(fd, std::move(w));
}

bool IoWatchers::unwatch(int fd, bool write) {
    Table& table = write ? writers_ : readers_;
    auto it = table.find(fd);
    if (it == table.end()) return false;
    stop(table, it);
    return true;
}

void IoWatchers::clear() noexcept {
    while (!readers_.empty()) stop(readers_, readers_.begin());
    while (!writers_.empty()) stop(writers_, writers_.begin());
}

void IoWatchers::stop(Table& table, Table::iterator it) noexcept {
    std::unique_ptr<Watch> w = std::move(it->second);
    table.erase(it);
    w->handle->cancel();  // a copy already on the ready queue must not run
    // Readiness backends release a poll at once. A completion backend confirms the cancellation
    // with a final completion later, and the Watch must outlive it.
    if (!backend_.cancel(*w)) {
        Watch* raw = w.get();
        retiring_.emplace(raw, std::move(w));
    }
}

void IoWatchers::on_ready(Operation& op, int events) noexcept {
    auto& w = static_cast<Watch&>(op);
    if (events < 0) {  // the final completion of a cancelled watch
        w.owner->retiring_.erase(&w);
        return;
    }
    if (!w.handle->cancelled()) w.owner->loop_.schedule_handle(*w.handle);
}

}  // namespace tulip::asyncio::detail
