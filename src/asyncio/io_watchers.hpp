// add_reader/add_writer: a multishot poll operation per (fd, direction) whose completion puts the
// user's handle on the ready queue.
#pragma once

#include <cstddef>
#include <memory>
#include <unordered_map>

#include "../backend/backend.hpp"
#include "tulip/asyncio/detail/handle_node.hpp"
#include "tulip/asyncio/detail/ref.hpp"

namespace tulip::asyncio {
class EventLoop;
}

namespace tulip::asyncio::detail {

class IoWatchers {
public:
    IoWatchers(EventLoop& loop, Backend& backend) : loop_(loop), backend_(backend) {}
    IoWatchers(const IoWatchers&) = delete;
    IoWatchers& operator=(const IoWatchers&) = delete;
    ~IoWatchers() { clear(); }

    // Watches fd for reading or writing with the handle `node` (a new node the caller gives
    // away), replacing an earlier watch of the same direction.
    void watch(int fd, bool write, HandleNode* node);
    bool unwatch(int fd, bool write);
    std::size_t size() const noexcept { return readers_.size() + writers_.size(); }
    // Stops every watch (loop close).
    void clear() noexcept;

private:
    struct Watch : Operation {
        Ref<HandleNode> handle;
        EventLoop* loop;
    };
    using Table = std::unordered_map<int, std::unique_ptr<Watch>>;

    static void on_ready(Operation& op, int events) noexcept;
    void stop(Watch& w) noexcept;

    EventLoop& loop_;
    Backend& backend_;
    Table readers_;
    Table writers_;
};

}  // namespace tulip::asyncio::detail
