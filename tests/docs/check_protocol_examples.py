"""docs.protocol_examples: the WebSocket examples of docs/protocol.md say what they claim.

docs/protocol.md section 3 shows each example message three times: JSON (a text frame),
MessagePack and Protobuf (binary frames, as annotated hex dumps). Each block follows a marker
`<!-- example: NAME CODEC -->`. This test reads every block and checks that
- the JSON text decodes with gatehouse's own codec (the `gatehouse_codec` module, the client
  codec the server shares) and is exactly what gatehouse's encoder writes for it;
- the MessagePack and Protobuf bytes decode, with gatehouse's codec and with an independent
  decoder (python3-msgpack; a small Protobuf wire-format reader below, after
  proto/gatehouse.proto), to the same envelope as the JSON text: type, correlation_id,
  update_id, traceparent and the payload's value (a welcome's `codec` names its own codec),
  and are exactly the bytes gatehouse's encoder writes for that envelope.
So the page cannot drift from the codecs.

Usage: check_protocol_examples.py PROTOCOL_MD
       check_protocol_examples.py --print PROTOCOL_MD   (the hex blocks for every JSON example,
                                                        to paste after editing one)
The gatehouse_codec module must be importable (PYTHONPATH: build/dev/bindings/python).
"""

import json
import re
import sys

import msgpack

import gatehouse_codec as gc

CODECS = ("json", "msgpack", "protobuf")
MARKER = re.compile(r"<!-- example: (\S+) (json|msgpack|protobuf) -->\s*\n```[a-z]*\n(.*?)\n```",
                    re.DOTALL)
HEX_BYTE = re.compile(r"^[0-9a-f]{2}$")
WIDTH = 16          # bytes per hex line
COMMENT_COLUMN = 56

# proto/gatehouse.proto, gatehouse.v1.Envelope: field number -> name. All are length-delimited.
PROTO_FIELDS = {1: "type", 2: "payload", 3: "correlation_id", 4: "payload_codec",
                5: "update_id", 6: "traceparent"}


def examples(markdown):
    """{name: {codec: block text}}, in the page's order."""
    found = {}
    for name, codec, body in MARKER.findall(markdown):
        if codec in found.setdefault(name, {}):
            raise SystemExit(f"example {name} has two {codec} blocks")
        found[name][codec] = body
    return found


def hex_bytes(block):
    """The bytes of an annotated dump: on each line, the hex pairs before two spaces."""
    out = bytearray()
    for number, line in enumerate(block.split("\n"), 1):
        hex_part = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]
        tokens = hex_part.split()
        if not tokens or not all(HEX_BYTE.match(t) for t in tokens):
            raise ValueError(f"line {number} does not start with hex bytes: {line!r}")
        out += bytes(int(t, 16) for t in tokens)
    return bytes(out)


# --- independent decoders -------------------------------------------------------------------

def varint(data, i):
    value, shift = 0, 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def protobuf_fields(data):
    """[(field number, bytes)] of an Envelope, in wire order (every field is LEN)."""
    fields, i = [], 0
    while i < len(data):
        key, i = varint(data, i)
        number, wire_type = key >> 3, key & 7
        if wire_type != 2 or number not in PROTO_FIELDS:
            raise ValueError(f"unexpected field {number} wire type {wire_type} at byte {i}")
        length, i = varint(data, i)
        if i + length > len(data):
            raise ValueError("a field runs past the end")
        fields.append((number, data[i:i + length]))
        i += length
    return fields


# --- what an example says -------------------------------------------------------------------

def meaning(env, payload_value):
    return {"type": env.type, "payload": payload_value, "correlation_id": env.correlation_id,
            "update_id": env.update_id, "traceparent": env.traceparent}


def payload_value(env):
    if env.payload_format == "json":
        return json.loads(env.payload)
    if env.payload_format == "msgpack":
        return msgpack.unpackb(env.payload, raw=False)
    raise ValueError(f"an opaque payload ({env.payload_codec!r}) says nothing checkable")


