// What the loop holds for its transports and servers: the list of open ones (closed with the
// loop) and the one read buffer that every stream transport of the loop reads into.
#pragma once

#include <cstddef>
#include <memory>
#include <span>

#include "tulip/asyncio/detail/loop_resource.hpp"

namespace tulip::asyncio::detail {

class LoopResources {
public:
    // 256 KiB: a whole socket receive queue in one recv on a fast link, and data_received gets
    // large chunks; allocated on first use, shared by every connection of the loop.
    static constexpr std::size_t kReadBufferSize = 256 * 1024;

    LoopResources() = default;
    LoopResources(const LoopResources&) = delete;
    LoopResources& operator=(const LoopResources&) = delete;
    ~LoopResources() { close_all(); }

    void add(LoopResource& r) noexcept;
    void remove(LoopResource& r) noexcept;
    std::size_t size() const noexcept { return count_; }
    // loop_closing() on each, newest first.
    void close_all() noexcept;

    // Valid only until the next call from any transport: read into it and hand the view to the
    // protocol at once.
    std::span<std::byte> read_buffer() {
        if (!read_buffer_) read_buffer_ = std::make_unique<std::byte[]>(kReadBufferSize);
        return {read_buffer_.get(), kReadBufferSize};
    }

private:
    LoopResource* head_ = nullptr;
    std::size_t count_ = 0;
    std::unique_ptr<std::byte[]> read_buffer_;
};

}  // namespace tulip::asyncio::detail
