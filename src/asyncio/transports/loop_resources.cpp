#include "loop_resources.hpp"

namespace tulip::asyncio::detail {

void LoopResources::add(LoopResource& r) noexcept {
    if (r.linked_) return;
    r.prev_ = nullptr;
    r.next_ = head_;
    if (head_) head_->prev_ = &r;
    head_ = &r;
    r.linked_ = true;
    ++count_;
}

void LoopResources::remove(LoopResource& r) noexcept {
    if (!r.linked_) return;
    if (r.prev_) r.prev_->next_ = r.next_;
    else head_ = r.next_;
    if (r.next_) r.next_->prev_ = r.prev_;
    r.prev_ = r.next_ = nullptr;
    r.linked_ = false;
    --count_;
}

void LoopResources::close_all() noexcept {
    // Closing one may close others (a server's connections): take the head each time.
    while (head_) {
        LoopResource* r = head_;
        remove(*r);
        r->loop_closing();
    }
}

}  // namespace tulip::asyncio::detail
