// Orders the teardown of one io_uring ring before the setup of the next, for ThreadSanitizer.
//
// liburing maps and unmaps its rings with raw system calls, which the sanitizer does not
// intercept: when a ring is set up by one thread at an address that another thread's ring used
// before, the sanitizer sees the old and the new accesses with nothing ordering them and reports
// a race the kernel has in fact ordered (munmap before mmap). Every teardown and every setup
// updates this one counter, so each setup happens after every earlier teardown. Costs an atomic
// add per loop created and closed.
#pragma once

#include <atomic>
#include <cstdint>

namespace tulip::asyncio::detail {

inline std::atomic<std::uint64_t> ring_handoff_generation{0};

// Call after a ring is set up, before touching it.
inline void ring_set_up() noexcept { ring_handoff_generation.fetch_add(1, std::memory_order_acq_rel); }
// Call before a ring is torn down, after the last access to it.
inline void ring_torn_down() noexcept { ring_handoff_generation.fetch_add(1, std::memory_order_acq_rel); }

}  // namespace tulip::asyncio::detail
