// The checks every backend makes on a socket operation before taking it.
#pragma once

#include <cerrno>
#include <string>

#include "backend.hpp"
#include "tulip/exceptions.hpp"

namespace tulip::asyncio::detail {

// Throws OSError (bad fd), ValueError (flags the kind cannot take) or RuntimeError.
inline void check_socket_op(const Operation& op, const char* backend_name) {
    std::string who = std::string(backend_name) + " backend: ";
    if (op.fd < 0) throw OSError(EBADF, who + "invalid fd " + std::to_string(op.fd));
    if (op.kind == OpKind::poll) return;
    if (!op.complete) throw ValueError(who + "operation without a completion function");
    if ((op.flags & kMultishot) && op.kind != OpKind::recv && op.kind != OpKind::accept)
        throw ValueError(who + "only recv and accept can be multishot");
    if (op.kind == OpKind::recv && (op.flags & kMultishot) != 0 && (op.flags & kProvidedBuffer) == 0)
        throw ValueError(who + "a multishot recv reads into provided buffers (set kProvidedBuffer)");
    if ((op.flags & kProvidedBuffer) && (op.kind != OpKind::recv || !(op.flags & kMultishot)))
        throw ValueError(who + "provided buffers are for multishot recv only");
    if ((op.flags & kMultishot) && op.kind == OpKind::accept && op.addr)
        throw ValueError(who + "a multishot accept cannot return addresses (pass addr = null)");
    if (op.kind == OpKind::connect && !op.addr) throw ValueError(who + "connect without an address");
}

}  // namespace tulip::asyncio::detail
