#include "loop_fixture.hpp"

#include <dirent.h>

#include <exception>

namespace tulip::testing {

std::size_t open_fd_count() {
    std::size_t n = 0;
    if (DIR* d = ::opendir("/proc/self/fd")) {
        while (::readdir(d)) ++n;
        ::closedir(d);
    }
    return n;
}

std::string describe(const asyncio::ExceptionContext& context) {
    std::string text = context.message;
    if (context.exception) {
        try {
            std::rethrow_exception(context.exception);
        } catch (const std::exception& e) {
            text += std::string(": ") + e.what();
        } catch (const asyncio::CancelledError& e) {
            text += ": CancelledError(" + e.message() + ")";
        } catch (...) {
            text += ": (unknown exception)";
        }
    }
    return text;
}

LoopFixture::LoopFixture(asyncio::LoopOptions options)
    : fds_at_start_(open_fd_count()), loop_(std::make_unique<asyncio::EventLoop>(std::move(options))) {
    loop_->set_exception_handler(
        [this](asyncio::EventLoop&, const asyncio::ExceptionContext& context) { handler_calls_.push_back(context); });
    asyncio::set_event_loop(loop_.get());
}

void LoopFixture::check_nothing_left() {
    for (auto& call : handler_calls_) UNSCOPED_INFO("exception handler was called: " << describe(call));
    CHECK(handler_calls_.empty());
    handler_calls_.clear();
}

LoopFixture::~LoopFixture() noexcept(false) {
    asyncio::set_event_loop(nullptr);
    if (std::uncaught_exceptions()) return;
    // Tasks still pending at the end of a test are a leak of the test itself.
    auto stats = loop_->stats();
    CHECK(stats.live_tasks == 0);
    loop_->close();
    stats = loop_->stats();
    CHECK(stats.ready == 0);
    CHECK(stats.timers == 0);
    CHECK(stats.io_watchers == 0);
    CHECK(stats.pending_ops == 0);
    check_nothing_left();
    loop_.reset();
    CHECK(open_fd_count() == fds_at_start_);
}

}  // namespace tulip::testing
