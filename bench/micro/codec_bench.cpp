// Codec microbenchmarks: envelope decode/encode in the three wire formats, through the
// client codec (gatehouse::client, fixed buffers, no allocation) and through the library
// codecs (gatehouse::make_*_codec(), owning gatehouse::envelope / std::string), with
// reference libraries measured in the same binary so that ratios are meaningful:
//
//   JSON decode      vs nlohmann::json::parse and simdjson::ondemand
//   MessagePack      vs msgpack-c (msgpack::unpack, copying and zero-copy)
//   Protobuf         vs libprotobuf's generated gatehouse::v1::Envelope
//
// Benchmark names are `<op>/<frame>/<implementation>`. Every benchmark reports bytes/s
// (frame bytes) and items/s (frames), plus the exact frame size as the `frame_bytes` counter.
// Before anything is timed, main() checks that every path decodes the fixtures to the same
// fields and that encoding reproduces the frames byte for byte; a mismatch exits non-zero,
// so the CTest smoke run catches a benchmark that no longer measures what it claims to.
//
// How to run and read these: docs/benchmarks.md.

#include <benchmark/benchmark.h>
#include <simdjson.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <msgpack.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "gatehouse.pb.h"
#include "gatehouse/builtin_codecs.hpp"
#include "gatehouse/client/codec.hpp"
#include "gatehouse/codec.hpp"
#include "gatehouse/envelope.hpp"

namespace {

namespace gc = gatehouse::client;
namespace od = simdjson::ondemand;
using gatehouse::payload_format;
using gc::wire_format;

// ---------------------------------------------------------------------------------------------
// Fixtures

// A typical command: 151 bytes of JSON, keys in the order the encoder writes them so that
// decode -> encode reproduces the frame exactly.
constexpr std::string_view command_json =
    R"({"type":"player_action","payload":{"move":[12,-7],"facing":"north","sprint":true,)"
    R"("seq":4021,"target":"npc-3312","hp":87},"correlation_id":"c-1f3a9b27"})";

constexpr std::string_view opaque_codec_name = "game.PlayerAction";

// A ~4 KiB frame: a world snapshot whose payload is an array of entity objects (ASCII
// strings, integers, decimals, booleans, nested arrays) - what validation scales with.
std::string make_big_json_payload() {
    std::string p = "[";
    for (int i = 0; p.size() < 3950; ++i) {
        if (i != 0) p += ',';
        const int id = 1000 + i * 37;
        p += R"({"id":)" + std::to_string(id) + R"(,"kind":")" + (i % 3 == 0 ? "npc" : "player") +
             R"(","pos":[)" + std::to_string(i * 13 % 200 - 100) + "." +
             std::to_string(i * 7 % 100) + "," + std::to_string(i * 29 % 300 - 150) + ".25]" +
             R"(,"hp":)" + std::to_string(100 - i % 100) + R"(,"alive":)" +
             (i % 5 == 4 ? "false" : "true") + R"(,"name":"unit-)" + std::to_string(id) + "\"}";
    }
    p += ']';
    return p;
}

struct fixtures {
    // The ~150-byte command in each wire format.
    std::string json;
    std::string msgpack;
    std::string protobuf;         // payload_codec "json": the payload is validated as JSON
    std::string protobuf_opaque;  // same payload bytes, payload_codec "game.PlayerAction"
    // The payload alone, as each format carries it (encode inputs).
    std::string payload_json;
    std::string payload_msgpack;
    // The ~4 KiB frame.
    std::string big_json;
    std::string big_msgpack;
    std::string big_payload_json;
    std::string big_payload_msgpack;
};

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "codec_bench: fixture/self-check failure: %s\n", what.c_str());
    std::exit(1);
}

void expect(bool ok, const std::string& what) {
    if (!ok) die(what);
}

