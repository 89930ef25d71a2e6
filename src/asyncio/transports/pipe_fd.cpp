#include "pipe_fd.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>

#include "tulip/exceptions.hpp"

namespace tulip::asyncio::detail {

PipeKind check_pipe_fd(int fd) {
    struct stat st{};
    if (fd < 0 || ::fstat(fd, &st) != 0) raise_os_error(fd < 0 ? EBADF : errno, "pipe transport: fstat");
    if (S_ISFIFO(st.st_mode)) return PipeKind::fifo;
    if (S_ISSOCK(st.st_mode)) return PipeKind::socket;
    if (S_ISCHR(st.st_mode)) return PipeKind::char_device;
    throw ValueError("Pipe transport is for pipes/sockets only.");
}

void set_pipe_nonblocking(int fd) {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || (!(flags & O_NONBLOCK) && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0))
        raise_os_error(errno, "pipe transport: fcntl(O_NONBLOCK)");
}

}  // namespace tulip::asyncio::detail
