#!/usr/bin/env python3
"""`GET /openapi.json` (docs/openapi.json, docs/openapi.md): the document is valid OpenAPI 3.1,
its examples match their schemas, a server with every route (accounts, `--publish-key`) serves
the checked-in file byte for byte, its paths and methods are the server's (checked through
each path's 405 `Allow`, and a real upgrade for each WebSocket path), and live answers (login,
/ready, errors) match the documented responses.

Usage: test_openapi.py PATH/TO/gatehouse-server [unittest args]

Validation uses Debian's python3-jsonschema (Draft 2020-12, the dialect of OpenAPI 3.1) with the
official OpenAPI 3.1 schema vendored in tests/server/vendor/ (see its README.md): CI reaches no
network. Formats (`uri`, `media-range`) are not checked; the structure is.
"""

import json
import os
import unittest

import jsonschema

import gatehouse_harness as h
import accounts_helpers as ah

HERE = os.path.dirname(os.path.abspath(__file__))
DOCUMENT_PATH = os.path.join(HERE, "..", "..", "docs", "openapi.json")
OAS_SCHEMA_PATH = os.path.join(HERE, "vendor", "openapi-3.1-schema.json")
OPERATIONS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def load(path):
    with open(path, "rb") as f:
        return f.read()


DOCUMENT_BYTES = load(DOCUMENT_PATH)
DOCUMENT = json.loads(DOCUMENT_BYTES)
OAS_SCHEMA = json.loads(load(OAS_SCHEMA_PATH))


def schema_validator(schema):
    """A Draft 2020-12 validator of `schema`, whose `$ref`s resolve inside the document."""
    resolver = jsonschema.RefResolver(base_uri="", referrer=DOCUMENT)
    return jsonschema.Draft202012Validator(schema, resolver=resolver)


def resolve(node):
    """A Reference Object's target within the document (one level is all the document uses)."""
    if isinstance(node, dict) and "$ref" in node:
        target = DOCUMENT
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return target
    return node