// Builds every frame from its JSON form through the library codecs (which transcode the
// payload for MessagePack through nlohmann); checked against the references in main().
fixtures build_fixtures() {
    fixtures f;
    const auto json = gatehouse::make_json_codec();
    const auto mp = gatehouse::make_msgpack_codec();
    const auto pb = gatehouse::make_protobuf_codec();

    f.json = std::string(command_json);
    gatehouse::envelope e;
    expect(!json->decode(f.json, e), "command JSON frame does not decode");
    f.payload_json = e.payload;
    expect(!mp->encode(e, f.msgpack), "command -> msgpack encode");
    expect(!pb->encode(e, f.protobuf), "command -> protobuf encode");
    gatehouse::envelope opaque = e;
    opaque.format = payload_format::bytes;
    opaque.payload_codec = std::string(opaque_codec_name);
    expect(!pb->encode(opaque, f.protobuf_opaque), "command -> opaque protobuf encode");
    gatehouse::envelope back;
    expect(!mp->decode(f.msgpack, back), "msgpack command does not decode");
    f.payload_msgpack = back.payload;

    f.big_payload_json = make_big_json_payload();
    f.big_json = R"({"type":"world_snapshot","payload":)" + f.big_payload_json +
                 R"(,"correlation_id":"c-7d0e44a1"})";
    expect(!json->decode(f.big_json, e), "4 KiB JSON frame does not decode");
    expect(!mp->encode(e, f.big_msgpack), "4 KiB -> msgpack encode");
    expect(!mp->decode(f.big_msgpack, back), "4 KiB msgpack does not decode");
    f.big_payload_msgpack = back.payload;
    return f;
}

const fixtures& fx() {
    static const fixtures f = build_fixtures();
    return f;
}

// ---------------------------------------------------------------------------------------------
// Reference readers: each extracts type, correlation_id and the payload, the way a gateway
// would use that library.

struct fields {
    std::string_view type;
    std::string_view correlation_id;
    std::string_view payload;  // raw bytes where the library can give them
};

// nlohmann: parse the whole frame into its DOM and read the two strings; the payload stays a
// json value (nlohmann cannot hand back its raw bytes; dumping would cost extra).
struct nlohmann_fields {
    const std::string* type = nullptr;
    const std::string* correlation_id = nullptr;
    const nlohmann::json* payload = nullptr;
};

bool nlohmann_read(std::string_view frame, nlohmann::json& doc, nlohmann_fields& r) {
    doc = nlohmann::json::parse(frame, nullptr, /*allow_exceptions=*/false);
    const auto* obj = doc.get_ptr<const nlohmann::json::object_t*>();
    if (obj == nullptr) return false;
    const auto t = obj->find("type");
    const auto c = obj->find("correlation_id");
    const auto p = obj->find("payload");
    if (t == obj->end() || p == obj->end()) return false;
    r.type = t->second.get_ptr<const std::string*>();
    r.correlation_id = c != obj->end() ? c->second.get_ptr<const std::string*>() : nullptr;
    r.payload = &p->second;
    return r.type != nullptr;
}

// simdjson On-Demand (3.0.1): one pass over the fields in frame order; the strings are
// unescaped into the parser's buffer, the payload comes back as its raw JSON text
// (object/array raw_json(); 3.0.1 has no value::raw_json()).
simdjson::error_code raw_json_of(od::value& v, std::string_view& out) {
    od::json_type t{};
    if (auto err = v.type().get(t)) return err;
    if (t == od::json_type::object) {
        od::object o;
        if (auto err = v.get_object().get(o)) return err;
        return o.raw_json().get(out);
    }
    if (t == od::json_type::array) {
        od::array a;
        if (auto err = v.get_array().get(a)) return err;
        return a.raw_json().get(out);
    }
    out = v.raw_json_token();
    return simdjson::SUCCESS;
}

simdjson::error_code simdjson_read(od::parser& parser, const simdjson::padded_string& frame,
                                   fields& out) {
    od::document doc;
    if (auto err = parser.iterate(frame).get(doc)) return err;
    od::object obj;
    if (auto err = doc.get_object().get(obj)) return err;
    for (auto result : obj) {
        od::field field;
        if (auto err = std::move(result).get(field)) return err;
        std::string_view key;
        if (auto err = field.unescaped_key().get(key)) return err;
        simdjson::error_code err = simdjson::SUCCESS;
        if (key == "type") {
            err = field.value().get_string().get(out.type);
        } else if (key == "correlation_id") {
            err = field.value().get_string().get(out.correlation_id);
        } else if (key == "payload") {
            err = raw_json_of(field.value(), out.payload);
        }
        if (err) return err;
    }
    return simdjson::SUCCESS;
}

