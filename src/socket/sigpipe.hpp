// Keeping sendfile(2) from raising SIGPIPE (it has no MSG_NOSIGNAL): Socket::sendfile and the
// loop's sock_sendfile hold a SigpipeBlocked around each call.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <cerrno>
#include <ctime>

namespace tulip::socket::detail {

// While it lives, SIGPIPE is blocked in this thread. A SIGPIPE that an EPIPE left pending (it is
// sent to the thread) is taken back before the mask is restored, unless one was already pending
// before we started.
class SigpipeBlocked {
public:
    SigpipeBlocked() {
        sigemptyset(&pipe_);
        sigaddset(&pipe_, SIGPIPE);
        ::pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
        sigset_t pending;
        sigpending(&pending);
        was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    }
    ~SigpipeBlocked() {
        if (got_epipe_ && !was_pending_) {
            ::timespec zero{};
            while (::sigtimedwait(&pipe_, nullptr, &zero) < 0 && errno == EINTR) {
            }
        }
        ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    }
    SigpipeBlocked(const SigpipeBlocked&) = delete;
    SigpipeBlocked& operator=(const SigpipeBlocked&) = delete;
    void saw_epipe() { got_epipe_ = true; }

private:
    sigset_t pipe_{};
    sigset_t old_{};
    bool was_pending_ = false;
    bool got_epipe_ = false;
};

}  // namespace tulip::socket::detail
