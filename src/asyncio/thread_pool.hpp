// The loop's default executor (Python's ThreadPoolExecutor): threads are started on demand, up
// to min(32, cores + 4), and joined by shutdown().
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tulip::asyncio::detail {

class ThreadPool {
public:
    explicit ThreadPool(std::size_t max_workers);
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;
    ~ThreadPool() { shutdown(); }

    // Throws RuntimeError after shutdown().
    void submit(std::function<void()> job);
    // Lets the queued jobs finish, then joins every thread.
    void shutdown();

    static std::size_t default_max_workers();

private:
    void worker();

    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::function<void()>> jobs_;
    std::vector<std::thread> threads_;
    std::size_t max_workers_;
    std::size_t idle_ = 0;
    bool stopping_ = false;
};

}  // namespace tulip::asyncio::detail
