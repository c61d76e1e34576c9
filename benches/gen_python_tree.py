#!/usr/bin/env python3
"""Generate a realistic synthetic Python repository for the `cordon audit` benchmark.

Usage: gen_python_tree.py OUT_DIR [--files 5000] [--seed 4]

File sizes are long-tailed (log-normal, median about 150 lines, about 1% of
files over 1,000 lines). Modules hold classes with methods, decorators,
docstrings, nested `class Meta`, and top-level functions whose statements are
drawn at random (so no two are copies), like an application's code. Planted:
  * DUP_BODIES pairs of function bodies copied with every local renamed and
    every literal changed (Type-2 copies: the exact-body check's findings),
  * NEAR_CHANGED and NEAR_INSERTED functions copied into another module with
    one statement changed, or one inserted (Type-3: the near-miss findings),
  * DUP_NAMES class names defined in two modules,
  * FRAGMENTED files importing `Client` from `core.services.client` (which
    passes on the one defined in `core.db.client`) while every other file
    imports it from `core.db.client`: one fragmented definition,
  * the files over 750 lines (the default file-size limit) are findings too.
Traps, which must not be reported:
  * TRAP_DEFS modules each define their own `build_index` and `Config`, each
    imported by two other files from its own module (same name, different
    definitions: no fragmentation; `Config` is a convention name), and their
    own `class Registry` whose methods are named apart (same name, other
    concepts: no same-name duplicate),
  * nested `class Meta` in many classes and `class Migration` in every file
    of the `migrations/` packages (framework conventions).
The planted counts are printed as JSON on stdout (the benchmark checks them).
"""
import argparse
import json
import math
import os
import random
import re
import statistics

DUP_BODIES = 20
NEAR_CHANGED = 10
NEAR_INSERTED = 10
DUP_NAMES = 10
FRAGMENTED = 25
TRAP_DEFS = 50
MIGRATIONS = 20
FILE_SIZE_LIMIT = 750
MAX_FUNCTION_LINES = 60

WORDS = [
    "user", "order", "item", "total", "count", "value", "result", "record",
    "payload", "config", "cache", "index", "name", "path", "limit", "offset",
    "status", "entry", "batch", "request", "response", "token", "key", "row",
    "column", "buffer", "node", "parent", "child", "score", "price", "amount",
]
VERBS = ["load", "save", "build", "parse", "render", "check", "apply", "merge",
         "fetch", "update", "collect", "resolve", "format", "compute", "split"]


def w(rng):
    return rng.choice(WORDS)


def args(r, most):
    return ", ".join(w(r) for _ in range(r.randint(1, most)))


def op(r):
    return r.choice([">", "<", "==", ">=", "!="])


# Each template renders one statement as lines (indented relative to the body),
# its shape (ignoring names and literals) varying at random too, so that random
# statement sequences of 6 or more are practically never equal in shape.
TEMPLATES = [
    lambda r: [f"{w(r)} = {w(r)}.get({w(r)!r}" + (f", {r.randint(0, 99)})" if r.random() < 0.5 else ")")],
    lambda r: [f"{w(r)} = [{w(r)} for {w(r)} in {w(r)}" + (f" if {w(r)}]" if r.random() < 0.5 else "]")],
    lambda r: [f"if {w(r)} {op(r)} {r.randint(1, 99)}:", f"    {w(r)} = {w(r)}"]
    + (["else:", f"    {w(r)} = None"] if r.random() < 0.5 else []),
    lambda r: [f"for {w(r)} in {w(r)}:", f"    {w(r)}.append({args(r, 2)})"],
    lambda r: [f"{w(r)} = {{"] + [f"    {w(r)!r}: {w(r)}," for _ in range(r.randint(1, 4))] + ["}"],
    lambda r: ["try:", f"    {w(r)} = {w(r)}[{w(r)}]", f"except {r.choice(['KeyError', 'IndexError'])}:",
               f"    logger.warning({'missing %s'!r}, {args(r, 2)})"],
    lambda r: [f"{w(r)} = str({w(r)})" + "".join(f".{m}()" for m in r.sample(["strip", "lower", "title"], r.randint(1, 3)))],
    lambda r: [f"if not {w(r)}:", f"    raise ValueError({'empty ' + w(r)!r})"],
    lambda r: [f"{w(r)} {r.choice(['+=', '-=', '*='])} len({w(r)})"],
    lambda r: [f"{w(r)} = sum({w(r)}) / max(len({w(r)}), {r.randint(1, 9)})"],
    lambda r: [f"logger.debug({w(r) + ' %s'!r}, {args(r, 3)})"],
    lambda r: [f"with open({w(r)}, encoding='utf-8') as fh:", f"    {w(r)} = fh.read()"],
    lambda r: [f"# {w(r)} before {w(r)}: keep the {w(r)} in order"],
    lambda r: [f"{w(r)} = sorted({w(r)}, key=lambda x: x.{w(r)}" + (", reverse=True)" if r.random() < 0.5 else ")")],
    lambda r: [f"while {w(r)} and {w(r)} {op(r)} {r.randint(2, 50)}:", f"    {w(r)} = {w(r)} + 1"],
    lambda r: [f"{w(r)} = {w(r)}_{w(r)}({args(r, 4)}" + "".join(f", {k}={w(r)}" for k in r.sample(WORDS, r.randint(0, 2))) + ")"],
]
ONE_LINE = [0, 1, 6, 8, 9, 10, 13, 15]