// msgpack-c: unpack the whole frame into an object tree (zone-allocated) and read the three
// keys. With `zero_copy`, str/bin bodies reference the frame instead of being copied.
bool reference_all(msgpack::type::object_type, std::size_t, void*) { return true; }

bool msgpack_c_read(std::string_view frame, bool zero_copy, msgpack::object_handle& oh,
                    fields& out) {
    oh = zero_copy ? msgpack::unpack(frame.data(), frame.size(), reference_all)
                   : msgpack::unpack(frame.data(), frame.size());
    const msgpack::object& m = oh.get();
    if (m.type != msgpack::type::MAP) return false;
    bool have_payload = false;
    for (std::uint32_t i = 0; i < m.via.map.size; ++i) {
        const msgpack::object_kv& kv = m.via.map.ptr[i];
        if (kv.key.type != msgpack::type::STR) continue;
        const std::string_view key(kv.key.via.str.ptr, kv.key.via.str.size);
        if (key == "type" && kv.val.type == msgpack::type::STR) {
            out.type = {kv.val.via.str.ptr, kv.val.via.str.size};
        } else if (key == "correlation_id" && kv.val.type == msgpack::type::STR) {
            out.correlation_id = {kv.val.via.str.ptr, kv.val.via.str.size};
        } else if (key == "payload") {
            have_payload = true;  // an object tree: msgpack-c keeps no raw bytes
        }
    }
    return !out.type.empty() && have_payload;
}

// ---------------------------------------------------------------------------------------------
// Benchmark bodies

// The fixed output buffer a client would own; large enough for every fixture.
constexpr std::size_t buffer_bytes = std::size_t{16} * 1024;

void finish(benchmark::State& state, std::size_t frame_bytes) {
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(frame_bytes));
    state.counters["frame_bytes"] = static_cast<double>(frame_bytes);
}

void client_decode(benchmark::State& state, wire_format format, const std::string* frame) {
    gc::envelope e;
    if (gc::decode(format, *frame, e) != gc::status::ok) {
        state.SkipWithError("decode failed");
        return;
    }
    for (auto _ : state) {
        gc::status st = gc::decode(format, *frame, e);
        benchmark::DoNotOptimize(st);
        benchmark::DoNotOptimize(e);
    }
    finish(state, frame->size());
}

void library_decode(benchmark::State& state, const std::shared_ptr<const gatehouse::codec>& codec,
                    const std::string* frame) {
    gatehouse::envelope e;  // reused: its strings keep their capacity
    if (codec->decode(*frame, e)) {
        state.SkipWithError("decode failed");
        return;
    }
    for (auto _ : state) {
        std::error_code ec = codec->decode(*frame, e);
        benchmark::DoNotOptimize(ec);
        benchmark::DoNotOptimize(e);
    }
    finish(state, frame->size());
}

// The client envelope for encoding `payload` (a view: the fixture outlives the benchmark).
gc::envelope client_envelope(std::string_view type, payload_format pf, std::string_view payload,
                             std::string_view codec_name = {}) {
    gc::envelope e;
    if (e.set_type(type) != gc::status::ok) die("set_type");
    if (e.set_correlation_id("c-1f3a9b27") != gc::status::ok) die("set_correlation_id");
    e.set_payload(pf, payload, codec_name);
    return e;
}

void client_encode(benchmark::State& state, wire_format format, const gc::envelope& in,
                   std::size_t frame_bytes) {
    std::vector<char> buf(buffer_bytes);  // the fixed buffer a client would own
    const gc::encode_result first = gc::encode(format, in, buf.data(), buf.size());
    if (first.code != gc::status::ok || first.size != frame_bytes) {
        state.SkipWithError("encode failed or produced an unexpected size");
        return;
    }
    for (auto _ : state) {
        gc::encode_result r = gc::encode(format, in, buf.data(), buf.size());
        benchmark::DoNotOptimize(r);
        benchmark::ClobberMemory();
    }
    finish(state, frame_bytes);
}

