// Socket::sendfile: os.sendfile() in a loop, as Python's socket.sendfile() uses it.
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include "sigpipe.hpp"
#include "sock_call.hpp"
#include "tulip/socket.hpp"

namespace tulip::socket {

std::size_t Socket::sendfile(int file_fd, std::uint64_t offset, std::optional<std::size_t> count) {
    int fd = checked_fd("sendfile");
    if (type_ != SOCK_STREAM) throw ValueError("sendfile: only SOCK_STREAM type sockets are supported");
    if (timeout_ == 0) throw ValueError("sendfile: non-blocking sockets are not supported");
    std::size_t total = 0;
    if (count && *count == 0) return 0;

    ::off_t position = static_cast<::off_t>(offset);
    std::uint64_t file_size = 0;
    if (!count) {
        struct ::stat st {};
        if (::fstat(file_fd, &st) < 0) raise_last_os_error("sendfile: fstat " + std::to_string(file_fd));
        file_size = static_cast<std::uint64_t>(st.st_size);
    }
    detail::Deadline deadline(timeout_);
    deadline.start();
    detail::SigpipeBlocked guard;
    constexpr std::size_t kMaxBlock = std::size_t{1} << 30;  // as CPython: at most 1 GiB per call
    for (;;) {
        std::size_t block;
        if (count) {
            block = *count - total;
        } else {
            // To the size known at the start, or further if the file grows (sendfile says 0 at EOF).
            std::uint64_t left = file_size > offset + total ? file_size - offset - total : 0;
            block = left > 0 ? static_cast<std::size_t>(std::min<std::uint64_t>(left, kMaxBlock)) : kMaxBlock;
        }
        if (block == 0) break;
        block = std::min(block, kMaxBlock);
        ssize_t n;
        try {
            n = detail::sock_call(
                fd, deadline, POLLOUT, [&] {
                    ssize_t r = ::sendfile(fd, file_fd, &position, block);
                    if (r < 0 && errno == EPIPE) guard.saw_epipe();
                    return r;
                },
                [&] { return "sendfile (" + std::to_string(total) + " bytes sent)"; });
        } catch (...) {
            if (total > 0) ::lseek(file_fd, static_cast<::off_t>(offset + total), SEEK_SET);
            throw;
        }
        if (n == 0) break;  // end of file
        total += static_cast<std::size_t>(n);
        if (count && total >= *count) break;
    }
    // Python leaves the file positioned after what was sent.
    if (total > 0 && ::lseek(file_fd, static_cast<::off_t>(offset + total), SEEK_SET) < 0)
        raise_last_os_error("sendfile: lseek");
    return total;
}

}  // namespace tulip::socket