def expected_for(codec, json_meaning):
    """The JSON example's meaning, as the same message on a `codec` connection."""
    want = json.loads(json.dumps(json_meaning))
    if want["type"] == "welcome":
        want["payload"]["codec"] = codec  # the welcome names the connection's own codec
    return want


def check_example(name, blocks):
    problems = []
    missing = [c for c in CODECS if c not in blocks]
    if missing:
        return [f"{name}: no {', '.join(missing)} block"]

    text = blocks["json"].strip()
    if "\n" in text:
        problems.append(f"{name} json: one frame, one line")
    env = gc.decode("json", text)
    if gc.encode("json", env) != text.encode():
        problems.append(f"{name} json: gatehouse writes this envelope as "
                        f"{gc.encode('json', env).decode()}")
    said = meaning(env, payload_value(env))

    for codec in ("msgpack", "protobuf"):
        try:
            frame = hex_bytes(blocks[codec])
        except ValueError as e:
            problems.append(f"{name} {codec}: {e}")
            continue
        want = expected_for(codec, said)
        try:
            decoded = gc.decode(codec, frame)
        except gc.CodecError as e:
            problems.append(f"{name} {codec}: gatehouse cannot decode it: {e}")
            continue
        got = meaning(decoded, payload_value(decoded))
        if got != want:
            problems.append(f"{name} {codec}: gatehouse decodes {got}, the JSON says {want}")
        if gc.encode(codec, decoded) != frame:
            problems.append(f"{name} {codec}: gatehouse writes this envelope as "
                            f"{gc.encode(codec, decoded).hex(' ')}")
        # The same again without gatehouse's code.
        if codec == "msgpack":
            whole = msgpack.unpackb(frame, raw=False)
            independent = {k: whole.get(k) for k in want}
        else:
            fields = {PROTO_FIELDS[n]: v for n, v in protobuf_fields(frame)}
            if fields.get("payload_codec") != b"json":
                problems.append(f"{name} protobuf: payload_codec is not json")
            independent = {k: fields[k].decode() if k in fields else None for k in want}
            independent["payload"] = json.loads(fields.get("payload", b"null"))
        if independent != want:
            problems.append(f"{name} {codec}: an independent decoder reads {independent}, "
                            f"the JSON says {want}")
    return problems


# --- the annotated dumps (--print) ----------------------------------------------------------

def dump_line(data, depth, comment):
    hex_text = "  " * depth + " ".join(f"{b:02x}" for b in data)
    column = max(COMMENT_COLUMN, len(hex_text) + 2)  # two spaces at least end the hex
    return f"{hex_text:<{column}}{comment}" if comment else hex_text


def dump_chunks(header, content, depth, comment):
    """A header with its content: one line when it fits, else the content 16 bytes a line."""
    if len(header) + len(content) <= WIDTH:
        return [dump_line(header + content, depth, comment)]
    lines = [dump_line(header, depth, comment)]
    for i in range(0, len(content), WIDTH):
        chunk = content[i:i + WIDTH]
        lines.append(dump_line(chunk, depth + 1, "|" + chunk.decode("latin-1") + "|"))
    return lines


