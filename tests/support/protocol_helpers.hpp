// Helpers of the transport tests: a protocol that records what happens to it and lets a test
// wait (with a generous timeout, only to catch hangs) until a condition holds.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "tulip/asyncio.hpp"

namespace tulip::testing {

// Bytes that differ along the stream and from seed to seed, so that a lost, mixed-up or
// reordered piece shows (xorshift32).
inline std::string patterned_bytes(std::size_t size, std::uint32_t seed) {
    std::string s(size, '\0');
    std::uint32_t x = seed * 2654435761u + 1;
    for (auto& c : s) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        c = static_cast<char>(x);
    }
    return s;
}

// Echoes everything back; on the peer's EOF it closes once everything is written back
// (eof_received's default false closes the transport, and close() flushes first).
class EchoBack final : public asyncio::Protocol {
public:
    void connection_made(asyncio::Transport& t) override { transport_ = &t; }
    void data_received(std::string_view data) override { transport_->write(data); }

private:
    asyncio::Transport* transport_ = nullptr;
};

// Wakes a waiting test each time something changes.
class Changes {
public:
    void notify() {
        if (waiter_ && !waiter_->done()) waiter_->set_result();
        waiter_.reset();
    }
    // Returns once pred() holds; TimeoutError after 30 s without it (a hang).
    asyncio::Coro<void> until(std::function<bool()> pred) {
        while (!pred()) {
            if (!waiter_) waiter_ = asyncio::get_running_loop().create_future<void>();
            asyncio::Future<void> w = *waiter_;
            co_await asyncio::wait_for(w, 30.0);
        }
    }

private:
    std::optional<asyncio::Future<void>> waiter_;
};

class Recorder : public asyncio::Protocol {
public:
    asyncio::Transport* transport = nullptr;
    std::string data;
    int made = 0;
    int eofs = 0;
    int lost = 0;
    std::exception_ptr lost_exc;
    bool keep_open_on_eof = false;
    std::string events;  // 'P' for pause_writing, 'R' for resume_writing
    std::function<void(std::string_view)> on_data;
    Changes changes;

    void connection_made(asyncio::Transport& t) override {
        transport = &t;
        ++made;
        changes.notify();
    }
    void data_received(std::string_view d) override {
        data += d;
        if (on_data) on_data(d);
        changes.notify();
    }
    bool eof_received() override {
        ++eofs;
        changes.notify();
        return keep_open_on_eof;
    }
    void connection_lost(std::exception_ptr exc) override {
        ++lost;
        lost_exc = exc;
        changes.notify();
    }
    void pause_writing() override {
        events += 'P';
        changes.notify();
    }
    void resume_writing() override {
        events += 'R';
        changes.notify();
    }

    asyncio::Coro<void> until(std::function<bool()> pred) { return changes.until(std::move(pred)); }
    asyncio::Coro<void> until_lost() {
        return changes.until([this] { return lost > 0; });
    }
};

// Rethrows exc and returns true if it is an E.
template <class E>
bool is_exception(std::exception_ptr exc) {
    if (!exc) return false;
    try {
        std::rethrow_exception(exc);
    } catch (const E&) {
        return true;
    } catch (...) {
        return false;
    }
}

}  // namespace tulip::testing