def statements(rng, count, kinds=range(len(TEMPLATES))):
    """`count` random statements (template index, lines)."""
    out = []
    for _ in range(count):
        kind = rng.choice(kinds)
        out.append((kind, TEMPLATES[kind](rng)))
    return out


def render(name, stmts, indent="", method=False):
    params = "self, " if method else ""
    head = [f"{indent}def {name}({params}{WORDS[0]}, {WORDS[1]}=None):",
            f'{indent}    """{name.replace("_", " ").capitalize()}."""']
    body = [f"{indent}    {line}" for _, lines in stmts for line in lines]
    return head + body + [f"{indent}    return {WORDS[3]}", ""]


def function(rng, name, indent="", method=False, helper=0.2):
    """A small helper (under the 6 lines any copy check needs; with
    probability `helper`) or a body of 6 or more statements, never over
    MAX_FUNCTION_LINES lines."""
    if rng.random() < helper:
        return render(name, statements(rng, rng.randint(1, 2), ONE_LINE), indent, method)
    count = min(24, max(6, int(rng.lognormvariate(math.log(8), 0.5))))
    stmts = statements(rng, count)
    while sum(len(lines) for _, lines in stmts) > MAX_FUNCTION_LINES - 4:
        stmts.pop()
    return render(name, stmts, indent, method)


def klass(rng, name):
    out = [f"class {name}:", f'    """A {w(rng)} of {w(rng)}s."""', ""]
    if rng.random() < 0.3:
        out += ["    class Meta:", f"        ordering = [{w(rng)!r}]", ""]
    for m in range(rng.randint(1, 6)):
        if rng.random() < 0.2:
            out.append("    @property")
        # The first method is never a small helper, so no two classes are alike.
        helper = 0.2 if m else 0.0
        out += function(rng, f"{rng.choice(VERBS)}_{w(rng)}_{m}", "    ", True, helper)
    return out


def body(rng, i, target):
    """Classes and functions until the module has about `target` lines."""
    out, k = [], 0
    while len(out) < target:
        if rng.random() < 0.4:
            out += klass(rng, f"{w(rng).capitalize()}Model{i}x{k}") + [""]
        else:
            out += function(rng, f"{rng.choice(VERBS)}_{w(rng)}_{k}") + [""]
        k += 1
    return out


def header(i, imports):
    return [f'"""Generated module {i}."""', "import logging", "import os.path", ""] + imports + [
        "", "logger = logging.getLogger(__name__)", f"DEFAULT_LIMIT = {i % 97 + 3}", "", ""]


def near_miss_pair(rng, k, inserted):
    """A function and its copy with one statement changed or inserted."""
    stmts = statements(rng, 14, [t for t in ONE_LINE if t != 10])
    copy = list(stmts)
    at = 7
    # A statement of another shape, so the exact-body check does not equate them.
    edit = (10, TEMPLATES[10](rng))
    if inserted:
        copy.insert(at, edit)
    else:
        copy[at] = edit
    name = f"reconcile_{w(rng)}_{k}"
    return render(name, stmts), render(name, copy)


def renamed(lines):
    """A Type-2 copy: every word renamed, every number changed."""
    out = []
    for line in lines:
        for word in WORDS:
            line = line.replace(word, word.upper())
        out.append(re.sub(r"\b[0-9]+\b", lambda m: str(int(m.group()) + 1), line))
    return out


def planted_extras(i, n, plants):
    """What file `i` carries of the planted copies and traps."""
    extra = []
    for kind, files, lines in plants:
        if i in files:
            extra += lines[files.index(i)] + [""]
    return extra


