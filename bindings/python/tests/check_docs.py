"""bindings.docs: docs/bindings.md must show each example file verbatim, as one fenced code block,
so the examples the tests compile and run are the ones readers copy.

Usage: check_docs.py DOC.md FILE...
"""

import re
import sys


def code_blocks(markdown):
    return [m.group(1) for m in re.finditer(r"^```[a-z]*\n(.*?)^```\s*$", markdown,
                                            re.MULTILINE | re.DOTALL)]


def main(doc_path, *files):
    with open(doc_path, encoding="utf-8") as f:
        blocks = [b.strip() for b in code_blocks(f.read())]
    missing = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            if f.read().strip() not in blocks:
                missing.append(path)
    for path in missing:
        print(f"{doc_path} does not show {path} verbatim in a code block: copy it in again")
    print(f"{len(files) - len(missing)} of {len(files)} examples in sync")
    return 1 if missing or not files else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
