#include "gatehouse/codec_error.hpp"

#include <string>

namespace gatehouse {
namespace {

class codec_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "gatehouse.codec"; }
    std::string message(int ev) const override {
        return client::describe(static_cast<client::status>(ev));
    }
};

}  // namespace

const std::error_category& codec_category() noexcept {
    static const codec_category_impl instance;
    return instance;
}

std::error_code client::make_error_code(status s) noexcept {
    return {static_cast<int>(s), codec_category()};
}

std::string_view protocol_error_code(const std::error_code& ec) noexcept {
    if (!ec) return {};
    if (ec.category() == codec_category()) {
        const char* code = client::protocol_code(static_cast<client::status>(ec.value()));
        if (code != nullptr) return code;
    }
    return "invalid_frame";
}

}  // namespace gatehouse
