#include "write_buffer.hpp"

namespace tulip::asyncio::detail {

void WriteBuffer::append(std::span<const std::byte> data) {
    const char* p = reinterpret_cast<const char*>(data.data());
    if (chunks_.size() > head_ && chunks_.back().size() + data.size() <= kCoalesce &&
        !(chunks_.size() == head_ + 1 && offset_ > 0)) {
        chunks_.back().append(p, data.size());
    } else {
        chunks_.emplace_back(p, data.size());
    }
    size_ += data.size();
}

int WriteBuffer::gather(iovec* iov, int max) const noexcept {
    int n = 0;
    for (std::size_t i = head_; i < chunks_.size() && n < max; ++i, ++n) {
        const Chunk& c = chunks_[i];
        std::size_t skip = (i == head_) ? offset_ : 0;
        iov[n].iov_base = const_cast<char*>(c.data() + skip);
        iov[n].iov_len = c.size() - skip;
    }
    return n;
}

void WriteBuffer::consume(std::size_t n) noexcept {
    size_ -= n;
    while (n > 0) {
        std::size_t left = chunks_[head_].size() - offset_;
        if (n < left) {
            offset_ += n;
            return;
        }
        n -= left;
        Chunk().swap(chunks_[head_]);
        ++head_;
        offset_ = 0;
    }
    if (size_ == 0) {
        clear();
    } else if (head_ >= 32 && head_ * 2 >= chunks_.size()) {
        // Compact now and then rather than erase at the front on every send.
        chunks_.erase(chunks_.begin(), chunks_.begin() + static_cast<std::ptrdiff_t>(head_));
        head_ = 0;
    }
}

void WriteBuffer::take(WriteBuffer& from) noexcept {
    clear();
    chunks_.swap(from.chunks_);
    std::swap(head_, from.head_);
    std::swap(offset_, from.offset_);
    std::swap(size_, from.size_);
}

void WriteBuffer::clear() noexcept {
    decltype(chunks_)().swap(chunks_);
    head_ = offset_ = size_ = 0;
}

}  // namespace tulip::asyncio::detail
