// tulip's main demo: a few seconds of what the library does today.
//
// Tasks with timers, a producer/consumer pipeline, cancellation, work on a thread pool, and the
// backend in use. Exits 0 when every part behaved.
#include <tulip/asyncio.hpp>

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

using namespace std::chrono_literals;
namespace asyncio = tulip::asyncio;

namespace {

asyncio::Coro<std::string> fetch(std::string name, double seconds) {
    co_await asyncio::sleep(seconds);
    co_return name + " after " + std::to_string(static_cast<int>(seconds * 1000)) + " ms";
}

asyncio::Coro<> ticker(int& ticks) {
    for (;;) {
        co_await asyncio::sleep(50ms);
        ++ticks;
    }
}

asyncio::Coro<> produce(asyncio::Queue<int>& queue, int first, int count) {
    for (int item = first; item < first + count; ++item) co_await queue.put(item);  // waits while full
}

asyncio::Coro<> consume(asyncio::Queue<int>& queue, std::vector<int>& delivered) {
    for (;;) {
        int item = co_await queue.get();
        delivered.push_back(item);
        queue.task_done();
        co_await asyncio::sleep(0);  // let the other consumer have a turn
    }
}

asyncio::Coro<int> main_coro() {
    auto& loop = asyncio::get_running_loop();
    std::printf("tulip demo: event loop on the %.*s backend\n", static_cast<int>(loop.backend_name().size()),
                loop.backend_name().data());

    // 1. Tasks run concurrently: three sleeps of 300, 200 and 100 ms take ~300 ms in all.
    double start = loop.time();
    auto a = asyncio::create_task(fetch("alpha", 0.3));
    auto b = asyncio::create_task(fetch("beta", 0.2));
    auto c = asyncio::create_task(fetch("gamma", 0.1));
    for (auto* t : {&a, &b, &c}) std::printf("  %s\n", (co_await *t).c_str());
    double took = loop.time() - start;
    std::printf("three tasks finished in %.0f ms (concurrently, not 600 ms)\n", took * 1000);

    // 2. Cancellation: a ticker task is cancelled and sees CancelledError.
    int ticks = 0;
    auto tick = asyncio::create_task(ticker(ticks));
    co_await asyncio::sleep(280ms);
    tick.cancel("demo is done with it");
    try {
        co_await tick;
    } catch (const asyncio::CancelledError& e) {
        std::printf("ticker cancelled after %d ticks (message: \"%s\")\n", ticks, e.message().c_str());
    }

    // 3. Blocking work goes to the default thread pool, the loop stays free.
    long sum = co_await loop.run_in_executor([] {
        long s = 0;
        for (long i = 1; i <= 1'000'000; ++i) s += i;
        return s;
    });
    std::printf("sum computed on a worker thread: %ld\n", sum);

    // 4. A pipeline: two producers and two consumers share a queue of at most 4 items, so the
    //    producers wait whenever the consumers fall behind; join() waits until every item is
    //    processed, then the consumers (blocked in get()) are cancelled.
    asyncio::Queue<int> queue(4);
    std::vector<int> delivered;
    std::vector<asyncio::Task<>> consumers{asyncio::create_task(consume(queue, delivered)),
                                           asyncio::create_task(consume(queue, delivered))};
    auto producer_a = asyncio::create_task(produce(queue, 0, 20));
    auto producer_b = asyncio::create_task(produce(queue, 20, 20));
    co_await producer_a;
    co_await producer_b;
    co_await queue.join();
    for (auto& consumer : consumers) consumer.cancel();
    for (auto& consumer : consumers) {
        try {
            co_await consumer;
        } catch (const asyncio::CancelledError&) {
        }
    }
    std::vector<int> expected(40);
    std::iota(expected.begin(), expected.end(), 0);
    std::sort(delivered.begin(), delivered.end());
    bool all_delivered = delivered == expected;
    std::printf("queue: 2 producers -> 2 consumers, %zu items, %s\n", delivered.size(),
                all_delivered ? "all delivered" : "ITEMS LOST OR DUPLICATED");

    bool ok = took < 0.55 && tick.cancelled() && ticks >= 3 && sum == 500000500000L && all_delivered;
    std::printf("%s\n", ok ? "demo OK" : "demo FAILED");
    co_return ok ? 0 : 1;
}

}  // namespace

int main() { return asyncio::run(main_coro()); }
