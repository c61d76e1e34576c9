#!/usr/bin/env python3
"""Generate a synthetic Python repository for the `cordon audit` benchmark.

Usage: gen_python_tree.py OUT_DIR [--files 5000] [--seed 4]

Every file gets structurally distinct functions and classes (random statement
sequences), so only the planted findings are duplicates:
  * DUP_BODIES pairs of near-identical function bodies (renamed, other literals),
  * DUP_NAMES class names defined in two modules,
  * FRAGMENTED files importing `Client` from `core.services.client` (which passes
    on the one defined in `core.db.client`) while every other file imports it from
    `core.db.client`: one fragmented definition.
The planted counts are printed as JSON on stdout (the benchmark checks them).
"""
import argparse
import json
import os
import random
import re

DUP_BODIES = 20
DUP_NAMES = 10
FRAGMENTED = 25

STATEMENTS = [
    "    {v} = {a} + {n}",
    "    {v} = [{a}, {b}, {n}]",
    "    if {a} > {n}:\n        {v} = {b}\n    else:\n        {v} = {a}",
    "    for {v} in range({n}):\n        {a} = {a} + {v}",
    "    {v} = {{'{a}': {a}, '{b}': {n}}}",
    "    while {a} < {n}:\n        {a} += 1",
    "    {v} = str({a}).upper()",
    "    try:\n        {v} = {a} / {b}\n    except ZeroDivisionError:\n        {v} = None",
    "    {v} = [x * {n} for x in range({a})]",
    "    {v} = ({a}, {b}) if {a} else ({b}, {a})",
]


def function(rng, name, lines=None):
    """A function whose statement sequence is random (hence structurally unique)."""
    names = ["a", "b", "c", "d", "total", "acc", "item", "value"]
    body = []
    for _ in range(lines or rng.randint(10, 16)):
        tmpl = rng.choice(STATEMENTS)
        body.append(tmpl.format(v=rng.choice(names), a="a", b="b", n=rng.randint(1, 99)))
    body.append("    return a, b")
    return f"def {name}(a, b):\n    a = a or 0\n    b = b or 1\n" + "\n".join(body) + "\n"


def module_text(rng, i, header, extra):
    parts = [header, ""]
    parts.append(f"class Model{i}:")
    parts.append(f'    """Model number {i}."""')
    parts.append("")
    for m in range(2):
        meth = function(rng, f"method_{m}")
        parts.append("    " + meth.replace("\n", "\n    ").rstrip())
        parts.append("")
    for f in range(3):
        parts.append(function(rng, f"func_{i}_{f}"))
    parts.extend(extra)
    return "\n".join(parts) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=4)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    n = args.files
    dup_template_rng = random.Random(args.seed + 1)
    templates = [function(dup_template_rng, "template", lines=12) for _ in range(DUP_BODIES)]
    for i in range(n):
        pkg = os.path.join(args.out, "app", f"pkg_{i // 100:03d}")
        os.makedirs(pkg, exist_ok=True)
        src = "core.services.client" if i < FRAGMENTED else "core.db.client"
        header = f'"""Generated module {i}."""\nfrom {src} import Client\nimport os.path\n'
        extra = []
        if i < 2 * DUP_BODIES:
            # Files k and k + DUP_BODIES share template k under different names/literals.
            k = i % DUP_BODIES
            body = templates[k].replace("template", f"planted_{i}")
            if i >= DUP_BODIES:
                # Type-2 clone: locals renamed and constants changed.
                body = re.sub(r"\b(total|acc|item|value|c|d)\b", r"\1_renamed", body)
                body = re.sub(r"\b([0-9]+)\b", lambda m: str(int(m.group(1)) + 1), body)
            extra.append(body)
        if 2 * DUP_BODIES <= i < 2 * DUP_BODIES + 2 * DUP_NAMES:
            extra.append(f"class SharedConcept{i % DUP_NAMES}:\n    pass\n")
        with open(os.path.join(pkg, f"mod_{i:05d}.py"), "w") as fh:
            fh.write(module_text(rng, i, header, extra))
    # `Client` is defined once, in core.db.client; core.services.client passes it on,
    # so the FRAGMENTED files reach the same definition through a second path.
    core = os.path.join(args.out, "core")
    for package in ("db", "services"):
        os.makedirs(os.path.join(core, package), exist_ok=True)
    with open(os.path.join(core, "db", "client.py"), "w") as fh:
        fh.write('class Client:\n    def __init__(self, url):\n        self.url = url\n')
    with open(os.path.join(core, "services", "client.py"), "w") as fh:
        fh.write("from core.db.client import Client\n")
    planted = {
        "files": n,
        # One finding per group of copies (each pair's other copy is a related location).
        "duplicate_bodies": DUP_BODIES,
        "duplicate_names": DUP_NAMES,
        # One finding, at the definition; the FRAGMENTED sites are its related places.
        "fragmented_imports": 1,
        "fragmented_sites": FRAGMENTED,
    }
    print(json.dumps(planted))


if __name__ == "__main__":
    main()
