#pragma once
// permessage-deflate (RFC 7692) for the server: negotiating the extension, and inflating the
// compressed messages clients send. The server never compresses (RFC 7692 6: an endpoint may
// send uncompressed messages on a connection that negotiated the extension), and it always
// agrees on no context takeover both ways, so no zlib state outlives one message.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::detail {

/// The outcome of negotiate_deflate.
struct deflate_offer_result {
    /// An offer was accepted.
    bool accepted = false;
    /// The Sec-WebSocket-Extensions value to answer with when accepted.
    std::string response;
};

/// Accepts the first acceptable permessage-deflate offer among all the request's
/// Sec-WebSocket-Extensions values (one string per header line, in order), RFC 7692 5 and 7.1.
/// The answer always carries server_no_context_takeover and client_no_context_takeover, and
/// server_max_window_bits when the offer named it (with the offered value: the server never
/// compresses, so any window suits it). client_max_window_bits is accepted and not answered:
/// the server inflates with the largest window (15), which reads any smaller one. An offer
/// with an unknown, repeated or malformed parameter (a window size outside 8-15, a value on a
/// flag) is declined and the next one considered; malformed list elements are skipped.
deflate_offer_result negotiate_deflate(const std::vector<std::string_view>& extension_headers);

/// Inflates permessage-deflate messages for a connection that negotiated no context takeover.
/// It holds no state between messages: zlib's (about 40 KiB with its window) lives only for
/// the duration of one inflate call.
///
/// Thread safety: inflate may run on several threads at once.
class message_inflater {
public:
    enum class status { ok, too_big, corrupt };

    /// Inflates one whole compressed message (its frames' payloads, concatenated, without the
    /// 0x00 0x00 0xff 0xff tail, which is appended here: RFC 7692 7.2.2), appending the output
    /// to `out`. The output grows as it is produced, never beyond max_bytes + 1 bytes, so a
    /// small input that would inflate to gigabytes costs no more than the limit.
    /// @return ok; too_big when the output would exceed max_bytes (max_bytes bytes are
    ///         accepted); corrupt when the data is not a deflate stream ending at a block
    ///         boundary (or zlib cannot get memory). On failure `out` is left as it was.
    ///         An empty input is the empty message.
    status inflate(std::string_view compressed, std::size_t max_bytes, std::string& out) const;
};

}  // namespace gatehouse::detail
