#include "journal_bus.hpp"

#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>

#include "gatehouse/errc.hpp"

namespace standalone {

namespace {

std::string hex(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (const char c : bytes) {
        const auto b = static_cast<unsigned char>(c);
        out.push_back(digits[b >> 4]);
        out.push_back(digits[b & 0xF]);
    }
    return out;
}

}  // namespace

journal_bus::journal_bus(const std::string& path, std::size_t capacity, std::string gateway_id)
    : gateway_id_(std::move(gateway_id)), capacity_(capacity) {
    // Entry numbers continue where the journal ends, so they stay unique across restarts.
    std::ifstream existing(path);
    for (std::string line; std::getline(existing, line);) ++next_number_;
    journal_.open(path, std::ios::app);
    writable_ = journal_.good();
    worker_ = std::thread([this] { run(); });
}

journal_bus::~journal_bus() {
    {
        std::lock_guard<std::mutex> lock(queue_mutex_);
        stopping_ = true;
    }
    queue_changed_.notify_all();
    worker_.join();
    // Every append hears back exactly once, also those the worker never reached.
    for (auto& j : queue_) j.done(gatehouse::errc::bus_unavailable, {});
}

void journal_bus::serve(service s) { service_ = std::move(s); }

void journal_bus::append(const gatehouse::envelope& command, gatehouse::append_handler done) {
    {
        std::lock_guard<std::mutex> lock(queue_mutex_);
        if (writable_ && !stopping_ && queue_.size() < capacity_) {
            queue_.push_back({command, std::move(done)});  // `command` is only ours during the call
            queue_changed_.notify_one();
            return;
        }
    }
    done(gatehouse::errc::bus_unavailable, {});
}

void journal_bus::start(gatehouse::update_handler on_message) {
    std::lock_guard<std::mutex> lock(listener_mutex_);
    on_message_ = std::move(on_message);
}

void journal_bus::stop() {
    std::lock_guard<std::mutex> lock(listener_mutex_);
    on_message_ = nullptr;
}

void journal_bus::run() {
    for (;;) {
        job j;
        {
            std::unique_lock<std::mutex> lock(queue_mutex_);
            queue_changed_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (stopping_) return;
            j = std::move(queue_.front());
            queue_.pop_front();
        }
        const std::uint64_t number = next_number_;
        if (!write_line(number, j.command)) {
            writable_ = false;  // /ready turns 503; later appends are refused at once
            j.done(gatehouse::errc::bus_unavailable, {});
            continue;
        }
        ++next_number_;
        ++written_;
        j.done({}, std::to_string(number));  // the ack's stream_id

        if (!service_) continue;
        for (const std::string& message : service_(number, j.command)) {
            std::lock_guard<std::mutex> lock(listener_mutex_);
            if (on_message_) on_message_(message);
        }
    }
}

bool journal_bus::write_line(std::uint64_t number, const gatehouse::envelope& command) {
    const auto& origin = command.origin;
    nlohmann::json line = {
        {"entry", number},
        {"type", command.type},
        {"codec", gatehouse::bus_codec_name(command.format)},
        {"correlation_id", command.correlation_id},
        {"player_id", origin.player_id},
        {"connection_id", origin.connection_id},
        {"client", std::string(gatehouse::bus_client_name(origin.client))},
        {"ts_ms", origin.accepted_at_ms},
        {"gateway_id", gateway_id_},
    };
    // docs/protocol.md 6.8's optional field, as Redis writes it beside section 4's.
    if (!command.traceparent.empty()) line["traceparent"] = command.traceparent;
    // JSON payloads stay readable; MessagePack and Protobuf bytes are kept exactly, as hex.
    auto payload = command.format == gatehouse::payload_format::json
                       ? nlohmann::json::parse(command.payload, nullptr, /*allow_exceptions=*/false)
                       : nlohmann::json(nlohmann::json::value_t::discarded);
    if (payload.is_discarded()) {
        line["payload_hex"] = hex(command.payload);
    } else {
        line["payload"] = std::move(payload);
    }
    // flush() hands the line to the kernel: it survives this process crashing, not the machine
    // (a bus that promises more would fsync, or batch and fsync, before acking).
    journal_ << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    journal_.flush();
    return journal_.good();
}

}  // namespace standalone
