#include "signals.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <string>

#include "tulip/asyncio/events.hpp"

namespace tulip::asyncio::detail {
namespace {

// Per signal, the write end of the pipe of the loop that owns it (-1: none).
std::atomic<int> g_signal_pipe[NSIG];
struct InitPipes {
    InitPipes() {
        for (auto& fd : g_signal_pipe) fd.store(-1);
    }
} g_init_pipes;

extern "C" void tulip_signal_handler(int sig) {
    int saved_errno = errno;
    int fd = g_signal_pipe[sig].load(std::memory_order_relaxed);
    if (fd >= 0) {
        unsigned char byte = static_cast<unsigned char>(sig);
        // A full pipe already holds a wake-up; dropping the byte loses only a duplicate.
        [[maybe_unused]] auto r = ::write(fd, &byte, 1);
    }
    errno = saved_errno;
}

}  // namespace

SignalDispatcher::SignalDispatcher(EventLoop& loop, Backend& backend) : loop_(loop), backend_(backend) {
    int fds[2];
    if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) raise_last_os_error("pipe2 (signal wake-up pipe)");
    read_fd_ = fds[0];
    write_fd_ = fds[1];
    op_.kind = OpKind::poll;
    op_.fd = read_fd_;
    op_.poll_events = kPollIn;
    op_.complete = &SignalDispatcher::on_pipe_readable;
    op_.owner = this;
    try {
        backend_.submit(op_);
        watching_ = true;
    } catch (...) {
        ::close(read_fd_);
        ::close(write_fd_);
        throw;
    }
}

SignalDispatcher::~SignalDispatcher() {
    shutdown();
    ::close(read_fd_);
    ::close(write_fd_);
}

bool SignalDispatcher::shutdown() noexcept {
    while (!handlers_.empty()) remove(handlers_.begin()->first);
    if (!watching_) return true;
    watching_ = false;
    return backend_.cancel(op_);
}

void SignalDispatcher::add(int sig, HandleNode* node) {
    Ref<HandleNode> handle(node);
    if (sig <= 0 || sig >= NSIG) throw OSError(EINVAL, "add_signal_handler: invalid signal number " + std::to_string(sig));
    if (auto it = handlers_.find(sig); it != handlers_.end()) {
        it->second.handle->cancel();
        it->second.handle = std::move(handle);
        return;
    }
    int expected = -1;
    if (!g_signal_pipe[sig].compare_exchange_strong(expected, write_fd_))
        throw RuntimeError("add_signal_handler: signal " + std::to_string(sig) +
                           " is already handled by another event loop");
    struct sigaction action {};
    action.sa_handler = &tulip_signal_handler;
    sigemptyset(&action.sa_mask);
    // SA_RESTART keeps the loop's own blocking calls out of EINTR where the kernel allows.
    action.sa_flags = SA_RESTART;
    Installed installed{std::move(handle), {}};
    if (::sigaction(sig, &action, &installed.previous) < 0) {
        int err = errno;
        g_signal_pipe[sig].store(-1);
        raise_os_error(err, "add_signal_handler: sigaction(" + std::to_string(sig) + ")");
    }
    handlers_.emplace(sig, std::move(installed));
}

bool SignalDispatcher::remove(int sig) {
    auto it = handlers_.find(sig);
    if (it == handlers_.end()) return false;
    ::sigaction(sig, &it->second.previous, nullptr);
    g_signal_pipe[sig].store(-1);
    it->second.handle->cancel();
    handlers_.erase(it);
    return true;
}

void SignalDispatcher::on_pipe_readable(Operation& op, int events) noexcept {
    if (events < 0) return;  // the final completion after shutdown()
    static_cast<PipeOp&>(op).owner->drain();
}

void SignalDispatcher::drain() noexcept {
    unsigned char buffer[64];
    for (;;) {
        ssize_t n = ::read(read_fd_, buffer, sizeof buffer);
        if (n <= 0) return;
        for (ssize_t i = 0; i < n; ++i) {
            auto it = handlers_.find(buffer[i]);
            if (it != handlers_.end() && !it->second.handle->cancelled())
                loop_.schedule_handle(*it->second.handle);
        }
    }
}

}  // namespace tulip::asyncio::detail
