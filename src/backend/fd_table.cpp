#include "fd_table.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

namespace tulip::asyncio::detail {

WakeupFd::WakeupFd() {
    fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd_ < 0) raise_last_os_error("eventfd");
}

WakeupFd::~WakeupFd() { ::close(fd_); }

void WakeupFd::notify() noexcept {
    std::uint64_t one = 1;
    // EAGAIN means the counter is already non-zero: the loop will wake anyway.
    [[maybe_unused]] auto r = ::write(fd_, &one, sizeof one);
}

void WakeupFd::drain() noexcept {
    std::uint64_t count;
    [[maybe_unused]] auto r = ::read(fd_, &count, sizeof count);
}

}  // namespace tulip::asyncio::detail
