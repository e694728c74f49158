#include "transport/ws_deflate.hpp"

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <optional>
#include <utility>

#include "http/text.hpp"

namespace gatehouse::detail {

namespace {

// --- Sec-WebSocket-Extensions (RFC 6455 9.1, with the list and token rules of RFC 9110 5.6) ---

struct extension_param {
    std::string name;
    std::optional<std::string> value;  // unquoted
};

// Reads one list of extensions at a time; a malformed element is skipped up to the next comma
// outside a quoted string, so one bad offer does not hide the good ones after it.
class extension_parser {
public:
    explicit extension_parser(std::string_view s) noexcept : s_(s) {}

    // The next well-formed element; false at the end of the value.
    bool next(std::string& name, std::vector<extension_param>& params) {
        for (;;) {
            skip_ows_and_commas();
            if (at_end()) return false;
            params.clear();
            if (parse_element(name, params)) return true;
            skip_element();
        }
    }

private:
    bool at_end() const noexcept { return i_ >= s_.size(); }
    char peek() const noexcept { return s_[i_]; }
    void skip_ows() noexcept {
        while (!at_end() && (peek() == ' ' || peek() == '\t')) ++i_;
    }
    void skip_ows_and_commas() noexcept {
        while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == ',')) ++i_;
    }
    std::string_view token() noexcept {
        const std::size_t start = i_;
        while (!at_end() && is_tchar(peek())) ++i_;
        return s_.substr(start, i_ - start);
    }
    bool quoted_string(std::string& out) {
        ++i_;  // the opening quote
        while (!at_end()) {
            const char c = s_[i_++];
            if (c == '"') return true;
            if (c == '\\') {
                if (at_end()) return false;
                out.push_back(s_[i_++]);
            } else {
                out.push_back(c);
            }
        }
        return false;
    }
    // extension = token *( OWS ";" OWS token [ OWS "=" OWS ( token / quoted-string ) ] )
    bool parse_element(std::string& name, std::vector<extension_param>& params) {
        const std::string_view n = token();
        if (n.empty()) return false;
        name.assign(n);
        for (;;) {
            skip_ows();
            if (at_end() || peek() == ',') return true;
            if (peek() != ';') return false;
            ++i_;
            skip_ows();
            const std::string_view p = token();
            if (p.empty()) return false;
            extension_param param{std::string(p), std::nullopt};
            skip_ows();
            if (!at_end() && peek() == '=') {
                ++i_;
                skip_ows();
                std::string value;
                if (!at_end() && peek() == '"') {
                    if (!quoted_string(value)) return false;
                } else {
                    const std::string_view v = token();
                    if (v.empty()) return false;
                    value.assign(v);
                }
                param.value = std::move(value);
            }
            params.push_back(std::move(param));
        }
    }
    void skip_element() noexcept {
        bool quoted = false;
        while (!at_end()) {
            const char c = s_[i_];
            if (quoted && c == '\\') {
                i_ += 2;
                continue;
            }
            if (c == '"') quoted = !quoted;
            if (c == ',' && !quoted) return;
            ++i_;
        }
    }

    std::string_view s_;
    std::size_t i_ = 0;
};

// RFC 7692 7.1.2: a window size is a decimal integer without leading zeros from 8 to 15.
std::optional<int> window_bits(std::string_view v) noexcept {
    if (v.size() == 1 && v[0] >= '8' && v[0] <= '9') return v[0] - '0';
    if (v.size() == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5') return 10 + (v[1] - '0');
    return std::nullopt;
}

// Checks one permessage-deflate offer (RFC 7692 7.1) and writes the answer to it.
bool accept_offer(const std::vector<extension_param>& params, std::string& response) {
    bool server_no_context = false;
    bool client_no_context = false;
    bool client_bits = false;
    std::optional<int> server_bits;
    for (const extension_param& p : params) {
        // 7.1: an offer with an unknown parameter, a repeated one or an invalid value is
        // declined.
        if (iequals(p.name, "server_no_context_takeover")) {
            if (server_no_context || p.value) return false;
            server_no_context = true;
        } else if (iequals(p.name, "client_no_context_takeover")) {
            if (client_no_context || p.value) return false;
            client_no_context = true;
        } else if (iequals(p.name, "server_max_window_bits")) {
            if (server_bits || !p.value) return false;
            server_bits = window_bits(*p.value);
            if (!server_bits) return false;
        } else if (iequals(p.name, "client_max_window_bits")) {
            // 7.1.2.2: the value is optional here; without one the client merely says that it
            // understands the parameter. The server need not answer it: window 15 reads all.
            if (client_bits || (p.value && !window_bits(*p.value))) return false;
            client_bits = true;
        } else {
            return false;
        }
    }
    // 7.1.1.1 and 7.1.1.2: the server may answer both no_context_takeover parameters whether
    // or not they were offered; with them neither side keeps a window between messages.
    response = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
    // 7.1.2.1: accepting server_max_window_bits means answering it with the same or a smaller
    // value; the server sends uncompressed messages, so the same value costs nothing.
    if (server_bits) response += "; server_max_window_bits=" + std::to_string(*server_bits);
    return true;
}

// RFC 7692 7.2.2: the sender removed these 4 bytes (an empty stored block's LEN and NLEN,
// left by Z_SYNC_FLUSH) from the end of the message; the receiver puts them back.
constexpr unsigned char deflate_tail[4] = {0x00, 0x00, 0xff, 0xff};

// Frees zlib's state however inflate returns.
struct inflate_stream {
    z_stream z{};
    bool initialised = false;
    inflate_stream() = default;
    inflate_stream(const inflate_stream&) = delete;
    inflate_stream& operator=(const inflate_stream&) = delete;
    ~inflate_stream() {
        if (initialised) inflateEnd(&z);
    }
};

}  // namespace

