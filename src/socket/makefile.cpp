// Socket::makefile and SocketFile: Python's socket.makefile() file object (bytes interface).
#include <algorithm>
#include <cerrno>

#include "tulip/socket.hpp"

namespace tulip::socket {

namespace {

constexpr std::size_t kDefaultBufferSize = 8192;  // Python's io.DEFAULT_BUFFER_SIZE

}  // namespace

SocketFile Socket::makefile(std::string_view mode, std::optional<std::size_t> buffering) const {
    checked_fd("makefile");
    bool only_rwb = !mode.empty() && mode.find_first_not_of("rwb") == std::string_view::npos;
    bool reading = mode.find('r') != std::string_view::npos;
    bool writing = mode.find('w') != std::string_view::npos;
    if (!only_rwb || (!reading && !writing))
        throw ValueError("makefile: invalid mode '" + std::string(mode) + "' (only r, w, b allowed)");
    if (buffering && *buffering == 0 && mode.find('b') == std::string_view::npos)
        throw ValueError("makefile: unbuffered streams must be binary");
    if (timeout_ == 0) throw ValueError("makefile: the socket must be in blocking or timeout mode");
    return SocketFile(dup(), std::string(mode), buffering.value_or(kDefaultBufferSize));
}

SocketFile::SocketFile(Socket sock, std::string mode, std::size_t buffer_size)
    : sock_(std::move(sock)),
      mode_(std::move(mode)),
      reading_(mode_.find('r') != std::string::npos),
      writing_(mode_.find('w') != std::string::npos),
      buffer_size_(buffer_size) {}

SocketFile& SocketFile::operator=(SocketFile&& other) noexcept {
    if (this != &other) {
        try {
            close();
        } catch (...) {
        }
        sock_ = std::move(other.sock_);
        mode_ = std::move(other.mode_);
        reading_ = other.reading_;
        writing_ = other.writing_;
        buffer_size_ = other.buffer_size_;
        rbuf_ = std::move(other.rbuf_);
        rpos_ = std::exchange(other.rpos_, 0);
        wbuf_ = std::move(other.wbuf_);
    }
    return *this;
}

SocketFile::~SocketFile() {
    try {
        close();
    } catch (...) {
    }
}

void SocketFile::check_open(const char* call) const {
    if (closed()) throw ValueError(std::string(call) + ": I/O operation on closed file");
}

void SocketFile::check_readable(const char* call) const {
    check_open(call);
    if (!reading_) raise_os_error(EBADF, std::string(call) + ": File not open for reading");
}

std::size_t SocketFile::fill(std::size_t want) {
    if (rpos_ == rbuf_.size()) {
        rbuf_.clear();
        rpos_ = 0;
    }
    std::size_t size = buffer_size_ == 0 ? want : std::max(want, buffer_size_);
    std::size_t old = rbuf_.size();
    rbuf_.resize(old + size);
    std::size_t n;
    try {
        n = sock_.recv_into(std::as_writable_bytes(std::span(rbuf_)).subspan(old), size);
    } catch (...) {
        rbuf_.resize(old);  // what was buffered before stays for the next read
        throw;
    }
    rbuf_.resize(old + n);
    return n;
}

std::string SocketFile::take(std::size_t n) {
    n = std::min(n, buffered());
    std::string out = rbuf_.substr(rpos_, n);
    rpos_ += n;
    return out;
}

std::string SocketFile::read(std::optional<std::size_t> size) {
    check_readable("read");
    if (!size) {
        while (fill(kDefaultBufferSize) > 0) {
        }
        return take(buffered());
    }
    if (buffer_size_ == 0 && buffered() == 0 && *size > 0) fill(*size);  // raw: one recv
    while (buffered() < *size && buffer_size_ != 0) {
        if (fill(*size - buffered()) == 0) break;
    }
    return take(*size);
}

std::string SocketFile::readline(std::optional<std::size_t> limit) {
    check_readable("readline");
    std::size_t max = limit.value_or(std::string::npos);
    std::size_t scanned = 0;  // bytes of the buffer already searched for '\n'
    for (;;) {
        std::size_t end = rbuf_.find('\n', rpos_ + scanned);
        if (end != std::string::npos && end - rpos_ < max) return take(end - rpos_ + 1);
        scanned = buffered();
        if (scanned >= max) return take(max);
        // Unbuffered, one byte at a time, so that nothing past the newline is taken from the socket.
        if (fill(buffer_size_ == 0 ? 1 : std::min(max - scanned, buffer_size_)) == 0) return take(buffered());
    }
}

std::size_t SocketFile::write(std::string_view data) {
    check_open("write");
    if (!writing_) raise_os_error(EBADF, "write: File not open for writing");
    wbuf_.append(data);
    if (wbuf_.size() >= std::max<std::size_t>(buffer_size_, 1)) flush();
    return data.size();
}

void SocketFile::flush() {
    check_open("flush");
    // send() rather than sendall(): after an error, exactly what was not sent stays buffered.
    std::size_t sent = 0;
    try {
        while (sent < wbuf_.size()) sent += sock_.send(std::string_view(wbuf_).substr(sent));
    } catch (...) {
        wbuf_.erase(0, sent);
        throw;
    }
    wbuf_.clear();
}

void SocketFile::close() {
    if (closed()) return;
    try {
        if (writing_) flush();
    } catch (...) {
        sock_.close();
        throw;
    }
    sock_.close();
}

}  // namespace tulip::socket
