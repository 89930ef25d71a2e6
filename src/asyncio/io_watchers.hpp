// add_reader/add_writer: a multishot poll operation per (fd, direction) whose completion puts the
// user's handle on the ready queue.
#pragma once

#include <cstddef>
#include <memory>
#include <unordered_map>
#include <vector>

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
    // Watches stopped but still held by a completion backend until its final completion.
    std::size_t retiring() const noexcept { return retiring_.size(); }
    // Stops every watch (loop close).
    void clear() noexcept;

private:
    struct Watch : Operation {
        Ref<HandleNode> handle;
        IoWatchers* owner;
    };
    using Table = std::unordered_map<int, std::unique_ptr<Watch>>;

    static void on_ready(Operation& op, int events) noexcept;
    // Stops the watch at `it` and erases it from `table`.
    void stop(Table& table, Table::iterator it) noexcept;

    EventLoop& loop_;
    Backend& backend_;
    Table readers_;
    Table writers_;
    std::unordered_map<Watch*, std::unique_ptr<Watch>> retiring_;
};

}  // namespace tulip::asyncio::detail
