#!/usr/bin/env python3
"""Display names without control or format characters (issue 14, item 6), against the real
server.

Other players' clients render display names, so `PATCH` and `PUT /player/settings` refuse
names holding Unicode category Cc (NUL, ESC, CR, LF, DEL, C1 controls), Cf (bidi embeddings,
overrides and isolates, zero-width characters, the BOM, soft hyphen, tags) or the line and
paragraph separators U+2028/U+2029, with 400 `invalid_request`, and the stored name stays
unchanged. Names in any script, with emoji or ordinary spaces, are still accepted. Usernames
are ASCII-restricted already (`[A-Za-z0-9_.-]`): checked here too, since a username is the
default display name.

Usage: test_display_names.py PATH/TO/gatehouse-server [unittest args]
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
import gatehouse_harness as h  # noqa: E402
import accounts_helpers as ah  # noqa: E402

REFUSED = {
    "NUL": "a\u0000b",
    "ESC (ANSI colour)": "\u001b[31mred",
    "CR": "a\rb",
    "LF": "a\nb",
    "TAB": "a\tb",
    "DEL": "a\u007fb",
    "NEL (C1)": "a\u0085b",
    "soft hyphen": "a\u00adb",
    "Arabic letter mark": "a\u061cb",
    "zero-width space": "a\u200bb",
    "zero-width joiner": "a\u200db",
    "left-to-right mark": "a\u200eb",
    "right-to-left mark": "a\u200fb",
    "line separator": "a\u2028b",
    "paragraph separator": "a\u2029b",
    "LRE": "a\u202ab",
    "RLO": "evil\u202egnp.exe",
    "PDF": "a\u202cb",
    "word joiner": "a\u2060b",
    "LRI": "a\u2066b",
    "PDI": "a\u2069b",
    "BOM": "\ufeffname",
    "interlinear annotation": "a\ufff9b",
    "tag character": "a\U000e0041b",
}

ACCEPTED = ["Zoë", "日本語の名前", "محمد", "player one", "😀 smile", "a\u00a0b", "x" * 32]


class DisplayNames(ah.AccountsCase):
    def setUp(self):
        username, _, pw, self.player_id = ah.register_ok(self, self.server)
        self.username = username
        self.token = ah.login_ok(self, self.server, username, pw)["access_token"]

    def check_refused(self, r, what):
        ah.check_problem(self, r, 400, "invalid_request")
        doc = ah.check_json(self, ah.get_settings(self.server, self.token), 200)
        self.assertEqual(doc["display_name"], self.username, f"{what} changed the stored name")

    def test_patch_refuses_control_and_format_characters(self):
        for what, name in REFUSED.items():
            with self.subTest(what=what):
                self.check_refused(
                    ah.patch_settings(self.server, self.token, {"display_name": name}), what)
                self.check_refused(
                    ah.patch_settings(self.server, self.token, {"display_name": name},
                                      content_type="application/merge-patch+json"), what)

    def test_put_refuses_control_and_format_characters(self):
        for what, name in REFUSED.items():
            with self.subTest(what=what):
                self.check_refused(
                    ah.put_settings(self.server, self.token,
                                    {"display_name": name, "preferences": {}}), what)

    def test_escaped_and_raw_forms_alike(self):
        # The same code points sent raw in UTF-8 rather than as \\u escapes.
        body = '{"display_name":"a\u202eb\u200bc"}'.encode()
        self.check_refused(ah.patch_settings(self.server, self.token, body), "raw UTF-8")

    def test_other_names_are_accepted(self):
        for name in ACCEPTED:
            with self.subTest(name=name):
                r = ah.patch_settings(self.server, self.token, {"display_name": name})
                self.assertEqual(ah.check_json(self, r, 200)["display_name"], name)
        r = ah.patch_settings(self.server, self.token, {"display_name": None})
        self.assertEqual(ah.check_json(self, r, 200)["display_name"], self.username)

    def test_usernames_stay_ascii(self):
        for name in ("bad\u202ename", "zero\u200bwidth", "new\nline", "nul\u0000x"):
            with self.subTest(name=repr(name)):
                r = ah.register(self.server, name, email=ah.unique() + "@example.test")
                ah.check_problem(self, r, 400, "invalid_request")


if __name__ == "__main__":
    h.run_main()