def media_types(node, where=""):
    """Every (where, media type object) of the document, references followed."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "content" and isinstance(value, dict):
                for media, obj in value.items():
                    yield f"{where}/content/{media}", obj
            else:
                yield from media_types(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from media_types(value, f"{where}/{i}")


def operations():
    for path, item in DOCUMENT["paths"].items():
        for method in OPERATIONS:
            if method in item:
                yield method.upper(), path, item[method]


class Document(unittest.TestCase):
    """The checked-in file alone."""

    def test_valid_openapi_3_1(self):
        validator = jsonschema.Draft202012Validator(OAS_SCHEMA)
        errors = [f"{list(e.absolute_path)}: {e.message[:300]}"
                  for e in validator.iter_errors(DOCUMENT)]
        self.assertEqual(errors, [])
        self.assertTrue(DOCUMENT["openapi"].startswith("3.1."))

    def test_the_validator_rejects_a_broken_document(self):
        # The schema does bite: a response without its required description, an operation
        # without responses, and an unknown top-level member are each refused.
        validator = jsonschema.Draft202012Validator(OAS_SCHEMA)
        for name, breaks in {
            "response without description":
                lambda d: d["paths"]["/health"]["get"]["responses"]["200"].pop("description"),
            "empty responses": lambda d: d["paths"]["/login"]["post"].update(responses={}),
            "unknown member": lambda d: d.update(webhook={}),
            "bad parameter location":
                lambda d: d["components"]["parameters"]["codec"].update({"in": "body"}),
        }.items():
            with self.subTest(name):
                broken = json.loads(DOCUMENT_BYTES)
                breaks(broken)
                self.assertFalse(validator.is_valid(broken))

    def test_schemas_are_valid_json_schema(self):
        for name, schema in DOCUMENT["components"]["schemas"].items():
            with self.subTest(name):
                jsonschema.Draft202012Validator.check_schema(schema)

    def test_examples_match_their_schemas(self):
        checked = 0
        for where, media in media_types(DOCUMENT):
            if "example" not in media or "schema" not in media:
                continue
            with self.subTest(where):
                errors = [e.message[:300]
                          for e in schema_validator(media["schema"]).iter_errors(media["example"])]
                self.assertEqual(errors, [])
                checked += 1
        for name, param in DOCUMENT["components"]["parameters"].items():
            if "example" in param:
                with self.subTest(f"parameter {name}"):
                    schema_validator(param["schema"]).validate(param["example"])
                    checked += 1
        self.assertGreater(checked, 20)

    def test_a_schema_refuses_what_the_server_refuses(self):
        # The schemas are not all-accepting: examples of bodies the server answers 400.
        registration = DOCUMENT["components"]["schemas"]["Registration"]
        for body in ({"username": "ab", "email": "a@b", "password": "12345678"},
                     {"username": "alice", "email": "no-at", "password": "12345678"},
                     {"username": "alice", "email": "a@b", "password": "short"},
                     {"username": "alice", "email": "a@b"}):
            with self.subTest(body=body):
                self.assertFalse(schema_validator(registration).is_valid(body))
        change = DOCUMENT["components"]["schemas"]["SettingsChange"]
        self.assertFalse(schema_validator(change).is_valid({"colour": "red"}))
        self.assertFalse(schema_validator(change).is_valid({"current_password": "x"}))

    def test_every_operation_has_an_id_a_tag_and_an_error_answer(self):
        ids = []
        for method, path, op in operations():
            with self.subTest(f"{method} {path}"):
                self.assertIn("operationId", op)
                ids.append(op["operationId"])
                self.assertTrue(op.get("tags"))
                self.assertIn("default", op["responses"])
                for status, response in op["responses"].items():
                    response = resolve(response)
                    if status.startswith(("4", "5")) or status == "default":
                        self.assertIn("application/problem+json", response.get("content", {}),
                                      status)
        self.assertEqual(len(ids), len(set(ids)), "operationIds are unique")

    def test_security_schemes_are_defined(self):
        schemes = DOCUMENT["components"]["securitySchemes"]
        for method, path, op in operations():
            for requirement in op.get("security", []):
                for name in requirement:
                    self.assertIn(name, schemes, f"{method} {path}")


class Served(h.ServerTestCase):
    """A server with every route: accounts (the default sqlite store), `--publish-key` (the
    harness gives one), commands and event streams on; and one allowed origin, for the 403 of
    sessions opened from another."""

    ALLOWED_ORIGIN = "https://game.example"

    @classmethod
    def server_args(cls):
        return ah.NO_AUTH_RATE_LIMIT + ["--allowed-origins", cls.ALLOWED_ORIGIN]

    def check_documented(self, method, path, r):
        """`r` is one of the answers documented for the operation: its status (or the default
        answer), its media type, and a body that validates against the schema."""
        op = DOCUMENT["paths"][path][method.lower()]
        responses = op["responses"]
        response = resolve(responses.get(str(r.status), responses["default"]))
        content = response.get("content")
        if not content:
            self.assertEqual(r.body, b"", r)
            return None
        media = r.content_type.split(";")[0].strip()
        self.assertIn(media, content, r)
        if media.endswith("json"):
            errors = [e.message[:300]
                      for e in schema_validator(content[media]["schema"]).iter_errors(r.json)]
            self.assertEqual(errors, [], r)
        return r.json

    def test_serves_the_checked_in_file(self):
        status, headers, body = self.server.http("GET", "/openapi.json")
        self.assertEqual(status, 200)
        self.assertTrue(headers.get("content-type", "").startswith("application/json"))
        self.assertEqual(body, DOCUMENT_BYTES, "a server with every route serves the file as is")

    def test_head_is_answered_as_get(self):
        status, headers, body = self.server.http("HEAD", "/openapi.json")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"")

    def test_documented_methods_are_the_routes_methods(self):
        # The router answers a method a path does not have with 405 and `Allow` naming the ones
        # it has: those must be exactly the documented operations of that path.
        for path, item in DOCUMENT["paths"].items():
            documented = {m.upper() for m in OPERATIONS if m in item}
            with self.subTest(path):
                if path.startswith("/ws/"):
                    # The WebSocket paths: a request that is not an upgrade gets 426.
                    concrete = path.replace("{access_token}", "x").replace("{bot_key}", "x")
                    r = ah.request(self.server, "GET", concrete)
                    ah.check_problem(self, r, 426, "upgrade_required")
                    self.check_documented("GET", path, r)
                    continue
                r = ah.request(self.server, "DELETE", path)
                ah.check_problem(self, r, 405, "method_not_allowed")
                self.assertEqual(ah.allow_set(r), documented, r)

    async def test_documented_websocket_paths_upgrade(self):
        # Every path under /ws/ answers 426 to a request that is not an upgrade, and the route
        # table has /ws/ as one prefix: only a real upgrade tells a documented endpoint from a
        # path that is none (404 not_found).
        token = self.server.token("openapi-ws")
        values = {"{access_token}": token, "{bot_key}": self.server.bot_keys["rover"]}
        for path in DOCUMENT["paths"]:
            if not path.startswith("/ws/"):
                continue
            concrete = path
            for name, value in values.items():
                concrete = concrete.replace(name, value)
            with self.subTest(path):
                self.assertNotIn("{", concrete, "a path parameter this test cannot fill")
                codec = "msgpack" if path.startswith("/ws/bot/") else "json"
                c = await h.Client.open(self.server, concrete, codec=codec,
                                        headers={"Authorization": "Bearer " + token})
                try:
                    self.assertEqual(c.welcome["type"], "welcome")
                finally:
                    await c.close()

    def test_an_undocumented_path_is_not_routed(self):
        r = ah.request(self.server, "GET", "/no-such-route")
        ah.check_problem(self, r, 404, "not_found")

    def test_operations_answers(self):
        s = self.server
        self.check_documented("GET", "/health", ah.request(s, "GET", "/health"))
        ready = self.check_documented("GET", "/ready", ah.request(s, "GET", "/ready"))
        self.assertEqual(ready["status"], "ready")
        r = ah.request(s, "GET", "/metrics")
        self.assertEqual(r.status, 200)
        self.check_documented("GET", "/metrics", r)

    def test_account_answers(self):
        s = self.server
        username, email, password, player_id = ah.register_ok(self, s)
        r = ah.register(s, username)
        ah.check_problem(self, r, 409, "username_taken")
        self.check_documented("POST", "/register", r)
        r = ah.register(s, "x")
        ah.check_problem(self, r, 400, "invalid_request")
        self.check_documented("POST", "/register", r)
        r = ah.post(s, "/register", "not json", content_type="text/plain")
        ah.check_problem(self, r, 415)
        self.check_documented("POST", "/register", r)

        r = ah.login(s, username, "wrong-" + password)
        ah.check_problem(self, r, 401, "invalid_credentials")
        self.check_documented("POST", "/login", r)
        r = ah.login(s, email, password)
        pair = self.check_documented("POST", "/login", r)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(pair["player_id"], player_id)

        r = ah.get_settings(s, pair["access_token"])
        self.assertEqual(r.status, 200, r)
        self.check_documented("GET", "/player/settings", r)
        r = ah.patch_settings(s, pair["access_token"], {"preferences": {"theme": "dark"}},
                              content_type="application/merge-patch+json")
        self.assertEqual(r.status, 200, r)
        self.check_documented("PATCH", "/player/settings", r)
        r = ah.put_settings(s, pair["access_token"], {"colour": "red"})
        ah.check_problem(self, r, 400, "invalid_request")
        self.check_documented("PUT", "/player/settings", r)
        r = ah.get_settings(s, "not-a-token")
        ah.check_problem(self, r, 401, "unauthorized")
        self.check_documented("GET", "/player/settings", r)

        r = ah.refresh(s, pair["refresh_token"])
        self.assertEqual(r.status, 200, r)
        pair = self.check_documented("POST", "/token/refresh", r)
        r = ah.logout(s, pair["refresh_token"])
        self.assertEqual(r.status, 204, r)
        self.check_documented("POST", "/logout", r)
        r = ah.logout(s, pair["refresh_token"])
        ah.check_problem(self, r, 401, "invalid_token")
        self.check_documented("POST", "/logout", r)

    def test_realtime_answers(self):
        s = self.server
        token = s.token("openapi-player")
        r = ah.post(s, "/commands", {"type": "player_action", "payload": {"move": [1, 2]},
                                     "correlation_id": "c-openapi"}, token=token)
        self.assertEqual(r.status, 202, r)
        self.check_documented("POST", "/commands", r)
        r = ah.post(s, "/commands", {"type": "gatehouse.refresh"}, token=token)
        ah.check_problem(self, r, 400, "invalid_envelope")
        self.check_documented("POST", "/commands", r)
        r = ah.post(s, "/commands", {"type": "t"})
        ah.check_problem(self, r, 401, "unauthorized")
        self.check_documented("POST", "/commands", r)

        r = ah.post(s, "/updates", {"player_id": "openapi-player", "type": "score",
                                    "payload": {"points": 10}}, token=s.publish_key)
        self.assertEqual(r.status, 202, r)
        self.check_documented("POST", "/updates", r)
        r = ah.post(s, "/updates", {"type": "score"}, token=s.publish_key)
        ah.check_problem(self, r, 400, "invalid_update")
        self.check_documented("POST", "/updates", r)
        r = ah.post(s, "/updates", {"broadcast": True, "type": "t"}, token="wrong")
        ah.check_problem(self, r, 401, "unauthorized")
        self.check_documented("POST", "/updates", r)

        r = ah.request(s, "GET", "/sse/player?token=not-a-token")
        ah.check_problem(self, r, 401, "unauthorized")
        self.check_documented("GET", "/sse/player", r)
        r = ah.request(s, "GET", "/sse/player?token=" + token,
                       headers={"Origin": "https://elsewhere.example"})
        ah.check_problem(self, r, 403, "origin_not_allowed")
        self.check_documented("GET", "/sse/player", r)


class WithoutPublishKey(unittest.TestCase):
    """A server without `--publish-key` has no `POST /updates`, and does not describe it."""

    def test_updates_not_described(self):
        server = h.Server().start()
        try:
            status, _, body = server.http("GET", "/openapi.json")
            self.assertEqual(status, 200)
            served = json.loads(body)
            self.assertNotIn("/updates", served["paths"])
            expected = dict(DOCUMENT["paths"])
            del expected["/updates"]
            self.assertEqual(served["paths"], expected)
            self.assertEqual(served["components"], DOCUMENT["components"])
            self.assertTrue(jsonschema.Draft202012Validator(OAS_SCHEMA).is_valid(served))
            r = ah.post(server, "/updates", {"broadcast": True, "type": "t"}, token="k")
            ah.check_problem(self, r, 404, "not_found")
        finally:
            self.assertEqual(server.stop(), 0)


if __name__ == "__main__":
    h.run_main()
