#include "bus/redis_append_batch.hpp"

#include <algorithm>
#include <iterator>
#include <utility>

#include "gatehouse/errc.hpp"
#include "http/text.hpp"
#include "redis/connection.hpp"

namespace gatehouse::detail::redis {
namespace {

constexpr std::size_t function_head_args = 7;
constexpr std::size_t module_head_args = 5;

}  // namespace

append_batch::append_batch(std::string_view stream, std::chrono::seconds window, std::size_t maxlen,
                           std::string_view gateway_id) {
    std::string common;
    format_bulk(common, stream);
    format_bulk(common, std::to_string(window.count()));
    format_bulk(common, std::to_string(maxlen));
    format_bulk(common, gateway_id);
    format_bulk(function_head_, "FCALL");
    format_bulk(function_head_, "gatehouse_append");
    format_bulk(function_head_, "1");
    function_head_ += common;
    format_bulk(module_head_, "GATEHOUSE.APPEND");
    module_head_ += common;
}

append_batch::taken append_batch::take() {
    taken out;
    if (in_flight_ >= max_calls_in_flight) {
        held_ = true;  // scheduled_ stays set: answered() has the batch taken
        return out;
    }
    const std::size_t most = (max_calls_in_flight - in_flight_) * max_commands_per_call;
    std::vector<command> commands;
    std::vector<append_handler> handlers;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (commands_.size() <= most) {
            out.bytes.swap(bytes_);
            commands.swap(commands_);
            handlers.swap(handlers_);
            scheduled_ = false;
        } else {
            // More than the calls left can carry: the first `most` go, the rest waits for
            // the next answer (scheduled_ stays set). Only while Redis lags, so the copy is rare.
            const auto n = static_cast<std::ptrdiff_t>(most);
            const std::size_t cut = commands_[most - 1].end;
            out.bytes.assign(bytes_, 0, cut);
            bytes_.erase(0, cut);
            commands.assign(commands_.begin(), commands_.begin() + n);
            commands_.erase(commands_.begin(), commands_.begin() + n);
            for (auto& c : commands_) c.end -= cut;
            handlers.assign(std::make_move_iterator(handlers_.begin()),
                            std::make_move_iterator(handlers_.begin() + n));
            handlers_.erase(handlers_.begin(), handlers_.begin() + n);
            held_ = true;
        }
    }
    std::size_t byte_from = 0;
    for (std::size_t from = 0; from < commands.size();) {
        const std::size_t to = std::min(commands.size(), from + max_commands_per_call);
        call c;
        c.from = byte_from;
        c.to = commands[to - 1].end;
        for (std::size_t i = from; i < to; ++i) c.args += commands[i].args;
        c.handlers = std::make_shared<std::vector<append_handler>>(
            std::make_move_iterator(handlers.begin() + static_cast<std::ptrdiff_t>(from)),
            std::make_move_iterator(handlers.begin() + static_cast<std::ptrdiff_t>(to)));
        out.calls.push_back(std::move(c));
        byte_from = commands[to - 1].end;
        from = to;
    }
    in_flight_ += out.calls.size();
    return out;
}

void append_batch::format_call(std::string& out, const std::string& bytes, const call& c,
                               append_via via) const {
    const bool module = via == append_via::module;
    format_array_header(out, (module ? module_head_args : function_head_args) + c.args);
    out += module ? module_head_ : function_head_;
    out.append(bytes, c.from, c.to - c.from);
}

bool append_batch::answered() {
    if (in_flight_ > 0) --in_flight_;
    if (!held_) return false;
    held_ = false;
    return true;
}

std::vector<append_handler> append_batch::close() {
    std::vector<append_handler> waiting;
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    waiting.swap(handlers_);
    commands_.clear();
    bytes_.clear();
    return waiting;
}

namespace {

bool whole_reply(std::error_code ec, const reply& r, std::size_t commands) {
    return !ec && r.kind == reply_kind::array && r.elements.size() == commands;
}

bool is_id(const reply& one) {
    return one.kind == reply_kind::string || one.kind == reply_kind::status;
}

}  // namespace