deflate_offer_result negotiate_deflate(const std::vector<std::string_view>& extension_headers) {
    deflate_offer_result result;
    std::string name;
    std::vector<extension_param> params;
    for (const std::string_view header : extension_headers) {
        extension_parser parser(header);
        while (parser.next(name, params)) {
            if (!iequals(name, "permessage-deflate")) continue;
            if (accept_offer(params, result.response)) {
                result.accepted = true;
                return result;
            }
        }
    }
    return result;
}

message_inflater::status message_inflater::inflate(std::string_view compressed,
                                                   std::size_t max_bytes, std::string& out) const {
    // No bytes at all is no valid deflate data, even with the tail, but it can only mean the
    // empty message (a sender compressing nothing may emit nothing); RFC 7692 7.2.3.6 sends 0x00.
    if (compressed.empty()) return status::ok;
    inflate_stream s;
    // Raw deflate (negative window bits, RFC 7692 7.2.2), with the largest window, which reads
    // data compressed with any smaller one.
    if (inflateInit2(&s.z, -MAX_WBITS) != Z_OK) return status::corrupt;
    s.initialised = true;

    const std::size_t base = out.size();
    // One byte past the limit is enough to know that the message is too big.
    const std::size_t limit = max_bytes == SIZE_MAX ? SIZE_MAX : max_bytes + 1;
    std::size_t produced = 0;
    std::size_t fed = 0;  // bytes of `compressed` handed to zlib
    bool tail_fed = false;
    const auto fail = [&](status st) {
        out.resize(base);
        return st;
    };

    for (;;) {
        if (s.z.avail_in == 0) {
            if (fed < compressed.size()) {
                const std::size_t n = std::min<std::size_t>(compressed.size() - fed, UINT_MAX);
                // zlib's next_in is not const-qualified unless ZLIB_CONST; it does not write.
                s.z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data() + fed));
                s.z.avail_in = static_cast<uInt>(n);
                fed += n;
            } else if (!tail_fed) {
                s.z.next_in = const_cast<Bytef*>(deflate_tail);
                s.z.avail_in = sizeof deflate_tail;
                tail_fed = true;
            }
        }
        if (s.z.avail_out == 0) {
            if (produced == limit) return fail(status::too_big);
            // Grow geometrically as output appears, never past the limit: the output buffer is
            // what a decompression bomb would make us allocate.
            const std::size_t want =
                std::max<std::size_t>({produced, compressed.size() * 2, std::size_t{256}});
            const std::size_t n =
                std::min<std::size_t>({want, limit - produced, std::size_t{UINT_MAX}});
            out.resize(base + produced + n);
            s.z.next_out = reinterpret_cast<Bytef*>(out.data() + base + produced);
            s.z.avail_out = static_cast<uInt>(n);
        }
        const uInt room = s.z.avail_out;
        const int rc = ::inflate(&s.z, Z_SYNC_FLUSH);
        produced += room - s.z.avail_out;
        if (rc == Z_STREAM_END) break;  // BFINAL (RFC 7692 7.2.3.3); what follows is ignored
        if (rc != Z_OK && rc != Z_BUF_ERROR) return fail(status::corrupt);
        // zlib stalls only for want of input or room; stalling with both would loop forever.
        if (rc == Z_BUF_ERROR && s.z.avail_in != 0 && s.z.avail_out != 0) {
            return fail(status::corrupt);
        }
        // With room left and all input (the tail included) taken, zlib has produced everything.
        if (tail_fed && s.z.avail_in == 0 && s.z.avail_out != 0) {
            // The tail must have closed an empty stored block, leaving zlib between blocks (bit
            // 128 of data_type); anything else is a message cut inside a block.
            if ((s.z.data_type & 128) == 0) return fail(status::corrupt);
            break;
        }
    }
    if (produced > max_bytes) return fail(status::too_big);
    out.resize(base + produced);
    return status::ok;
}

}  // namespace gatehouse::detail
