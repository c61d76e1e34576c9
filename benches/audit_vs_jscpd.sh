#!/usr/bin/env bash
#! `cordon audit` against jscpd 5.3.3 (default detection mode: exact token clones), side by side
#! in one run, on two trees: the generated one (benches/gen_python_tree.py) and Django's source
#! distribution from PyPI (pinned, checksum from PyPI's JSON API). Each tool runs RUNS times per
#! tree, alternating; prints the median wall time as Python files/s, the largest max RSS
#! (`/usr/bin/time -v`) and the median CPU seconds (user + system: on a shared machine the
#! wall time depends on what else runs). Also leaves cordon's JSON findings on Django for the precision sample.
#!   benches/audit_vs_jscpd.sh [work-dir]
#! Env: RUNS (3), FILES (5000, generated tree), CORDON (the release binary; default
#!   ${CARGO_TARGET_DIR:-target}/release/cordon, built first with `cargo build -p cordon --release`).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-${TMPDIR:-/tmp}/cordon-audit-bench}
runs=${RUNS:-3}
files=${FILES:-5000}
cordon=${CORDON:-${CARGO_TARGET_DIR:-$here/../target}/release/cordon}
jscpd_version=5.3.3
django_version=5.2.8
mkdir -p "$work"

jscpd="$work/jscpd/node_modules/.bin/jscpd"
if [ ! -x "$jscpd" ]; then
  npm install --no-audit --no-fund --silent --prefix "$work/jscpd" "jscpd@$jscpd_version" >&2
fi

if [ ! -d "$work/generated" ]; then
  python3 "$here/gen_python_tree.py" "$work/generated" --files "$files" > "$work/generated.json"
fi

django="$work/django-$django_version"
if [ ! -d "$django" ]; then
  python3 - "$django_version" "$work" <<'EOF'
import hashlib, json, sys, tarfile, urllib.parse, urllib.request
version, work = sys.argv[1], sys.argv[2]
index = "https://pypi.org/pypi/Django/json"
meta = json.load(urllib.request.urlopen(index))
sdist = next(u for u in meta["releases"][version] if u["packagetype"] == "sdist")
data = urllib.request.urlopen(urllib.parse.urljoin(index, sdist["url"])).read()
if hashlib.sha256(data).hexdigest() != sdist["digests"]["sha256"]:
    sys.exit("checksum mismatch for " + sdist["filename"])
path = f"{work}/{sdist['filename']}"
open(path, "wb").write(data)
with tarfile.open(path) as tar:
    tar.extractall(work, filter="data")
EOF
fi

# One timed run: prints "seconds max_rss_kb cpu_seconds" (cpu: user + system).
timed() {
  local log
  log=$(mktemp)
  /usr/bin/time -v "$@" > /dev/null 2> "$log" || true
  awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0;
                 for (i = 1; i <= n; i++) s = s * 60 + t[i] }
               /Maximum resident set size/ { rss = $2 }
               /User time|System time/ { cpu += $2 }
               END { printf "%.3f %d %.2f\n", s, rss, cpu }' "$log"
  rm -f "$log"
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

report=()
for tree in generated "django-$django_version"; do
  dir="$work/$tree"
  py_files=$(find "$dir" -name '*.py' | wc -l)
  : > "$work/cordon.times"
  : > "$work/jscpd.times"
  for _ in $(seq "$runs"); do
    timed "$cordon" audit "$dir" >> "$work/cordon.times"
    timed "$jscpd" --format python --silent "$dir" >> "$work/jscpd.times"
  done
  for tool in cordon jscpd; do
    secs=$(cut -d' ' -f1 "$work/$tool.times" | median)
    rss=$(cut -d' ' -f2 "$work/$tool.times" | sort -n | tail -1)
    cpu=$(cut -d' ' -f3 "$work/$tool.times" | median)
    report+=("$(printf '%-14s %-7s %6d py files  %7.3f s  %6.0f files/s  %6.0f MB peak  %6.2f cpu-s' \
      "$tree" "$tool" "$py_files" "$secs" "$(echo "$py_files / $secs" | bc -l)" \
      "$(echo "$rss / 1024" | bc -l)" "$cpu")")
  done
done
"$cordon" audit "$django" --format json > "$work/django-findings.json" 2> /dev/null || true
# The precision sample of docs/audit.md: of the N findings in output order (file, line,
# rule), the one at index floor(i * N / 30) for i = 0..29.
python3 - "$work/django-findings.json" > "$work/django-sample.txt" <<'EOF'
import json, sys
found = json.load(open(sys.argv[1]))["violations"]
print(f"{len(found)} findings; sample:")
for i in range(30):
    v = found[i * len(found) // 30]
    print(f"{i + 1}. {v['file']}:{v['line']} [{v['rule']}] {v['message']}")
    for r in v["related"]:
        print(f"     also {r['file']}:{r['line']}: {r['label']}")
EOF
echo "precision sample of the Django findings: $work/django-sample.txt"
echo "cordon audit vs jscpd $jscpd_version (default mode, --format python), median of $runs runs," \
  "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg):"
printf '%s\n' "${report[@]}"
