// The memory of a backend's provided buffers (kProvidedBuffer recv): `count` buffers of `size`
// bytes in one page-aligned mapping, named by 16-bit ids as io_uring's buffer rings name them.
// A readiness backend hands them out from the free list here; io_uring hands them to the kernel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tulip::asyncio::detail {

class BufferPool {
public:
    BufferPool() = default;
    ~BufferPool();
    BufferPool(const BufferPool&) = delete;
    BufferPool& operator=(const BufferPool&) = delete;

    // Throws ValueError for a count that is not a power of two in [1, 32768] or a zero size,
    // RuntimeError when the pool already exists.
    void create(std::uint32_t count, std::uint32_t size, const char* backend_name);
    bool created() const noexcept { return memory_ != nullptr; }

    std::uint32_t count() const noexcept { return count_; }
    std::uint32_t size() const noexcept { return size_; }
    std::byte* data(std::uint16_t id) const noexcept { return memory_ + std::size_t(id) * size_; }

    // The free list (readiness backends): take returns false when the pool is empty.
    bool take(std::uint16_t& id) noexcept;
    void put(std::uint16_t id) noexcept { free_.push_back(id); }
    std::size_t free_count() const noexcept { return free_.size(); }

private:
    std::byte* memory_ = nullptr;
    std::size_t mapped_ = 0;
    std::uint32_t count_ = 0;
    std::uint32_t size_ = 0;
    std::vector<std::uint16_t> free_;
};

}  // namespace tulip::asyncio::detail
