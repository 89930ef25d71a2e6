#include "buffer_pool.hpp"

#include <sys/mman.h>

#include <string>

#include "tulip/exceptions.hpp"

namespace tulip::asyncio::detail {

BufferPool::~BufferPool() {
    if (memory_) ::munmap(memory_, mapped_);
}

void BufferPool::create(std::uint32_t count, std::uint32_t size, const char* backend_name) {
    std::string who = std::string(backend_name) + " backend: ";
    if (memory_) throw RuntimeError(who + "the provided-buffer pool already exists");
    if (count == 0 || count > 32768 || (count & (count - 1)) != 0)
        throw ValueError(who + "provided-buffer count must be a power of two from 1 to 32768, not " +
                         std::to_string(count));
    if (size == 0) throw ValueError(who + "provided-buffer size must not be 0");
    mapped_ = std::size_t(count) * size;
    void* p = ::mmap(nullptr, mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) raise_last_os_error(who + "mmap of the provided buffers");
    memory_ = static_cast<std::byte*>(p);
    count_ = count;
    size_ = size;
    free_.reserve(count);
    // Lowest ids first out, as the io_uring ring hands them.
    for (std::uint32_t i = count; i-- > 0;) free_.push_back(static_cast<std::uint16_t>(i));
}

bool BufferPool::take(std::uint16_t& id) noexcept {
    if (free_.empty()) return false;
    id = free_.back();
    free_.pop_back();
    return true;
}

}  // namespace tulip::asyncio::detail
