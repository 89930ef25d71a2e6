// The one ready-queue node that a completion-backend I/O helper (NativeOps: StreamOps, AcceptOps,
// DatagramOps) allocates with itself and reuses for every dispatch, so that an event costs no
// allocation: when the loop runs it, it calls owner->dispatch(). drop_callback() (the loop
// closing) detaches the owner.
#pragma once

#include <string>

#include "tulip/asyncio/detail/handle_node.hpp"

namespace tulip::asyncio::detail {

template <class Owner>
class DispatchNode final : public HandleNode {
public:
    DispatchNode(Owner* owner, const char* what) : owner_(owner), what_(what) {}
    std::string describe() const override { return what_; }

protected:
    void invoke() override {
        if (owner_) owner_->dispatch();
    }
    void drop_callback() noexcept override { owner_ = nullptr; }

private:
    Owner* owner_;
    const char* what_;
};

}  // namespace tulip::asyncio::detail
