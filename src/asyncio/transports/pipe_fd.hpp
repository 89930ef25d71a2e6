// What both pipe transports check and do to the fd they are given (Python's unix_events pipe
// transports): it must be a pipe/FIFO, a socket or a character device; it is made non-blocking.
#pragma once

namespace tulip::asyncio::detail {

enum class PipeKind { fifo, socket, char_device };

// Throws ValueError "Pipe transport is for pipes/sockets only." for anything else (a regular
// file, a directory), OSError(EBADF) for a closed fd. Leaves the fd open either way.
PipeKind check_pipe_fd(int fd);
// O_NONBLOCK on; throws OSError.
void set_pipe_nonblocking(int fd);

}  // namespace tulip::asyncio::detail