def msgpack_dump(data, i=0, depth=0, role=""):
    """Annotated lines of the msgpack value at data[i] and the offset after it."""
    b = data[i]
    if b <= 0x7F:
        return [dump_line(data[i:i + 1], depth, f"{role}positive fixint {b}")], i + 1
    if 0x80 <= b <= 0x8F or b == 0xDE:
        n, start, kind = (b & 0x0F, i + 1, "fixmap") if b != 0xDE else (
            int.from_bytes(data[i + 1:i + 3], "big"), i + 3, "map 16")
        lines = [dump_line(data[i:start], depth, f"{role}{kind}, {n} pair{'s' if n != 1 else ''}")]
        j = start
        for _ in range(n):
            key_lines, j = msgpack_dump(data, j, depth + 1, "key: ")
            value_lines, j = msgpack_dump(data, j, depth + 1, "")
            lines += key_lines + value_lines
        return lines, j
    if 0x90 <= b <= 0x9F:
        n = b & 0x0F
        lines = [dump_line(data[i:i + 1], depth, f"{role}fixarray, {n} elements")]
        j = i + 1
        for _ in range(n):
            element, j = msgpack_dump(data, j, depth + 1, "")
            lines += element
        return lines, j
    if 0xA0 <= b <= 0xBF or b in (0xD9, 0xDA):
        if b == 0xD9:
            n, start, kind = data[i + 1], i + 2, "str 8"
        elif b == 0xDA:
            n, start, kind = int.from_bytes(data[i + 1:i + 3], "big"), i + 3, "str 16"
        else:
            n, start, kind = b & 0x1F, i + 1, "fixstr"
        text = data[start:start + n].decode()
        comment = f"{role}{kind}, {n} bytes" + (f": {json.dumps(text)}" if n <= WIDTH else "")
        return dump_chunks(data[i:start], data[start:start + n], depth, comment), start + n
    if b == 0xC0:
        return [dump_line(data[i:i + 1], depth, f"{role}nil")], i + 1
    if b in (0xC2, 0xC3):
        return [dump_line(data[i:i + 1], depth, f"{role}{'true' if b == 0xC3 else 'false'}")], i + 1
    if b == 0xCC:
        return [dump_line(data[i:i + 2], depth, f"{role}uint 8 {data[i + 1]}")], i + 2
    raise ValueError(f"the annotator does not know msgpack byte {b:02x}; extend it")


def protobuf_dump(data):
    lines, i = [], 0
    for number, value in protobuf_fields(data):
        start = i
        _, i = varint(data, i)   # key
        length, i = varint(data, i)
        header = data[start:i]
        text = value.decode()
        shown = text if PROTO_FIELDS[number] == "payload" else json.dumps(text)
        comment = f"field {number} {PROTO_FIELDS[number]}, {length} bytes" + (
            f": {shown}" if len(header) + length <= WIDTH else "")
        lines += dump_chunks(header, value, 0, comment)
        i += length
    return lines


def print_blocks(markdown):
    for name, blocks in examples(markdown).items():
        env = gc.decode("json", blocks["json"].strip())
        value = payload_value(env)
        for codec in ("msgpack", "protobuf"):
            want = expected_for(codec, {"type": env.type, "payload": value})["payload"]
            if codec == "msgpack":
                # gatehouse converts its own JSON payloads through nlohmann-json, whose maps
                # keep their keys sorted.
                payload = msgpack.packb(sort_keys(want))
                frame = gc.encode(codec, env.type, payload, payload_format="msgpack",
                                  correlation_id=env.correlation_id, update_id=env.update_id,
                                  traceparent=env.traceparent)
                lines, _ = msgpack_dump(frame)
            else:
                payload = json.dumps(want, separators=(",", ":")).encode()
                frame = gc.encode(codec, env.type, payload, payload_format="json",
                                  correlation_id=env.correlation_id, update_id=env.update_id,
                                  traceparent=env.traceparent)
                lines = protobuf_dump(frame)
            print(f"<!-- example: {name} {codec} -->\n```text")
            print("\n".join(lines))
            print("```\n")


def sort_keys(value):
    if isinstance(value, dict):
        return {k: sort_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [sort_keys(v) for v in value]
    return value


def main(argv):
    printing = argv[:1] == ["--print"]
    path = argv[1] if printing else argv[0]
    with open(path, encoding="utf-8") as f:
        markdown = f.read()
    if printing:
        print_blocks(markdown)
        return 0
    found = examples(markdown)
    problems = []
    for name, blocks in found.items():
        problems += check_example(name, blocks)
    for problem in problems:
        print(problem)
    print(f"{len(found)} examples, {len(problems)} problems")
    return 1 if problems or len(found) < 5 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
