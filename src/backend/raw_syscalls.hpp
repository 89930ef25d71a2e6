// The system calls of the readiness hot path (recv, send, epoll_wait), made through syscall(2).
//
// glibc's recv(), send() and epoll_wait() are pthread cancellation points: in a process with
// more than one thread, each call switches the thread to asynchronous cancellation and back
// around the system call, ~60 user-space instructions per echoed message for recv + send. tulip
// never cancels threads, and a loop's thread cancelled in the middle of its bookkeeping could
// not be recovered anyway, so these calls skip the cancellation point. Results and errno are
// those of the libc functions: -1 and errno on failure.
#pragma once

#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstddef>
#include <ctime>

namespace tulip::asyncio::detail::sys {

inline ssize_t recv(int fd, void* buf, std::size_t len, int flags) noexcept {
    return ::syscall(SYS_recvfrom, fd, buf, len, flags, nullptr, nullptr);
}

inline ssize_t send(int fd, const void* buf, std::size_t len, int flags) noexcept {
    return ::syscall(SYS_sendto, fd, buf, len, flags, nullptr, 0);
}

// epoll_wait(2) through epoll_pwait without a signal mask: every architecture has it.
inline int epoll_wait(int epfd, epoll_event* events, int max, int timeout_ms) noexcept {
    return static_cast<int>(::syscall(SYS_epoll_pwait, epfd, events, max, timeout_ms, nullptr, _NSIG / 8));
}

#ifdef SYS_epoll_pwait2
inline int epoll_pwait2(int epfd, epoll_event* events, int max, const timespec* timeout) noexcept {
    return static_cast<int>(::syscall(SYS_epoll_pwait2, epfd, events, max, timeout, nullptr, _NSIG / 8));
}
#else
inline int epoll_pwait2(int, epoll_event*, int, const timespec*) noexcept {
    errno = ENOSYS;
    return -1;
}
#endif

}  // namespace tulip::asyncio::detail::sys
