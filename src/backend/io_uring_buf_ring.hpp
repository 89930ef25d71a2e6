// The io_uring backend's ring of provided buffers: the pool's buffers registered with the kernel
// as one buffer group, and what is known about each buffer while the kernel and the owners of
// its bytes hold it.
//
// Two ways to consume a buffer, chosen when the ring is registered:
//   - whole (every kernel with buffer rings, 5.19): each completion takes a fresh buffer, however
//     few bytes it brings;
//   - incrementally (IOU_PBUF_RING_INC, Linux 6.12): a completion takes only the bytes it
//     brings, from where the previous one left off, and the buffer stays at the head of the ring
//     until it is full. One recv can then take a whole socket queue into one contiguous slice of
//     a large buffer, and many small reads share one buffer.
// Incremental consumption is asked for first; a kernel that does not know the flag refuses the
// registration with EINVAL and the ring is registered again the old way.
//
// A completion hands out a slice (buffer id, offset, bytes); its owner gives each slice back
// once. A buffer returns to the ring when the kernel is done with it (a completion without
// IORING_CQE_F_BUF_MORE) and every slice of it was given back.
#pragma once

#include <liburing.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "buffer_pool.hpp"

namespace tulip::asyncio::detail {

// Flags of kernels newer than liburing 2.3's headers, by value (include/uapi/linux/io_uring.h);
// they are used only after the kernel accepted IOU_PBUF_RING_INC (create()).
inline constexpr std::uint16_t kPbufRingInc = 2;           // IOU_PBUF_RING_INC (6.12)
inline constexpr unsigned kCqeBufMore = 1u << 4;           // IORING_CQE_F_BUF_MORE (6.12)

class IoUringBufRing {
public:
    IoUringBufRing() = default;
    ~IoUringBufRing();
    IoUringBufRing(const IoUringBufRing&) = delete;
    IoUringBufRing& operator=(const IoUringBufRing&) = delete;

    // Makes the pool and registers it as buffer group `group` of `ring`, incrementally consumed
    // when `incremental` is asked for and the kernel has it. Throws ValueError (bad count or
    // size), RuntimeError (already made), OSError (no buffer rings: Linux 5.19).
    void create(io_uring& ring, std::uint16_t group, std::uint32_t count, std::uint32_t size, bool incremental);
    bool created() const noexcept { return br_ != nullptr; }
    bool incremental() const noexcept { return incremental_; }

    // A completion with IORING_CQE_F_BUFFER set brought `bytes` (> 0) into buffer `id`: returns
    // where in the buffer they start; the slice is out until give_back(id).
    std::uint32_t take(std::uint16_t id, std::uint32_t bytes, unsigned cqe_flags) noexcept;
    // A completion named buffer `id` but brought no bytes (an error or EOF after selection).
    void taken_empty(std::uint16_t id, unsigned cqe_flags) noexcept;
    void give_back(std::uint16_t id) noexcept;

    std::byte* data(std::uint16_t id) const noexcept { return pool_.data(id); }
    std::uint32_t size() const noexcept { return pool_.size(); }
    std::uint32_t count() const noexcept { return pool_.count(); }
    // Buffers the kernel has finished with that are not back in the ring yet.
    std::size_t out() const noexcept { return out_; }

private:
    struct State {
        std::uint32_t offset = 0;  // where the kernel's next slice of this buffer starts
        std::uint32_t slices = 0;  // slices handed out and not given back
        bool finished = false;     // the kernel moved past this buffer
    };
    void finish(std::uint16_t id) noexcept;
    void recycle(std::uint16_t id) noexcept;

    BufferPool pool_;
    io_uring_buf_ring* br_ = nullptr;
    std::size_t br_bytes_ = 0;
    int mask_ = 0;
    bool incremental_ = false;
    std::size_t out_ = 0;
    std::vector<State> state_;
};

}  // namespace tulip::asyncio::detail
