// An in-memory Transport for testing protocols and streams without sockets: it records what is
// written, and the test plays the peer and the kernel by hand (deliver data or EOF, fill and
// drain the write buffer, lose the connection). It keeps the transport contract of
// transports.hpp: close() and abort() end with connection_lost(null) on a later loop iteration,
// connection_lost is called once, and the protocol is dropped after it.
#pragma once

#include <any>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "tulip/asyncio.hpp"

namespace tulip::testing {

class FakeTransport : public asyncio::Transport {
public:
    using asyncio::WriteTransport::write;
    using asyncio::WriteTransport::writelines;

    // Makes a transport for `protocol` and calls its connection_made().
    static std::shared_ptr<FakeTransport> connect(std::shared_ptr<asyncio::Protocol> protocol) {
        auto t = std::make_shared<FakeTransport>();
        t->protocol_ = protocol;
        protocol->connection_made(*t);
        return t;
    }

    // --- what the transport saw -----------------------------------------------------------
    std::string written;
    bool eof_written = false;
    int pause_reading_calls = 0;
    int resume_reading_calls = 0;
    bool aborted = false;
    bool lost = false;  // connection_lost() was delivered

    // --- the peer and the kernel, played by the test --------------------------------------
    // Bytes from the peer (whether or not reading is paused: check is_reading() first when it
    // matters, as a real transport would not read while paused).
    void receive(std::string_view data) { stream_protocol().data_received(data); }
    // The peer shut down its side; closes the transport unless the protocol keeps it open.
    void receive_eof() {
        if (!stream_protocol().eof_received()) close();
    }
    // The write buffer passes its high-water mark / drains below its low-water mark.
    void fill_write_buffer() {
        if (write_paused_) return;
        write_paused_ = true;
        protocol_->pause_writing();
    }
    void drain_write_buffer() {
        if (!write_paused_) return;
        write_paused_ = false;
        protocol_->resume_writing();
    }
    // The connection fails now (or ends, with a null exc): connection_lost(exc) at once.
    void lose(std::exception_ptr exc) {
        closing_ = true;
        finish(std::move(exc));
    }

    // --- BaseTransport --------------------------------------------------------------------
    void close() override {
        if (closing_) return;
        closing_ = true;
        schedule_finish();
    }
    bool is_closing() const noexcept override { return closing_; }
    std::shared_ptr<asyncio::BaseProtocol> get_protocol() const override { return protocol_; }
    void set_protocol(std::shared_ptr<asyncio::BaseProtocol> protocol) override { protocol_ = std::move(protocol); }
    std::any get_extra_info(std::string_view name) const override {
        if (name == "peername") return *peername();
        if (name == "sockname") return *sockname();
        return {};
    }
    std::optional<socket::Address> peername() const override { return socket::Address::ipv4("127.0.0.1", 4242); }
    std::optional<socket::Address> sockname() const override { return socket::Address::ipv4("127.0.0.1", 2424); }
    const socket::Socket* socket() const noexcept override { return nullptr; }

    // --- ReadTransport --------------------------------------------------------------------
    bool is_reading() const noexcept override { return reading_; }
    void pause_reading() override {
        ++pause_reading_calls;
        reading_ = false;
    }
    void resume_reading() override {
        ++resume_reading_calls;
        reading_ = true;
    }

    // --- WriteTransport -------------------------------------------------------------------
    void write(std::span<const std::byte> data) override {
        check_writable();
        if (lost) return;
        written.append(reinterpret_cast<const char*>(data.data()), data.size());
    }
    void writelines(std::span<const std::string_view> lines) override {
        check_writable();
        if (lost) return;
        for (std::string_view l : lines) written += l;
    }
    void write_eof() override {
        check_writable();
        eof_written = true;
    }
    bool can_write_eof() const noexcept override { return true; }
    void abort() override {
        aborted = true;
        if (closing_ && lost) return;
        bool was_closing = std::exchange(closing_, true);
        if (!was_closing) schedule_finish();
    }
    std::size_t get_write_buffer_size() const noexcept override { return 0; }
    std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept override { return {16384, 65536}; }
    void set_write_buffer_limits(std::optional<std::size_t>, std::optional<std::size_t>) override {}

private:
    asyncio::Protocol& stream_protocol() { return dynamic_cast<asyncio::Protocol&>(*protocol_); }

    void check_writable() const {
        if (closing_ && !lost) throw RuntimeError("transport is closing");
        if (eof_written) throw RuntimeError("write after write_eof()");
    }
    void schedule_finish() {
        auto self = std::dynamic_pointer_cast<FakeTransport>(shared_from_this());
        asyncio::get_event_loop().call_soon([self] { self->finish(nullptr); });
    }
    // connection_lost once, then the protocol goes (the contract of transports.hpp).
    void finish(std::exception_ptr exc) {
        if (lost) return;
        lost = true;
        auto protocol = std::exchange(protocol_, nullptr);
        if (protocol) protocol->connection_lost(std::move(exc));
    }

    std::shared_ptr<asyncio::BaseProtocol> protocol_;
    bool reading_ = true;
    bool closing_ = false;
    bool write_paused_ = false;
};

}  // namespace tulip::testing