gatehouse::envelope library_envelope(std::string type, payload_format pf, std::string payload,
                                     std::string codec_name = {}) {
    gatehouse::envelope e;
    e.type = std::move(type);
    e.correlation_id = "c-1f3a9b27";
    e.payload = std::move(payload);
    e.format = pf;
    e.payload_codec = std::move(codec_name);
    return e;
}

void library_encode(benchmark::State& state, const std::shared_ptr<const gatehouse::codec>& codec,
                    const gatehouse::envelope& in, std::size_t frame_bytes) {
    std::string out;  // reused, as a connection's send buffer would be
    if (codec->encode(in, out) || out.size() != frame_bytes) {
        state.SkipWithError("encode failed or produced an unexpected size");
        return;
    }
    for (auto _ : state) {
        std::error_code ec = codec->encode(in, out);
        benchmark::DoNotOptimize(ec);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    finish(state, frame_bytes);
}

void validate_json_payload(benchmark::State& state, const std::string* payload,
                           std::size_t frame_bytes) {
    if (gc::validate_payload(payload_format::json, *payload) != gc::status::ok) {
        state.SkipWithError("payload invalid");
        return;
    }
    for (auto _ : state) {
        gc::status st = gc::validate_payload(payload_format::json, *payload);
        benchmark::DoNotOptimize(st);
    }
    // Bytes are the payload's, not the frame's: this is validation alone.
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(payload->size()));
    state.counters["frame_bytes"] = static_cast<double>(frame_bytes);
}

void nlohmann_decode(benchmark::State& state, const std::string* frame) {
    nlohmann::json doc;  // reassigned each time: the previous tree is freed, a new one built
    nlohmann_fields r;
    if (!nlohmann_read(*frame, doc, r)) {
        state.SkipWithError("nlohmann read failed");
        return;
    }
    for (auto _ : state) {
        bool ok = nlohmann_read(*frame, doc, r);
        benchmark::DoNotOptimize(ok);
        benchmark::DoNotOptimize(r.type->data());
        benchmark::DoNotOptimize(r.payload);
    }
    finish(state, frame->size());
}

void simdjson_decode(benchmark::State& state, const std::string* frame) {
    od::parser parser;                             // reused
    const simdjson::padded_string padded(*frame);  // padded once, outside the timed loop
    fields f;
    if (simdjson_read(parser, padded, f) != simdjson::SUCCESS) {
        state.SkipWithError("simdjson read failed");
        return;
    }
    for (auto _ : state) {
        simdjson::error_code err = simdjson_read(parser, padded, f);
        benchmark::DoNotOptimize(err);
        benchmark::DoNotOptimize(f);
    }
    finish(state, frame->size());
}

void msgpack_c_decode(benchmark::State& state, const std::string* frame, bool zero_copy) {
    msgpack::object_handle oh;
    fields f;
    if (!msgpack_c_read(*frame, zero_copy, oh, f)) {
        state.SkipWithError("msgpack-c read failed");
        return;
    }
    for (auto _ : state) {
        bool ok = msgpack_c_read(*frame, zero_copy, oh, f);
        benchmark::DoNotOptimize(ok);
        benchmark::DoNotOptimize(f);
    }
    finish(state, frame->size());
}

void libprotobuf_decode(benchmark::State& state, const std::string* frame) {
    gatehouse::v1::Envelope msg;  // reused: its strings keep their capacity
    const int size = static_cast<int>(frame->size());
    if (!msg.ParseFromArray(frame->data(), size)) {
        state.SkipWithError("libprotobuf parse failed");
        return;
    }
    for (auto _ : state) {
        bool ok = msg.ParseFromArray(frame->data(), size);
        benchmark::DoNotOptimize(ok);
        benchmark::DoNotOptimize(msg);
    }
    finish(state, frame->size());
}

