// W3C Trace Context ids: parsing and writing `traceparent`, and making new ids.
#include <chrono>
#include <random>
#include <thread>

#include "common/clock.hpp"
#include "common/hex.hpp"
#include "gatehouse/client/envelope.hpp"
#include "gatehouse/tracing.hpp"
#include "tracing/span_ids.hpp"

namespace gatehouse {
namespace {

template <std::size_t N>
void read_hex(const char* p, std::array<std::uint8_t, N>& out) noexcept {
    for (std::size_t i = 0; i < N; ++i) {
        out[i] = static_cast<std::uint8_t>(detail::hex_value(p[2 * i]) * 16 +
                                           detail::hex_value(p[2 * i + 1]));
    }
}

template <std::size_t N>
void write_hex(const std::array<std::uint8_t, N>& bytes, char* out) noexcept {
    for (std::size_t i = 0; i < N; ++i) {
        out[2 * i] = detail::hex_digits_lower[bytes[i] >> 4];
        out[2 * i + 1] = detail::hex_digits_lower[bytes[i] & 0x0f];
    }
}

// splitmix64: a fast generator with 8 bytes of state, per thread, so that ids cost no lock.
// Its seed mixes the system's random device with the thread's id and the clock, so threads
// and processes draw different sequences; ids need to be unique, not unpredictable.
std::uint64_t next_random() noexcept {
    thread_local std::uint64_t state = [] {
        auto seed =
            static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
        seed ^= std::hash<std::thread::id>{}(std::this_thread::get_id()) * 0x9e3779b97f4a7c15ULL;
        try {
            std::random_device device;
            seed ^= (std::uint64_t{device()} << 32) | device();
        } catch (...) {  // no random device: the clock and the thread id must do
        }
        return seed;
    }();
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void fill_random(std::uint8_t* out, std::size_t n) noexcept {
    bool nonzero = false;
    while (!nonzero) {  // an all-zero id means "none" (W3C: invalid)
        for (std::size_t i = 0; i < n; i += 8) {
            auto r = next_random();
            for (std::size_t j = i; j < i + 8 && j < n; ++j, r >>= 8) {
                out[j] = static_cast<std::uint8_t>(r);
                nonzero = nonzero || out[j] != 0;
            }
        }
    }
}

}  // namespace

std::optional<trace_context> trace_context::parse(std::string_view traceparent) noexcept {
    if (!client::is_valid_traceparent(traceparent)) return std::nullopt;
    trace_context out;
    read_hex(traceparent.data() + 3, out.trace);
    read_hex(traceparent.data() + 36, out.span);
    out.flags = static_cast<std::uint8_t>(detail::hex_value(traceparent[53]) * 16 +
                                          detail::hex_value(traceparent[54]));
    return out;
}

std::string trace_context::traceparent() const {
    std::string out(55, '-');
    out[0] = '0';
    out[1] = '0';
    write_hex(trace, out.data() + 3);
    write_hex(span, out.data() + 36);
    out[53] = detail::hex_digits_lower[flags >> 4];
    out[54] = detail::hex_digits_lower[flags & 0x0f];
    return out;
}

void span::add_event(std::string event_name) {
    events.push_back({std::move(event_name), detail::unix_now_ns()});
}

namespace detail {

trace_id new_trace_id() noexcept {
    trace_id out;
    fill_random(out.data(), out.size());
    return out;
}

span_id new_span_id() noexcept {
    span_id out;
    fill_random(out.data(), out.size());
    return out;
}

}  // namespace detail
}  // namespace gatehouse
