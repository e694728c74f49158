#include "gatehouse/codec_registry.hpp"

#include <algorithm>

#include "gatehouse/builtin_codecs.hpp"
#include "gatehouse/errc.hpp"

namespace gatehouse {

bool is_valid_codec_name(std::string_view name) noexcept {
    if (name.empty() || name.size() > 32) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    });
}

codec_registry codec_registry::with_builtin_codecs() {
    codec_registry r;
    r.add(make_json_codec());
    r.add(make_msgpack_codec());
    r.add(make_protobuf_codec());
    return r;
}

std::error_code codec_registry::add(std::shared_ptr<const codec> c) {
    if (!c || !is_valid_codec_name(c->name())) return errc::invalid_codec_name;
    if (find(c->name())) return errc::codec_already_registered;
    codecs_.push_back(std::move(c));
    return {};
}

std::shared_ptr<const codec> codec_registry::find(std::string_view name) const noexcept {
    for (const auto& c : codecs_) {
        if (c->name() == name) return c;
    }
    return nullptr;
}

std::shared_ptr<const codec> codec_registry::find_subprotocol(
    std::string_view protocol) const noexcept {
    if (protocol.substr(0, subprotocol_prefix.size()) != subprotocol_prefix) return nullptr;
    return find(protocol.substr(subprotocol_prefix.size()));
}

std::string codec_registry::subprotocol_for(std::string_view name) {
    std::string s(subprotocol_prefix);
    s.append(name);
    return s;
}

std::vector<std::string_view> codec_registry::names() const {
    std::vector<std::string_view> out;
    out.reserve(codecs_.size());
    for (const auto& c : codecs_) out.push_back(c->name());
    return out;
}

}  // namespace gatehouse
