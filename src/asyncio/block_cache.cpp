#include "tulip/asyncio/detail/block_cache.hpp"

namespace tulip::asyncio::detail::block_cache {

#if TULIP_BLOCK_CACHE

namespace {

void release_all(ThreadCache& c) noexcept {
    for (std::size_t i = 0; i < kClasses; ++i) {
        while (FreeBlock* b = c.heads[i]) {
            c.heads[i] = b->next;
            ::operator delete(b);
        }
    }
    c.cached_bytes = 0;
}

// Its destructor gives the thread's blocks back at thread exit. It is a thread_local of its own,
// constructed on the thread's first free, so that t_cache itself stays trivially destructible
// and free of initialisation guards on the hot path.
struct ReleaseAtExit {
    ReleaseAtExit() noexcept { t_cache.state = ThreadState::live; }
    ~ReleaseAtExit() {
        t_cache.state = ThreadState::gone;
        release_all(t_cache);
    }
    ReleaseAtExit(const ReleaseAtExit&) = delete;
    ReleaseAtExit& operator=(const ReleaseAtExit&) = delete;
};

}  // namespace

void deallocate_slow(void* p, std::size_t block_size) noexcept {
    ThreadCache& c = t_cache;
    if (c.state == ThreadState::unused) {
        static thread_local ReleaseAtExit release_at_exit;
        (void)release_at_exit;
    }
    if (c.state == ThreadState::live && c.cached_bytes + block_size <= kMaxCachedBytes) {
        auto* b = static_cast<FreeBlock*>(p);
        std::size_t i = class_index(block_size);
        b->next = c.heads[i];
        c.heads[i] = b;
        c.cached_bytes += block_size;
        return;
    }
    ::operator delete(p);
}

Stats thread_stats() noexcept {
    Stats s;
    s.enabled = true;
    const ThreadCache& c = t_cache;
    for (std::size_t i = 0; i < kClasses; ++i)
        for (FreeBlock* b = c.heads[i]; b; b = b->next) ++s.cached_blocks;
    s.cached_bytes = c.cached_bytes;
    return s;
}

#else

Stats thread_stats() noexcept { return {}; }

#endif

}  // namespace tulip::asyncio::detail::block_cache
