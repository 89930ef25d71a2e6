// Whether this kernel has every io_uring feature the io_uring backend relies on.
#pragma once

#include <string>

namespace tulip::asyncio::detail {

// True when io_uring can be set up and has provided buffer rings (Linux 5.19) and multishot
// recv (6.0), which the stream transports use; otherwise false with the reason in `why`.
// Tested for real, once per process, on a small ring of its own (a kernel version says little:
// distributions backport, and seccomp or io_uring_disabled refuse io_uring on any version).
// A refused io_uring_setup is not remembered, since it may be a filter on this thread only.
bool io_uring_usable(std::string& why);

// Whether the kernel consumes provided buffers incrementally (IOU_PBUF_RING_INC, Linux 6.12),
// found by the same once-per-process probe, which asks for it when it registers its buffer ring
// (a kernel without it refuses the flag with EINVAL, and the probe registers the ring the old
// way). False where io_uring is not usable.
bool io_uring_incremental_buffers();

}  // namespace tulip::asyncio::detail