def make_plants(rng, n):
    """(kind, [file a, file b], [lines a, lines b]) for every planted pair."""
    picks = rng.sample(range(FRAGMENTED, n - MIGRATIONS), 2 * (DUP_BODIES + NEAR_CHANGED + NEAR_INSERTED + DUP_NAMES))
    plants = []
    for k in range(DUP_BODIES):
        f = render(f"planted_{k}", statements(rng, 12))
        plants.append(("body", picks[:2], [f, renamed(f)]))
        picks = picks[2:]
    for k in range(NEAR_CHANGED + NEAR_INSERTED):
        plants.append(("near", picks[:2], list(near_miss_pair(rng, k, k >= NEAR_CHANGED))))
        picks = picks[2:]
    for k in range(DUP_NAMES):
        cls = [f"class SharedConcept{k}:", "    pass", ""]
        plants.append(("name", picks[:2], [cls, cls]))
        picks = picks[2:]
    return plants


def traps(rng, n):
    """Module i -> its own `build_index`, `Config` and `Registry`; importer -> lines."""
    owners = rng.sample(range(FRAGMENTED, n - MIGRATIONS), TRAP_DEFS)
    defs, imports = {}, {}
    for owner in owners:
        defs[owner] = (function(rng, "build_index") + ["class Config:", f"    level = {owner}", ""]
                       + registry(owner))
        for importer in rng.sample(range(n - MIGRATIONS), 2):
            module = f"app.pkg_{owner // 100:03d}.mod_{owner:05d}"
            imports.setdefault(importer, []).append(f"from {module} import build_index")
    return defs, imports


def registry(owner):
    """A `Registry` of the owner's own: its three methods are named for it."""
    lines = ["class Registry:"]
    for verb in ("add", "find", "drop"):
        lines += [f"    def {verb}_{owner}(self, key):", f"        return ({owner}, key)", ""]
    return lines


def migration(i):
    return [f'"""Migration {i}."""', "from django.db import migrations", "", "",
            "class Migration(migrations.Migration):",
            f"    dependencies = [('app', '{i - 1:04d}_auto')]", "    operations = []", ""]


def write(out, i, n, lines):
    if i >= n - MIGRATIONS:
        path = os.path.join(out, "app", "migrations", f"{i:05d}_auto.py")
    else:
        path = os.path.join(out, "app", f"pkg_{i // 100:03d}", f"mod_{i:05d}.py")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return len(lines)


def write_core(out):
    """`Client` is defined once, in core.db.client; core.services.client passes
    it on, so the FRAGMENTED files reach the same definition through a second path."""
    core = os.path.join(out, "core")
    for package in ("db", "services"):
        os.makedirs(os.path.join(core, package), exist_ok=True)
    with open(os.path.join(core, "db", "client.py"), "w") as fh:
        fh.write("class Client:\n    def __init__(self, url):\n        self.url = url\n")
    with open(os.path.join(core, "services", "client.py"), "w") as fh:
        fh.write("from core.db.client import Client\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=4)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    n = args.files
    plants = make_plants(random.Random(args.seed + 1), n)
    trap_defs, trap_imports = traps(random.Random(args.seed + 2), n)
    sizes = []
    for i in range(n):
        if i >= n - MIGRATIONS:
            sizes.append(write(args.out, i, n, migration(i)))
            continue
        src = "core.services.client" if i < FRAGMENTED else "core.db.client"
        imports = [f"from {src} import Client"] + trap_imports.get(i, [])
        lines = header(i, imports)
        lines += planted_extras(i, n, plants) + trap_defs.get(i, [])
        target = int(rng.lognormvariate(math.log(118), 0.8))
        lines += body(rng, i, min(target, 4000) - len(lines))
        sizes.append(write(args.out, i, n, lines))
    write_core(args.out)
    planted = {
        "files": n,
        # One finding per group of copies (each pair's other copy is a related location).
        "duplicate_bodies": DUP_BODIES,
        "near_miss_copies": NEAR_CHANGED + NEAR_INSERTED,
        "duplicate_names": DUP_NAMES,
        # One finding, at the definition; the FRAGMENTED sites are its related places.
        "fragmented_imports": 1,
        "fragmented_sites": FRAGMENTED,
        "oversized_files": sum(1 for s in sizes if s > FILE_SIZE_LIMIT),
        "lines": {
            "total": sum(sizes),
            "median": statistics.median(sizes),
            "p90": sorted(sizes)[int(0.9 * len(sizes))],
            "max": max(sizes),
            "over_1000": sum(1 for s in sizes if s > 1000),
        },
    }
    print(json.dumps(planted))


if __name__ == "__main__":
    main()
