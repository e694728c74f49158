#include "gatehouse/codec_registry.hpp"

#include <catch2/catch.hpp>

#include "gatehouse/builtin_codecs.hpp"
#include "gatehouse/errc.hpp"

namespace {

// A codec that only has a name, for registration tests.
class named_codec final : public gatehouse::codec {
public:
    explicit named_codec(std::string name) : name_(std::move(name)) {}
    std::string_view name() const noexcept override { return name_; }
    gatehouse::frame_type frame() const noexcept override { return gatehouse::frame_type::binary; }
    std::error_code decode(std::string_view, gatehouse::envelope&) const override {
        return std::make_error_code(std::errc::not_supported);
    }
    std::error_code encode(const gatehouse::envelope&, std::string&) const override {
        return std::make_error_code(std::errc::not_supported);
    }

private:
    std::string name_;
};

}  // namespace

TEST_CASE("registry: the built-in codecs by name and by subprotocol", "[registry]") {
    const auto r = gatehouse::codec_registry::with_builtin_codecs();
    CHECK(r.names() == std::vector<std::string_view>{"json", "msgpack", "protobuf"});
    for (const auto name : {"json", "msgpack", "protobuf"}) {
        INFO(name);
        REQUIRE(r.find(name));
        CHECK(r.find(name)->name() == name);
        CHECK(r.find_subprotocol(gatehouse::codec_registry::subprotocol_for(name)) == r.find(name));
    }
    CHECK_FALSE(r.find("cbor"));
    CHECK_FALSE(r.find(""));
    CHECK_FALSE(r.find_subprotocol("gatehouse."));
    CHECK_FALSE(r.find_subprotocol("json"));
    CHECK_FALSE(r.find_subprotocol("other.json"));
    CHECK_FALSE(r.find_subprotocol("gatehouse.JSON"));
    CHECK(gatehouse::codec_registry::subprotocol_for("msgpack") == "gatehouse.msgpack");
}

TEST_CASE("registry: an embedding team adds its own codec", "[registry]") {
    auto r = gatehouse::codec_registry::with_builtin_codecs();
    REQUIRE_FALSE(r.add(std::make_shared<named_codec>("lenprefix")));
    REQUIRE(r.find("lenprefix"));
    CHECK(r.find_subprotocol("gatehouse.lenprefix") == r.find("lenprefix"));
    CHECK(r.names().back() == "lenprefix");
}

TEST_CASE("registry: refuses duplicates, bad names and null", "[registry]") {
    auto r = gatehouse::codec_registry::with_builtin_codecs();
    CHECK(r.add(gatehouse::make_json_codec()) == gatehouse::errc::codec_already_registered);
    CHECK(r.add(std::make_shared<named_codec>("msgpack")) ==
          gatehouse::errc::codec_already_registered);
    for (const auto bad : {"", "Upper", "with space", "slash/x", "x\xc3\xa9",
                           "a-name-that-is-longer-than-32-chars"}) {
        INFO(bad);
        CHECK(r.add(std::make_shared<named_codec>(bad)) == gatehouse::errc::invalid_codec_name);
    }
    CHECK(r.add(nullptr) == gatehouse::errc::invalid_codec_name);
    CHECK(r.names().size() == 3);
}

TEST_CASE("registry: an empty registry is a plain value, no global state", "[registry]") {
    gatehouse::codec_registry a;
    gatehouse::codec_registry b;
    REQUIRE_FALSE(a.add(gatehouse::make_msgpack_codec()));
    CHECK(a.find("msgpack"));
    CHECK_FALSE(b.find("msgpack"));
    CHECK(gatehouse::is_valid_codec_name("a.b_c-1"));
    CHECK_FALSE(gatehouse::is_valid_codec_name(std::string(33, 'a')));
}
