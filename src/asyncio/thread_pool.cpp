#include "thread_pool.hpp"

#include <algorithm>

#include "tulip/exceptions.hpp"

namespace tulip::asyncio::detail {

ThreadPool::ThreadPool(std::size_t max_workers) : max_workers_(std::max<std::size_t>(1, max_workers)) {}

std::size_t ThreadPool::default_max_workers() {
    return std::min<std::size_t>(32, std::max(1u, std::thread::hardware_concurrency()) + 4);
}

void ThreadPool::submit(std::function<void()> job) {
    std::unique_lock lock(mutex_);
    if (stopping_) throw RuntimeError("cannot schedule new futures after shutdown");
    jobs_.push_back(std::move(job));
    if (idle_ == 0 && threads_.size() < max_workers_) {
        threads_.emplace_back([this] { worker(); });
    } else {
        lock.unlock();
        wake_.notify_one();
    }
}

void ThreadPool::shutdown() {
    std::vector<std::thread> threads;
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        threads.swap(threads_);
    }
    wake_.notify_all();
    for (auto& t : threads) t.join();
}

void ThreadPool::worker() {
    std::unique_lock lock(mutex_);
    for (;;) {
        if (!jobs_.empty()) {
            auto job = std::move(jobs_.front());
            jobs_.pop_front();
            lock.unlock();
            job();  // jobs catch their own exceptions (run_in_executor delivers them)
            job = nullptr;
            lock.lock();
            continue;
        }
        if (stopping_) return;
        ++idle_;
        wake_.wait(lock);
        --idle_;
    }
}

}  // namespace tulip::asyncio::detail
