// Display the current date with call_later() (Python 3.6, asyncio "Base Event Loop" examples).
//
// Python prints the date every second for about five seconds, stopping once the next tick would
// pass an end time. Here it is 5 ticks of 0.1 s, counted rather than timed, so that the example
// stays fast and prints the same number of lines however loaded the machine is.
#include <tulip/asyncio.hpp>

#include <chrono>
#include <cstdio>
#include <ctime>

using namespace std::chrono_literals;
namespace asyncio = tulip::asyncio;

// Python's print(datetime.datetime.now()): "2017-01-31 12:34:56.789012", local time.
void print_now() {
    auto now = std::chrono::system_clock::now();
    std::time_t seconds = std::chrono::system_clock::to_time_t(now);
    auto micros = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()) % 1s;
    std::tm local{};
    localtime_r(&seconds, &local);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &local);
    std::printf("%s.%06lld\n", text, static_cast<long long>(micros.count()));
}

void display_date(int ticks_left, asyncio::EventLoop& loop) {
    print_now();
    if (ticks_left > 1) {
        loop.call_later(0.1, display_date, ticks_left - 1, std::ref(loop));
    } else {
        loop.stop();
    }
}

int main() {
    asyncio::EventLoop& loop = asyncio::get_event_loop();

    // Schedule the first call to display_date()
    loop.call_soon(display_date, 5, std::ref(loop));

    // Blocking call interrupted by loop.stop()
    loop.run_forever();
    loop.close();
}
