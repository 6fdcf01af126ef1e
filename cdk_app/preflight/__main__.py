"""Every preflight rule with its resource types and source: ``python -m cdk_app.preflight [--markdown]``.

Without CDK: the rules are plain Python, so this answers in a fraction of a second.
"""

from __future__ import annotations

import sys

from cdk_app.preflight import RULES


def main(argv: list[str]) -> int:
    markdown = "--markdown" in argv
    if markdown:
        print("| Rule | Checks | Prevents | Source |\n|---|---|---|---|")
    for rule in RULES.values():
        kind = "" if rule.severity == "error" else " (warning)"
        if markdown:
            print(f"| `{rule.id}`{kind} | {rule.summary} | {rule.message} | {rule.source} |")
        else:
            print(f"{rule.id}{kind}: {rule.summary}\n    types: {', '.join(rule.types)}\n"
                  f"    prevents: {rule.message}\n    source: {rule.source}")
    print(f"{len(RULES)} rules.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
