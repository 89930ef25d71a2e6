#include "tulip/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace tulip {

spdlog::logger& logger() {
    static std::shared_ptr<spdlog::logger> instance = [] {
        if (auto existing = spdlog::get("tulip")) return existing;
        auto created = spdlog::stderr_color_mt("tulip");
        created->set_pattern("[%H:%M:%S.%e] [tulip] [%l] %v");
        return created;
    }();
    return *instance;
}

}  // namespace tulip
