"""The metric families docs/operations.md documents and the sources register, for the tests
that keep the two, /metrics and the Grafana dashboard in agreement (test_metrics.py,
tests/deploy/test_grafana_dashboard.py)."""

import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OPERATIONS_MD = os.path.join(REPO, "docs", "operations.md")
# Where families are registered: the library and the reference server.
SOURCE_DIRS = ("src", "server")
# String literals of the metric namespaces that are not metric families: the Redis functions
# the update log and the append batch call (docs/redis.md).
NOT_FAMILIES = {"gatehouse_append", "gatehouse_publish", "gatehouse_read"}

FAMILY_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LITERAL_RE = re.compile(r'"((?:gatehouse|process)_[a-z0-9_]+)"')
# The series a histogram family renders besides its name.
HISTOGRAM_SUFFIX_RE = re.compile(r"_(bucket|sum|count)$")


def documented_families():
    """The first cell of every table row in the Metrics section of docs/operations.md, when it
    is a backquoted metric name."""
    with open(OPERATIONS_MD, encoding="utf-8") as f:
        text = f.read()
    start = text.index("\n## Metrics\n")
    end = text.find("\n## ", start + 1)
    section = text[start:end if end >= 0 else len(text)]
    families = set()
    for line in section.splitlines():
        m = re.match(r"^\|\s*`([^`]+)`\s*\|", line)
        if m and FAMILY_RE.match(m.group(1)):
            families.add(m.group(1))
    return families


def source_families():
    """{family: first file naming it} for every `"gatehouse_..."`/`"process_..."` literal in
    the sources, less the names that are not families."""
    found = {}
    for top in SOURCE_DIRS:
        for root, _, files in os.walk(os.path.join(REPO, top)):
            for name in sorted(files):
                if not name.endswith((".cpp", ".hpp")):
                    continue
                path = os.path.join(root, name)
                with open(path, encoding="utf-8") as f:
                    for family in LITERAL_RE.findall(f.read()):
                        if family not in NOT_FAMILIES:
                            found.setdefault(family, os.path.relpath(path, REPO))
    return found


def family_of(series, families):
    """The family in `families` a series name belongs to (`x_bucket` to the histogram `x`), or
    None."""
    if series in families:
        return series
    base = HISTOGRAM_SUFFIX_RE.sub("", series)
    return base if base != series and base in families else None
