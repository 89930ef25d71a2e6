// add_signal_handler: the C handler only writes the signal number to a pipe (the self-pipe
// trick); the loop watches the pipe's read end and runs the user's handler as a callback.
#pragma once

#include <csignal>
#include <map>

#include "../backend/backend.hpp"
#include "tulip/asyncio/detail/handle_node.hpp"
#include "tulip/asyncio/detail/ref.hpp"

namespace tulip::asyncio {
class EventLoop;
}

namespace tulip::asyncio::detail {

class SignalDispatcher {
public:
    SignalDispatcher(EventLoop& loop, Backend& backend);
    SignalDispatcher(const SignalDispatcher&) = delete;
    SignalDispatcher& operator=(const SignalDispatcher&) = delete;
    // Restores every signal's previous disposition. The loop calls shutdown() and waits for the
    // backend to release the pipe's operation before destroying the dispatcher.
    ~SignalDispatcher();
    // Removes every handler and stops watching the pipe. Returns true when the backend released
    // the watch at once; otherwise the backend completes it one last time later.
    bool shutdown() noexcept;

    // Takes a new node. Throws RuntimeError when another loop owns sig, OSError for a signal
    // that cannot be caught (SIGKILL, SIGSTOP) or is out of range.
    void add(int sig, HandleNode* node);
    bool remove(int sig);
    bool empty() const noexcept { return handlers_.empty(); }

private:
    struct Installed {
        Ref<HandleNode> handle;
        struct sigaction previous;
    };

    static void on_pipe_readable(Operation& op, int events) noexcept;
    void drain() noexcept;

    struct PipeOp : Operation {
        SignalDispatcher* owner;
    };
    PipeOp op_;
    EventLoop& loop_;
    Backend& backend_;
    int read_fd_ = -1;
    int write_fd_ = -1;
    bool watching_ = false;
    std::map<int, Installed> handlers_;
};

}  // namespace tulip::asyncio::detail
