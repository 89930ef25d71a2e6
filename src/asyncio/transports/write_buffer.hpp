// A stream transport's write buffer: what the kernel did not take yet, as a list of chunks that
// go out in one vectored send. Small writes are appended to the last chunk (up to kCoalesce
// bytes) so that a burst of tiny writes stays a few chunks; a large write is one chunk of its own.
// Its size is bounded only by the user's water marks (pause_writing), as in Python.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <span>
#include <string>
#include <vector>

namespace tulip::asyncio::detail {

class WriteBuffer {
public:
    static constexpr std::size_t kCoalesce = 16 * 1024;

    bool empty() const noexcept { return size_ == 0; }
    std::size_t size() const noexcept { return size_; }

    void append(std::span<const std::byte> data);
    // Fills up to `max` iovecs with the oldest bytes; returns how many it filled.
    int gather(iovec* iov, int max) const noexcept;
    // Drops the first n bytes (n <= size()).
    void consume(std::size_t n) noexcept;
    // Drops everything and gives the memory back (an idle connection keeps nothing).
    void clear() noexcept;

private:
    std::vector<std::string> chunks_;
    std::size_t head_ = 0;    // first chunk still holding data
    std::size_t offset_ = 0;  // bytes of chunks_[head_] already sent
    std::size_t size_ = 0;
};

}  // namespace tulip::asyncio::detail
