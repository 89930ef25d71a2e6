// A stream transport's write buffer: what the kernel did not take yet, as a list of chunks that
// go out in one vectored send. Small writes are appended to the last chunk (up to kCoalesce
// bytes) so that a burst of tiny writes stays a few chunks; a large write is one chunk of its own.
// Its size is bounded only by the user's water marks (pause_writing), as in Python.
//
// Chunks and the chunk list come from the per-thread block cache, so a connection that writes a
// small message and sees it go out allocates nothing in steady state, and an idle one keeps no
// memory. A chunk's bytes stay where they are until it is consumed, cleared or the buffer is
// compacted, which is what lets a completion backend send straight from them.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "tulip/asyncio/detail/block_cache.hpp"

namespace tulip::asyncio::detail {

class WriteBuffer {
public:
    static constexpr std::size_t kCoalesce = 16 * 1024;

    bool empty() const noexcept { return size_ == 0; }
    std::size_t size() const noexcept { return size_; }

    void append(std::span<const std::byte> data);
    // Moves every chunk of `from` here, without copying bytes; `from` is left empty. This buffer
    // must be empty.
    void take(WriteBuffer& from) noexcept;
    // Fills up to `max` iovecs with the oldest bytes; returns how many it filled.
    int gather(iovec* iov, int max) const noexcept;
    // Drops the first n bytes (n <= size()).
    void consume(std::size_t n) noexcept;
    // Drops everything and gives the memory back (an idle connection keeps nothing).
    void clear() noexcept;

private:
    template <class T>
    struct CacheAllocator {
        using value_type = T;
        CacheAllocator() noexcept = default;
        template <class U>
        CacheAllocator(const CacheAllocator<U>&) noexcept {}
        T* allocate(std::size_t n) { return static_cast<T*>(block_cache::allocate(n * sizeof(T))); }
        void deallocate(T* p, std::size_t n) noexcept { block_cache::deallocate(p, n * sizeof(T)); }
        friend bool operator==(const CacheAllocator&, const CacheAllocator&) noexcept { return true; }
    };
    using Chunk = std::basic_string<char, std::char_traits<char>, CacheAllocator<char>>;

    std::vector<Chunk, CacheAllocator<Chunk>> chunks_;
    std::size_t head_ = 0;    // first chunk still holding data
    std::size_t offset_ = 0;  // bytes of chunks_[head_] already sent
    std::size_t size_ = 0;
};

}  // namespace tulip::asyncio::detail