void libprotobuf_encode(benchmark::State& state, const std::string* frame) {
    gatehouse::v1::Envelope msg;
    std::string out;
    if (!msg.ParseFromString(*frame) || !msg.SerializeToString(&out) || out != *frame) {
        state.SkipWithError("libprotobuf round trip failed");
        return;
    }
    for (auto _ : state) {
        bool ok = msg.SerializeToString(&out);
        benchmark::DoNotOptimize(ok);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    finish(state, frame->size());
}

// ---------------------------------------------------------------------------------------------
// Self-check: every path agrees on the fixtures before anything is timed.

void self_check(const fixtures& f) {
    struct frame_case {
        const char* name;
        wire_format format;
        const std::string* frame;
        std::string_view type;
        std::string_view payload;  // as the client codec hands it back
    };
    const frame_case cases[] = {
        {"json", wire_format::json, &f.json, "player_action", f.payload_json},
        {"msgpack", wire_format::msgpack, &f.msgpack, "player_action", f.payload_msgpack},
        {"protobuf", wire_format::protobuf, &f.protobuf, "player_action", f.payload_json},
        {"protobuf_opaque", wire_format::protobuf, &f.protobuf_opaque, "player_action",
         f.payload_json},
        {"json_4k", wire_format::json, &f.big_json, "world_snapshot", f.big_payload_json},
        {"msgpack_4k", wire_format::msgpack, &f.big_msgpack, "world_snapshot",
         f.big_payload_msgpack},
    };
    std::vector<char> buf(buffer_bytes);
    for (const auto& c : cases) {
        const std::string name = c.name;
        gc::envelope e;
        expect(gc::decode(c.format, *c.frame, e) == gc::status::ok, name + ": client decode");
        expect(e.type() == c.type, name + ": type");
        expect(e.payload() == c.payload, name + ": payload");
        const auto r = gc::encode(c.format, e, buf.data(), buf.size());
        expect(r.code == gc::status::ok &&
                   std::string_view(buf.data(), r.size) == std::string_view(*c.frame),
               name + ": client encode does not reproduce the frame");
    }

    // nlohmann and simdjson read the JSON frames as gatehouse does.
    for (const std::string* frame : {&f.json, &f.big_json}) {
        gc::envelope e;
        expect(gc::decode(wire_format::json, *frame, e) == gc::status::ok, "json decode");
        nlohmann::json doc;
        nlohmann_fields nr;
        expect(nlohmann_read(*frame, doc, nr), "nlohmann read");
        expect(*nr.type == e.type() && nr.correlation_id != nullptr &&
                   *nr.correlation_id == e.correlation_id() &&
                   nr.payload->dump() == nlohmann::json::parse(e.payload()).dump(),
               "nlohmann disagrees with gatehouse");
        od::parser parser;
        const simdjson::padded_string padded(*frame);
        fields sf;
        expect(simdjson_read(parser, padded, sf) == simdjson::SUCCESS, "simdjson read");
        expect(sf.type == e.type() && sf.correlation_id == e.correlation_id() &&
                   sf.payload == e.payload(),
               "simdjson disagrees with gatehouse");
    }

    // msgpack-c reads the MessagePack frames as gatehouse does, and its tree of the payload
    // equals nlohmann's reading of gatehouse's payload bytes.
    for (const std::string* frame : {&f.msgpack, &f.big_msgpack}) {
        gc::envelope e;
        expect(gc::decode(wire_format::msgpack, *frame, e) == gc::status::ok, "msgpack decode");
        for (const bool zero_copy : {false, true}) {
            msgpack::object_handle oh;
            fields mf;
            expect(msgpack_c_read(*frame, zero_copy, oh, mf), "msgpack-c read");
            expect(mf.type == e.type() && mf.correlation_id == e.correlation_id(),
                   "msgpack-c disagrees with gatehouse");
        }
    }

    // libprotobuf reads the Protobuf frames as gatehouse does and serialises them back
    // identically.
    for (const std::string* frame : {&f.protobuf, &f.protobuf_opaque}) {
        gc::envelope e;
        expect(gc::decode(wire_format::protobuf, *frame, e) == gc::status::ok, "protobuf decode");
        gatehouse::v1::Envelope msg;
        expect(msg.ParseFromString(*frame), "libprotobuf parse");
        expect(msg.type() == e.type() && msg.correlation_id() == e.correlation_id() &&
                   msg.payload() == e.payload() && msg.payload_codec() == e.payload_codec(),
               "libprotobuf disagrees with gatehouse");
        std::string again;
        expect(msg.SerializeToString(&again) && again == *frame,
               "libprotobuf does not reproduce the frame");
    }
}

// ---------------------------------------------------------------------------------------------
// Registration

void register_all(const fixtures& f) {
    using benchmark::RegisterBenchmark;
    const auto json = gatehouse::make_json_codec();
    const auto mp = gatehouse::make_msgpack_codec();
    const auto pb = gatehouse::make_protobuf_codec();

    // --- decode, ~150-byte command ---
    RegisterBenchmark("decode/json/gatehouse_client", client_decode, wire_format::json, &f.json);
    RegisterBenchmark("decode/json/gatehouse_codec", library_decode, json, &f.json);
    RegisterBenchmark("decode/json/nlohmann", nlohmann_decode, &f.json);
    RegisterBenchmark("decode/json/simdjson_ondemand", simdjson_decode, &f.json);

    RegisterBenchmark("decode/msgpack/gatehouse_client", client_decode, wire_format::msgpack,
                      &f.msgpack);
    RegisterBenchmark("decode/msgpack/gatehouse_codec", library_decode, mp, &f.msgpack);
    RegisterBenchmark("decode/msgpack/msgpack_c", msgpack_c_decode, &f.msgpack, false);
    RegisterBenchmark("decode/msgpack/msgpack_c_zero_copy", msgpack_c_decode, &f.msgpack, true);

    RegisterBenchmark("decode/protobuf/gatehouse_client", client_decode, wire_format::protobuf,
                      &f.protobuf);
    RegisterBenchmark("decode/protobuf/gatehouse_codec", library_decode, pb, &f.protobuf);
    RegisterBenchmark("decode/protobuf/libprotobuf", libprotobuf_decode, &f.protobuf);
    RegisterBenchmark("decode/protobuf_opaque/gatehouse_client", client_decode,
                      wire_format::protobuf, &f.protobuf_opaque);
    RegisterBenchmark("decode/protobuf_opaque/gatehouse_codec", library_decode, pb,
                      &f.protobuf_opaque);
    RegisterBenchmark("decode/protobuf_opaque/libprotobuf", libprotobuf_decode, &f.protobuf_opaque);

    // --- encode, ~150-byte command ---
    RegisterBenchmark("encode/json/gatehouse_client", client_encode, wire_format::json,
                      client_envelope("player_action", payload_format::json, f.payload_json),
                      f.json.size());
    RegisterBenchmark("encode/json/gatehouse_codec", library_encode, json,
                      library_envelope("player_action", payload_format::json, f.payload_json),
                      f.json.size());
    RegisterBenchmark("encode/msgpack/gatehouse_client", client_encode, wire_format::msgpack,
                      client_envelope("player_action", payload_format::msgpack, f.payload_msgpack),
                      f.msgpack.size());
    RegisterBenchmark("encode/msgpack/gatehouse_codec", library_encode, mp,
                      library_envelope("player_action", payload_format::msgpack, f.payload_msgpack),
                      f.msgpack.size());
    // Egress to a MessagePack client of a payload held as JSON: the codec transcodes.
    RegisterBenchmark("encode/msgpack/gatehouse_codec_from_json_payload", library_encode, mp,
                      library_envelope("player_action", payload_format::json, f.payload_json),
                      f.msgpack.size());
    RegisterBenchmark("encode/protobuf/gatehouse_client", client_encode, wire_format::protobuf,
                      client_envelope("player_action", payload_format::json, f.payload_json),
                      f.protobuf.size());
    RegisterBenchmark("encode/protobuf/gatehouse_codec", library_encode, pb,
                      library_envelope("player_action", payload_format::json, f.payload_json),
                      f.protobuf.size());
    RegisterBenchmark("encode/protobuf/libprotobuf", libprotobuf_encode, &f.protobuf);
    RegisterBenchmark(
        "encode/protobuf_opaque/gatehouse_client", client_encode, wire_format::protobuf,
        client_envelope("player_action", payload_format::bytes, f.payload_json, opaque_codec_name),
        f.protobuf_opaque.size());
    RegisterBenchmark("encode/protobuf_opaque/gatehouse_codec", library_encode, pb,
                      library_envelope("player_action", payload_format::bytes, f.payload_json,
                                       std::string(opaque_codec_name)),
                      f.protobuf_opaque.size());
    RegisterBenchmark("encode/protobuf_opaque/libprotobuf", libprotobuf_encode, &f.protobuf_opaque);

    // --- ~4 KiB frame: validation scales with the payload ---
    RegisterBenchmark("decode/json_4k/gatehouse_client", client_decode, wire_format::json,
                      &f.big_json);
    RegisterBenchmark("decode/json_4k/gatehouse_codec", library_decode, json, &f.big_json);
    RegisterBenchmark("decode/json_4k/nlohmann", nlohmann_decode, &f.big_json);
    RegisterBenchmark("decode/json_4k/simdjson_ondemand", simdjson_decode, &f.big_json);
    RegisterBenchmark("validate/json_4k_payload/gatehouse_client", validate_json_payload,
                      &f.big_payload_json, f.big_json.size());
    RegisterBenchmark("encode/json_4k/gatehouse_client", client_encode, wire_format::json,
                      client_envelope("world_snapshot", payload_format::json, f.big_payload_json),
                      f.big_json.size());
    RegisterBenchmark("decode/msgpack_4k/gatehouse_client", client_decode, wire_format::msgpack,
                      &f.big_msgpack);
    RegisterBenchmark("decode/msgpack_4k/msgpack_c", msgpack_c_decode, &f.big_msgpack, false);
    RegisterBenchmark("decode/msgpack_4k/msgpack_c_zero_copy", msgpack_c_decode, &f.big_msgpack,
                      true);
}

std::string version(long major, long minor, long patch) {
    return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

int run(int argc, char** argv) {
    const fixtures& f = fx();
    self_check(f);

    benchmark::AddCustomContext("frame_bytes.json", std::to_string(f.json.size()));
    benchmark::AddCustomContext("frame_bytes.msgpack", std::to_string(f.msgpack.size()));
    benchmark::AddCustomContext("frame_bytes.protobuf", std::to_string(f.protobuf.size()));
    benchmark::AddCustomContext("frame_bytes.protobuf_opaque",
                                std::to_string(f.protobuf_opaque.size()));
    benchmark::AddCustomContext("frame_bytes.json_4k", std::to_string(f.big_json.size()));
    benchmark::AddCustomContext("frame_bytes.msgpack_4k", std::to_string(f.big_msgpack.size()));
    benchmark::AddCustomContext("nlohmann_json",
                                version(NLOHMANN_JSON_VERSION_MAJOR, NLOHMANN_JSON_VERSION_MINOR,
                                        NLOHMANN_JSON_VERSION_PATCH));
    benchmark::AddCustomContext(
        "simdjson", version(simdjson::SIMDJSON_VERSION_MAJOR, simdjson::SIMDJSON_VERSION_MINOR,
                            simdjson::SIMDJSON_VERSION_REVISION));
    // stage 1 (structural indexing, UTF-8 check) is dispatched at run time; the On-Demand
    // navigation is compiled into this binary for the baseline target (no -march flags).
    benchmark::AddCustomContext("simdjson.stage1_kernel",
                                simdjson::get_active_implementation()->name());
    benchmark::AddCustomContext("simdjson.ondemand_kernel",
                                simdjson::builtin_implementation()->name());
    benchmark::AddCustomContext("msgpack_c", MSGPACK_VERSION);
    benchmark::AddCustomContext("libprotobuf", std::to_string(GOOGLE_PROTOBUF_VERSION));

    register_all(f);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "codec_bench: %s\n", e.what());
        return 1;
    }
}
