// EventLoop::sock_sendfile: Python's loop.sock_sendfile. sendfile(2) on the non-blocking socket,
// waiting for writability whenever the socket's buffer is full; where sendfile(2) cannot be used,
// the file is read and sent with sock_sendall instead (Python's _sock_sendfile_fallback).
#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>
#include <string>

#include "../socket/sigpipe.hpp"
#include "tulip/asyncio/detail/fd_wait.hpp"
#include "tulip/asyncio/detail/sock_ops.hpp"
#include "tulip/asyncio/events.hpp"
#include "tulip/asyncio/exceptions.hpp"
#include "tulip/asyncio/tasks.hpp"

namespace tulip::asyncio {

namespace {

constexpr std::size_t kMaxBlock = std::size_t{1} << 30;      // as CPython: at most 1 GiB per call
constexpr std::size_t kFallbackBlock = 256 * 1024;           // Python's SENDFILE_FALLBACK_READBUFFER_SIZE

// What a sendfile(2) failure with nothing sent yet means "this pair of fds cannot do sendfile"
// (and so: fall back), rather than a failed connection, which is reported as it is.
bool sendfile_refused(int err) noexcept {
    return err == EINVAL || err == ENOSYS || err == EOPNOTSUPP || err == ESPIPE;
}

// Tries sendfile(2) from `offset`, adding what goes to `sent`. Returns false, with `why_not` set,
// when sendfile cannot be used and nothing was sent; true when done (count sent, or end of file).
Coro<bool> send_native(EventLoop& loop, int fd, int file_fd, std::uint64_t offset, std::optional<std::size_t> count,
                       std::size_t& sent, std::string& why_not) {
    struct ::stat st {};
    if (::fstat(file_fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
        why_not = "not a regular file";
        co_return false;
    }
    for (;;) {
        std::size_t block = std::min(count ? *count - sent : kMaxBlock, kMaxBlock);
        if (block == 0) co_return true;
        auto position = static_cast<::off_t>(offset + sent);
        ssize_t n;
        int err;
        {
            socket::detail::SigpipeBlocked guard;
            n = ::sendfile(fd, file_fd, &position, block);
            err = errno;
            if (n < 0 && err == EPIPE) guard.saw_epipe();
        }
        if (n > 0) {
            sent += static_cast<std::size_t>(n);
        } else if (n == 0) {
            co_return true;  // end of file
        } else if (err == EAGAIN || err == EWOULDBLOCK) {
            co_await detail::wait_writable(loop, fd);
        } else if (err != EINTR) {
            if (sent == 0 && sendfile_refused(err)) {
                why_not = std::string("sendfile(2) refused it: ") + std::strerror(err);
                co_return false;
            }
            raise_os_error(err, "sock_sendfile (" + std::to_string(sent) + " bytes sent)");
        }
    }
}

// One read of a blocking file, on the default executor (a read may block: the loop must not).
// The job owns its arguments and returns the bytes, so a cancelled caller leaves nothing behind.
struct BlockingReadJob {
    int file_fd;
    std::optional<std::uint64_t> at;  // pread there, or read() at the position (unseekable files)
    std::size_t size;
    std::string operator()() const {
        std::string data(size, '\0');
        for (;;) {
            ssize_t n = at ? ::pread(file_fd, data.data(), size, static_cast<::off_t>(*at))
                           : ::read(file_fd, data.data(), size);
            if (n >= 0) {
                data.resize(static_cast<std::size_t>(n));
                return data;
            }
            if (errno != EINTR) raise_last_os_error("sock_sendfile: read of fd " + std::to_string(file_fd));
        }
    }
};

// One read of the file: on the loop when the fd is non-blocking (waiting for readability), else
// on the executor. Empty at end of file.
Coro<std::string> read_block(EventLoop& loop, int file_fd, std::optional<std::uint64_t> at, std::size_t size,
                             bool nonblocking) {
    if (!nonblocking) {
        auto job = loop.run_in_executor(BlockingReadJob{file_fd, at, size});
        co_return co_await job;
    }
    std::string data(size, '\0');
    for (;;) {
        ssize_t n = at ? ::pread(file_fd, data.data(), size, static_cast<::off_t>(*at))
                       : ::read(file_fd, data.data(), size);
        if (n >= 0) {
            data.resize(static_cast<std::size_t>(n));
            co_return data;
        }
        int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK)
            co_await detail::wait_readable(loop, file_fd);
        else if (err != EINTR)
            raise_os_error(err, "sock_sendfile: read of fd " + std::to_string(file_fd));
    }
}

// Python's _sock_sendfile_fallback: read a block, sock_sendall it, until count or end of file.
Coro<> send_fallback(EventLoop& loop, int fd, int file_fd, std::uint64_t offset, std::optional<std::size_t> count,
                     std::size_t& sent) {
    bool seekable = ::lseek(file_fd, 0, SEEK_CUR) >= 0;
    if (!seekable && offset != 0)
        raise_os_error(ESPIPE, "sock_sendfile: offset " + std::to_string(offset) + " in an unseekable file");
    int flags = ::fcntl(file_fd, F_GETFL);
    if (flags < 0) raise_last_os_error("sock_sendfile: fcntl of fd " + std::to_string(file_fd));
    bool nonblocking = (flags & O_NONBLOCK) != 0;
    for (;;) {
        std::size_t block = std::min(count ? *count - sent : kFallbackBlock, kFallbackBlock);
        if (block == 0) co_return;
        std::optional<std::uint64_t> at;
        if (seekable) at = offset + sent;
        std::string data = co_await read_block(loop, file_fd, at, block, nonblocking);
        if (data.empty()) co_return;  // end of file
        co_await detail::sock_sendall(loop, fd, std::as_bytes(std::span(data.data(), data.size())));
        sent += data.size();
    }
}

// Python leaves the file positioned just after what was sent (when anything was, and it can seek).
void update_position(int file_fd, std::uint64_t offset, std::size_t sent) {
    if (sent == 0) return;
    if (::lseek(file_fd, static_cast<::off_t>(offset + sent), SEEK_SET) < 0 && errno != ESPIPE)
        raise_last_os_error("sock_sendfile: lseek");
}

}  // namespace

Coro<std::size_t> EventLoop::sock_sendfile(socket::Socket& sock, int file_fd, std::uint64_t offset,
                                           std::optional<std::size_t> count, bool fallback) {
    int fd = sock.fileno();
    if (fd < 0) raise_os_error(EBADF, "sock_sendfile: the socket is closed");
    if (sock.getblocking())
        throw ValueError("sock_sendfile: the socket must be non-blocking (call setblocking(false))");
    if (sock.type() != SOCK_STREAM) throw ValueError("sock_sendfile: only SOCK_STREAM type sockets are supported");
    if (count && *count == 0) throw ValueError("sock_sendfile: count must be a positive integer (got 0)");
    if (offset > static_cast<std::uint64_t>(std::numeric_limits<::off_t>::max()))
        throw ValueError("sock_sendfile: offset " + std::to_string(offset) + " is too large");
    if (file_fd < 0) raise_os_error(EBADF, "sock_sendfile: file fd " + std::to_string(file_fd));

    std::size_t sent = 0;
    try {
        std::string why_not;
        bool done = co_await send_native(*this, fd, file_fd, offset, count, sent, why_not);
        if (!done) {
            if (!fallback) throw SendfileNotAvailableError("sock_sendfile: " + why_not + " (and fallback is off)");
            co_await send_fallback(*this, fd, file_fd, offset, count, sent);
        }
    } catch (...) {  // an error or a cancellation: the position still follows what was sent
        try {
            update_position(file_fd, offset, sent);
        } catch (const OSError&) {
        }
        throw;
    }
    update_position(file_fd, offset, sent);
    co_return sent;
}

}  // namespace tulip::asyncio
