#include <algorithm>
#include <utility>

#include "reader_state.hpp"

namespace tulip::asyncio::detail {

void StreamBuffer::append(std::string_view bytes) {
    if (bytes.empty()) return;
    if (start_ == data_.size()) {
        data_.clear();
        start_ = 0;
    } else if (start_ > data_.size() / 2) {
        // More than half of the storage is consumed bytes: drop them before growing.
        data_.erase(0, start_);
        start_ = 0;
    }
    data_.append(bytes);
}

void StreamBuffer::prepend(std::string_view bytes) {
    if (bytes.size() <= start_) {
        start_ -= bytes.size();
        data_.replace(start_, bytes.size(), bytes);
    } else {
        data_.insert(start_, bytes);
    }
}

std::string StreamBuffer::take(std::size_t n) {
    n = std::min(n, size());
    std::string out;
    if (start_ == 0 && n == data_.size()) {
        out = std::move(data_);
        data_.clear();
        return out;
    }
    out.assign(data_, start_, n);
    discard(n);
    return out;
}

void StreamBuffer::discard(std::size_t n) noexcept {
    start_ += std::min(n, size());
    if (start_ == data_.size()) clear();
}

void StreamBuffer::clear() noexcept {
    data_.clear();
    start_ = 0;
}

}  // namespace tulip::asyncio::detail
