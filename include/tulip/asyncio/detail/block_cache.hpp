// A per-thread cache of small memory blocks for the objects the loop makes and frees by the
// thousand: coroutine frames, future and task states, callback nodes.
//
// Why not leave it to malloc: glibc's per-thread cache (tcache) holds 7 free chunks per size. A
// burst of a thousand tasks alive at once overflows it, and the rest goes through the fastbins
// and the unsorted/small bins (with malloc_consolidate): ~170 instructions per malloc and per
// free instead of a few dozen, about half the cost of create_task. And glibc gives the top of
// its heap back to the kernel whenever more than 128 KiB of it is free (M_TRIM_THRESHOLD), so
// each burst faults its memory in again: create_task measured ~4x slower with glibc's defaults.
// CPython avoids both with pymalloc and its free lists; this is tulip's free list.
//
// - Size classes of 16 bytes up to 1 KiB (64 lists); larger blocks go to ::operator new.
// - Every block of a class is allocated with the class's full size, so any thread may own it:
//   a block freed on another thread joins *that* thread's list (no locks, no shared state; the
//   handover of the object itself is what the caller already synchronises).
// - A thread keeps at most kMaxCachedBytes (4 MiB) of free blocks; beyond that frees go to
//   ::operator delete.
// - At thread exit the lists are given back to ::operator delete; blocks freed on that thread
//   afterwards (by later thread_local or static destructors) go straight to ::operator delete.
// - Compiled out under AddressSanitizer and ThreadSanitizer, so that a use after free of a frame
//   or a state is still caught, and when TULIP_NO_BLOCK_CACHE is defined (meson option
//   block_cache=false), e.g. to look at allocations with valgrind or heaptrack.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TULIP_BLOCK_CACHE_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TULIP_BLOCK_CACHE_SANITIZED 1
#endif
#endif

#if defined(TULIP_NO_BLOCK_CACHE) || defined(TULIP_BLOCK_CACHE_SANITIZED)
#define TULIP_BLOCK_CACHE 0
#else
#define TULIP_BLOCK_CACHE 1
#endif

namespace tulip::asyncio::detail::block_cache {

inline constexpr std::size_t kGranule = 16;
inline constexpr std::size_t kMaxBlock = 1024;
inline constexpr std::size_t kClasses = kMaxBlock / kGranule;
inline constexpr std::size_t kMaxCachedBytes = std::size_t{4} << 20;

// For tests: what this thread's cache holds now.
struct Stats {
    bool enabled = false;
    std::size_t cached_blocks = 0;
    std::size_t cached_bytes = 0;
};
Stats thread_stats() noexcept;

#if TULIP_BLOCK_CACHE

struct FreeBlock {
    FreeBlock* next;
};

enum class ThreadState : std::uint8_t { unused, live, gone };

struct ThreadCache {
    FreeBlock* heads[kClasses];
    std::size_t cached_bytes;
    ThreadState state;
};

// Constant-initialised with a trivial destructor: reaching it costs no guard or wrapper call.
// Release at thread exit is done by a separate thread_local registered on first free.
inline constinit thread_local ThreadCache t_cache{};

// Out of line: the first free of a thread (registers the release at exit), a full cache, a
// thread that has exited.
void deallocate_slow(void* p, std::size_t block_size) noexcept;

constexpr std::size_t class_index(std::size_t size) noexcept { return (size - 1) / kGranule; }

inline void* allocate(std::size_t size) {
    if (size == 0 || size > kMaxBlock) return ::operator new(size);
    std::size_t i = class_index(size);
    ThreadCache& c = t_cache;
    if (FreeBlock* b = c.heads[i]) {
        c.heads[i] = b->next;
        c.cached_bytes -= (i + 1) * kGranule;
        return b;
    }
    return ::operator new((i + 1) * kGranule);
}

inline void deallocate(void* p, std::size_t size) noexcept {
    if (size == 0 || size > kMaxBlock) {
        ::operator delete(p);
        return;
    }
    std::size_t i = class_index(size);
    std::size_t block_size = (i + 1) * kGranule;
    ThreadCache& c = t_cache;
    if (c.state == ThreadState::live && c.cached_bytes + block_size <= kMaxCachedBytes) [[likely]] {
        auto* b = static_cast<FreeBlock*>(p);
        b->next = c.heads[i];
        c.heads[i] = b;
        c.cached_bytes += block_size;
        return;
    }
    deallocate_slow(p, block_size);
}

#else

inline void* allocate(std::size_t size) { return ::operator new(size); }
inline void deallocate(void* p, std::size_t /*size*/) noexcept { ::operator delete(p); }

#endif

}  // namespace tulip::asyncio::detail::block_cache
