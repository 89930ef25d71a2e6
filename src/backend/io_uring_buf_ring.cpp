#include "io_uring_buf_ring.hpp"

#include <sys/mman.h>

#include <cerrno>

#include "tulip/exceptions.hpp"

namespace tulip::asyncio::detail {

namespace {

// Maps and registers a ring of `entries` entries as `group`; null with the error in `err`.
io_uring_buf_ring* register_ring(io_uring& ring, std::uint16_t group, std::uint32_t entries, std::uint16_t flags,
                                 std::size_t& bytes, int& err) noexcept {
    bytes = std::size_t(entries) * sizeof(io_uring_buf);
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        err = errno;
        return nullptr;
    }
    auto* br = static_cast<io_uring_buf_ring*>(p);
    io_uring_buf_ring_init(br);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uintptr_t>(br);
    reg.ring_entries = entries;
    reg.bgid = group;
    reg.pad = flags;  // `flags` in newer headers (same place); liburing 2.3 calls it `pad`
    if (int r = io_uring_register_buf_ring(&ring, &reg, 0); r < 0) {
        ::munmap(p, bytes);
        err = -r;
        return nullptr;
    }
    return br;
}

}  // namespace

IoUringBufRing::~IoUringBufRing() {
    // The ring was torn down (or the group unregistered) by the owner before this.
    if (br_) ::munmap(br_, br_bytes_);
}

void IoUringBufRing::create(io_uring& ring, std::uint16_t group, std::uint32_t count, std::uint32_t size,
                            bool incremental) {
    pool_.create(count, size, "io_uring");
    int err = 0;
    io_uring_buf_ring* br = nullptr;
    if (incremental) br = register_ring(ring, group, count, kPbufRingInc, br_bytes_, err);
    incremental_ = br != nullptr;
    if (!br && (!incremental || err == EINVAL)) br = register_ring(ring, group, count, 0, br_bytes_, err);
    if (!br)
        raise_os_error(err, "io_uring backend: io_uring_register_buf_ring (provided buffer rings need Linux 5.19)");
    br_ = br;
    mask_ = io_uring_buf_ring_mask(count);
    state_.assign(count, State{});
    for (std::uint32_t i = 0; i < count; ++i)
        io_uring_buf_ring_add(br_, pool_.data(static_cast<std::uint16_t>(i)), size, static_cast<unsigned short>(i),
                              mask_, static_cast<int>(i));
    io_uring_buf_ring_advance(br_, static_cast<int>(count));
}

std::uint32_t IoUringBufRing::take(std::uint16_t id, std::uint32_t bytes, unsigned cqe_flags) noexcept {
    State& s = state_[id];
    std::uint32_t at = s.offset;
    ++s.slices;
    if (incremental_) s.offset += bytes;
    if (!incremental_ || !(cqe_flags & kCqeBufMore)) finish(id);
    return at;
}

void IoUringBufRing::taken_empty(std::uint16_t id, unsigned cqe_flags) noexcept {
    if (incremental_ && (cqe_flags & kCqeBufMore)) return;  // still the kernel's
    finish(id);
    if (state_[id].slices == 0) recycle(id);
}

void IoUringBufRing::give_back(std::uint16_t id) noexcept {
    State& s = state_[id];
    if (s.slices == 0) return;  // not out: a second give_back of the same slice
    if (--s.slices == 0 && s.finished) recycle(id);
}

void IoUringBufRing::finish(std::uint16_t id) noexcept {
    if (state_[id].finished) return;
    state_[id].finished = true;
    ++out_;
}

void IoUringBufRing::recycle(std::uint16_t id) noexcept {
    state_[id] = State{};
    --out_;
    io_uring_buf_ring_add(br_, pool_.data(id), pool_.size(), id, mask_, 0);
    io_uring_buf_ring_advance(br_, 1);
}

}  // namespace tulip::asyncio::detail
