// Something the loop keeps alive and must shut down when it closes: an open transport, a
// server. The loop holds them on an intrusive list (no allocation), so that loop.close() with a
// connection still open leaves no fd and no backend operation behind.
#pragma once

namespace tulip::asyncio::detail {

class LoopResource {
public:
    LoopResource() = default;
    LoopResource(const LoopResource&) = delete;
    LoopResource& operator=(const LoopResource&) = delete;

    // The loop is closing: release the fd and backend operations now, call no user code, and
    // unlink (LoopResources::remove). The object may be destroyed by this call.
    virtual void loop_closing() noexcept = 0;

protected:
    ~LoopResource() = default;

private:
    friend class LoopResources;
    LoopResource* prev_ = nullptr;
    LoopResource* next_ = nullptr;
    bool linked_ = false;
};

}  // namespace tulip::asyncio::detail
