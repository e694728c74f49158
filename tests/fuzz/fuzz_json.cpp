// libFuzzer target: JSON envelopes, with nlohmann as an independent oracle for the JSON
// grammar of the payload.
#include <nlohmann/json.hpp>

#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    fuzz::gc::envelope e;
    fuzz::check_decoder(fuzz::gc::wire_format::json, input, e);

    // The same bytes as a bare payload must get the same verdict from nlohmann, with two
    // exceptions of nlohmann's own: its lexer takes a NUL byte for the end of input, and it
    // stops at a number beyond double range (valid JSON) without reading further.
    if (input.find('\0') != std::string_view::npos) return 0;
    const bool ours =
        fuzz::gc::validate_payload(fuzz::gc::payload_format::json, input) == fuzz::gc::status::ok;
    try {
        (void)nlohmann::json::parse(input);
        fuzz::require(ours, "nlohmann parses JSON we refuse");
    } catch (const nlohmann::json::out_of_range&) {
        // inconclusive: see above
    } catch (const nlohmann::json::parse_error&) {
        fuzz::require(!ours, "we accept JSON nlohmann refuses");
    }
    return 0;
}
