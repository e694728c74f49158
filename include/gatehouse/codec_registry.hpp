#pragma once
/// @file
/// `codec_registry`: codecs by name, and WebSocket subprotocol negotiation over them.

#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "gatehouse/codec.hpp"

namespace gatehouse {

/// The set of codecs a gateway offers, looked up by name.
///
/// A registry is a plain value owned by whoever builds the gateway: there is no global
/// one. Built-in codecs are added by `with_builtin_codecs()`; a team adds its own with
/// `add()`.
///
/// Thread safety: fill it before sharing it; after that, concurrent const calls are safe.
class codec_registry {
public:
    /// The prefix of the `Sec-WebSocket-Protocol` values that name codecs.
    static constexpr std::string_view subprotocol_prefix = "gatehouse.";

    /// An empty registry.
    codec_registry() = default;

    /// A registry holding the json, msgpack and protobuf codecs.
    static codec_registry with_builtin_codecs();

    /// Registers `c` under `c->name()`.
    /// Errors: `errc::invalid_codec_name` (also for a null codec),
    /// `errc::codec_already_registered`.
    std::error_code add(std::shared_ptr<const codec> c);

    /// The codec registered as `name`, or null.
    std::shared_ptr<const codec> find(std::string_view name) const noexcept;

    /// The codec a `Sec-WebSocket-Protocol` value such as `"gatehouse.msgpack"` names, or
    /// null when the value is not of that form or names no registered codec.
    std::shared_ptr<const codec> find_subprotocol(std::string_view protocol) const noexcept;

    /// The subprotocol value for a codec name: `"gatehouse." + name`.
    static std::string subprotocol_for(std::string_view name);

    /// The registered names, in registration order.
    std::vector<std::string_view> names() const;

private:
    // A handful of codecs: a linear scan beats hashing here.
    std::vector<std::shared_ptr<const codec>> codecs_;
};

/// True when `name` is a valid codec name: 1-32 characters of `[a-z0-9_.-]`.
bool is_valid_codec_name(std::string_view name) noexcept;

}  // namespace gatehouse
