// A stream Protocol that can, at times, take the next received bytes straight into a buffer of
// its own: the stream transports then receive into it instead of into the loop's read buffer,
// and skip the copy that data_received() would make. StreamReaderProtocol is one: while a
// read_into() waits on an empty stream, the kernel copies the data into the caller's buffer.
//
// tulip's own interface, beside Python's Protocol contract. The socket transport serves a
// DirectReceiver by readiness on every backend (io_uring included: receiving into a kernel
// buffer and copying would undo the point). A transport that does not know the interface
// simply calls data_received(), and the protocol must handle that as usual.
#pragma once

#include <cstddef>
#include <span>

namespace tulip::asyncio::detail {

class DirectReceiver {
public:
    // Where the next bytes may be received, or an empty span for data_received() as usual.
    virtual std::span<std::byte> direct_buffer() noexcept = 0;
    // n > 0 bytes were received into the span that direct_buffer() just returned; called instead
    // of data_received().
    virtual void direct_received(std::size_t n) = 0;

protected:
    ~DirectReceiver() = default;
};

}  // namespace tulip::asyncio::detail
