#include "tulip/asyncio/exceptions.hpp"

#include <string>

namespace tulip::asyncio {

namespace {
std::string incomplete_read_message(std::size_t got, std::size_t expected, bool expected_known) {
    std::string msg = std::to_string(got) + " bytes read on a total of ";
    msg += expected_known ? std::to_string(expected) : std::string("undefined");
    msg += " expected bytes";
    return msg;
}
}  // namespace

IncompleteReadError::IncompleteReadError(std::string partial_, std::size_t expected_,
                                         bool expected_known_)
    : Error(incomplete_read_message(partial_.size(), expected_, expected_known_)),
      partial(std::move(partial_)),
      expected(expected_),
      expected_known(expected_known_) {}

}  // namespace tulip::asyncio
