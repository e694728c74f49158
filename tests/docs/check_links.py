"""docs.links: every relative link in the repository's Markdown resolves, anchors included.

A link `[text](path)` or `[text](path#anchor)` (and a reference definition `[x]: path`) in
README.md, docs/**/*.md and the other Markdown files of the source tree must name a file or
directory that exists; an anchor into a Markdown file must be one of its headings, slugged as
GitHub slugs them, or an explicit `<a id="...">` / `<a name="...">`. Absolute URLs
(`https:`, `mailto:` ...) are not fetched. Code spans and fenced code blocks are skipped.

The wire contract is docs/protocol.md: no page may cite it as PROTOCOL.md, a file the
repository does not have (it lived beside the repository while the project was planned).

Usage: check_links.py SOURCE_DIR
"""

import os
import re
import sys
from urllib.parse import unquote

SKIP_DIRS = {".git", "node_modules", "third_party", "_deps"}

FENCE = re.compile(r"^ {0,3}(```|~~~)")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"", re.IGNORECASE)
CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def markdown_files(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames
                             if d not in SKIP_DIRS and not d.startswith("build"))
        for name in sorted(filenames):
            if name.endswith(".md"):
                yield os.path.join(dirpath, name)


def prose_lines(text):
    """(line number, line) outside fenced code blocks."""
    fence = None
    for number, line in enumerate(text.split("\n"), 1):
        m = FENCE.match(line)
        if m:
            if fence is None:
                fence = m.group(1)
            elif line.strip().startswith(fence):
                fence = None
            continue
        if fence is None:
            yield number, line


def slug(heading):
    """GitHub's anchor for a heading (github-slugger on the rendered text)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text)                          # inline HTML
    text = text.replace("`", "").replace("*", "")
    text = text.lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path, cache={}):
    if path not in cache:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        found, seen = set(), {}
        for _, line in prose_lines(text):
            m = HEADING.match(line)
            if m:
                base = slug(m.group(2))
                n = seen.get(base, 0)
                seen[base] = n + 1
                found.add(base if n == 0 else f"{base}-{n}")
            found.update(a for a in HTML_ANCHOR.findall(line))
        cache[path] = found
    return cache[path]


def links(text):
    for number, line in prose_lines(text):
        m = REFERENCE_DEF.match(line)
        if m:
            yield number, m.group(1)
            continue
        for m in INLINE_LINK.finditer(CODE_SPAN.sub("", line)):
            yield number, m.group(1)


def check(root):
    """(problems, relative links checked)."""
    problems, count = [], 0
    for path in markdown_files(root):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        where = os.path.relpath(path, root)
        for number, line in enumerate(text.split("\n"), 1):
            if "PROTOCOL.md" in line:
                problems.append(f"{where}:{number}: cites PROTOCOL.md, which the repository "
                                f"does not have: link docs/protocol.md's sections instead")
        for number, target in links(text):
            if not target or re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
                continue  # absolute URLs are not fetched
            count += 1
            file_part, _, anchor = target.partition("#")
            resolved = path if not file_part else os.path.normpath(
                os.path.join(os.path.dirname(path), unquote(file_part)))
            if not os.path.exists(resolved):
                problems.append(f"{where}:{number}: {target}: no such file")
            elif anchor and resolved.endswith(".md") and unquote(anchor) not in anchors(resolved):
                problems.append(f"{where}:{number}: {target}: no heading with that anchor in "
                                f"{os.path.relpath(resolved, root)}")
    return problems, count


def main(root):
    problems, count = check(root)
    for problem in problems:
        print(problem)
    print(f"{count} relative links checked, {len(problems)} problems")
    return 1 if problems or count == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