append_outcome count_appends(std::error_code ec, const reply& r, std::size_t commands) {
    append_outcome outcome;
    const bool whole = whole_reply(ec, r, commands);
    outcome.refused = !ec && !whole;
    for (std::size_t i = 0; i < commands; ++i) {
        const reply* one = whole ? &r.elements[i] : nullptr;
        if (one && is_id(*one)) {
            ++(one->kind == reply_kind::string ? outcome.appended : outcome.duplicates);
        } else {
            ++outcome.failed;
        }
    }
    return outcome;
}

void answer_appends(std::error_code ec, const reply& r, std::vector<append_handler>& handlers) {
    const bool whole = whole_reply(ec, r, handlers.size());
    for (std::size_t i = 0; i < handlers.size(); ++i) {
        const reply* one = whole ? &r.elements[i] : nullptr;
        if (one && is_id(*one)) {
            handlers[i]({}, one->str);
        } else {
            handlers[i](make_error_code(errc::bus_unavailable), {});
        }
    }
}

bool function_missing(std::error_code ec, const reply& r) {
    return !ec && r.is_error("ERR Function not found");
}

bool module_missing(std::error_code ec, const reply& r) {
    if (ec || !r.is_error()) return false;
    constexpr std::string_view name = "gatehouse.append";
    const std::string_view message = r.str;
    // Redis 7 quotes the name as it was sent (`ERR unknown command 'GATEHOUSE.APPEND', with args
    // beginning with: ...`), Redis 6 in backquotes. Any other error (the module's own usage
    // errors, WRONGTYPE, OOM) fails the call's commands, as the function's errors do.
    constexpr std::string_view unknown = "ERR unknown command ";
    if (message.substr(0, unknown.size()) == unknown) {
        const std::string_view quoted = message.substr(unknown.size(), name.size() + 2);
        return quoted.size() == name.size() + 2 && (quoted[0] == '\'' || quoted[0] == '`') &&
               quoted.back() == quoted[0] && iequals(quoted.substr(1, name.size()), name);
    }
    // An ACL user without the command (`NOPERM User u has no permissions to run the
    // 'gatehouse.append' command`): refused before it ran; the function may be allowed.
    if (r.is_error("NOPERM")) {
        const std::string lower = ascii_lower_copy(message);
        return lower.find("'gatehouse.append'") != std::string::npos;
    }
    return false;
}

namespace {

// One RESP bulk string (`$<len>\r\n<bytes>\r\n`) at `at`, which it moves past it.
bool next_bulk(std::string_view bytes, std::size_t& at, std::string_view& value) {
    if (at >= bytes.size() || bytes[at] != '$') return false;
    const auto crlf = bytes.find("\r\n", at);
    if (crlf == std::string_view::npos || crlf == at + 1) return false;
    std::size_t len = 0;
    for (std::size_t i = at + 1; i < crlf; ++i) {
        if (bytes[i] < '0' || bytes[i] > '9') return false;
        len = len * 10 + static_cast<std::size_t>(bytes[i] - '0');
    }
    const std::size_t from = crlf + 2;
    if (len > bytes.size() || from + len + 2 > bytes.size()) return false;
    value = bytes.substr(from, len);
    at = from + len + 2;
    return true;
}

}  // namespace

std::vector<std::vector<std::string_view>> split_call(std::string_view bytes) {
    std::vector<std::vector<std::string_view>> commands;
    std::size_t at = 0;
    while (at < bytes.size()) {
        std::vector<std::string_view> one(2);
        if (!next_bulk(bytes, at, one[0]) || !next_bulk(bytes, at, one[1])) return {};
        std::size_t extra = 0;
        for (const char ch : one[1]) {
            if (ch < '0' || ch > '9' || extra > 64) return {};
            extra = extra * 10 + static_cast<std::size_t>(ch - '0');
        }
        one.resize(10 + extra);
        for (std::size_t i = 2; i < one.size(); ++i) {
            if (!next_bulk(bytes, at, one[i])) return {};
        }
        commands.push_back(std::move(one));
    }
    return commands;
}

}  // namespace gatehouse::detail::redis
