#include "tulip/exceptions.hpp"

#include <cerrno>

namespace tulip {

OSError::OSError(int err, const std::string& what)
    : std::system_error(err, std::generic_category(), what) {}

OSError::OSError(std::error_code code, const std::string& what) : std::system_error(code, what) {}

void raise_os_error(int err, const std::string& what) {
    switch (err) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
    case EALREADY:
    case EINPROGRESS:
        throw BlockingIOError(err, what);
    case ECHILD:
        throw ChildProcessError(err, what);
    case EPIPE:
    case ESHUTDOWN:
        throw BrokenPipeError(err, what);
    case ECONNABORTED:
        throw ConnectionAbortedError(err, what);
    case ECONNREFUSED:
        throw ConnectionRefusedError(err, what);
    case ECONNRESET:
        throw ConnectionResetError(err, what);
    case EEXIST:
        throw FileExistsError(err, what);
    case ENOENT:
        throw FileNotFoundError(err, what);
    case EINTR:
        throw InterruptedError(err, what);
    case EISDIR:
        throw IsADirectoryError(err, what);
    case ENOTDIR:
        throw NotADirectoryError(err, what);
    case EACCES:
    case EPERM:
        throw PermissionError(err, what);
    case ESRCH:
        throw ProcessLookupError(err, what);
    case ETIMEDOUT:
        throw TimeoutError(err, what);
    default:
        throw OSError(err, what);
    }
}

void raise_last_os_error(const std::string& what) { raise_os_error(errno, what); }

}  // namespace tulip
