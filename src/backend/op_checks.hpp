// The checks every backend makes on a socket operation before taking it.
#pragma once

#include <cerrno>
#include <string>

#include "backend.hpp"
#include "tulip/exceptions.hpp"

namespace tulip::asyncio::detail {

// What is wrong with op, or null when nothing is.
inline const char* socket_op_problem(const Operation& op) noexcept {
    if (op.kind == OpKind::poll) return nullptr;
    if (!op.complete) return "operation without a completion function";
    if ((op.flags & kMultishot) && op.kind != OpKind::recv && op.kind != OpKind::accept)
        return "only recv and accept can be multishot";
    if (op.kind == OpKind::recv && (op.flags & kMultishot) != 0 && (op.flags & kProvidedBuffer) == 0)
        return "a multishot recv reads into provided buffers (set kProvidedBuffer)";
    if ((op.flags & kProvidedBuffer) && (op.kind != OpKind::recv || !(op.flags & kMultishot)))
        return "provided buffers are for multishot recv only";
    if ((op.flags & kMultishot) && op.kind == OpKind::accept && op.addr)
        return "a multishot accept cannot return addresses (pass addr = null)";
    if (op.kind == OpKind::connect && !op.addr) return "connect without an address";
    return nullptr;
}

// Throws OSError (bad fd) or ValueError (flags the kind cannot take). Builds no message (and so
// allocates nothing) unless something is wrong: it runs on every submit.
inline void check_socket_op(const Operation& op, const char* backend_name) {
    if (op.fd < 0) throw OSError(EBADF, std::string(backend_name) + " backend: invalid fd " + std::to_string(op.fd));
    if (const char* problem = socket_op_problem(op)) throw ValueError(std::string(backend_name) + " backend: " + problem);
}

}  // namespace tulip::asyncio::detail
