#include "gatehouse/errc.hpp"

#include <string>

namespace gatehouse {
namespace {

class gatehouse_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "gatehouse"; }
    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
            case errc::unknown_codec: return "no codec is registered under that name";
            case errc::codec_already_registered: return "a codec with that name is registered";
            case errc::invalid_codec_name: return "codec names are 1-32 characters of [a-z0-9_.-]";
            case errc::payload_not_representable:
                return "the payload cannot be carried in this wire format";
        }
        return "unknown gatehouse error";
    }
};

}  // namespace

const std::error_category& gatehouse_category() noexcept {
    static const gatehouse_category_impl instance;
    return instance;
}

std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), gatehouse_category()};
}

}  // namespace gatehouse
