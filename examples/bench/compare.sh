#!/usr/bin/env bash
# Back-to-back benchmark of two commits with the same harness:
#
#   examples/bench/compare.sh BEFORE AFTER [bench args...]
#   e.g. examples/bench/compare.sh 0ea6e46 HEAD --seconds 10
#
# Each commit is checked out in a temporary worktree (/tmp/bench-<sha>), its examples/bench/
# replaced by the harness this script sits in (so both sides run the same harness, which
# drives only the `hookgate` binary over HTTP with a TOML config), and built with
# `cargo build --release --bin hookgate --example bench` into one shared target directory
# (BENCH_TARGET_DIR, default <repo>/target/bench-compare; the dependencies are built once).
# Then the two run alternately, BENCH_ROUNDS times each (default 2: before, after, before,
# after), each run's table is printed, and a summary gives every row's mean per side and the
# change. Needs wrk on PATH (Debian: apt-get install -y wrk). Run it on a quiet machine: the
# harness pins wrk and the server to halves of the CPUs, and anything else running skews both.
set -euo pipefail

if [ $# -lt 2 ]; then
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
before_ref=$1
after_ref=$2
shift 2

here=$(cd "$(dirname "$0")" && pwd)
repo=$(git -C "$here" rev-parse --show-toplevel)
target=${BENCH_TARGET_DIR:-$repo/target/bench-compare}
rounds=${BENCH_ROUNDS:-2}
command -v wrk >/dev/null || {
  echo "compare.sh: wrk not found on PATH (Debian: apt-get install -y wrk)" >&2
  exit 2
}

before=$(git -C "$repo" rev-parse --verify "$before_ref^{commit}")
after=$(git -C "$repo" rev-parse --verify "$after_ref^{commit}")
out=$(mktemp -d /tmp/bench-compare.XXXXXX)
trees=()
cleanup() {
  for t in "${trees[@]}"; do
    git -C "$repo" worktree remove --force "$t" || true
  done
}
trap cleanup EXIT

# build SHA LABEL: the binary and the harness of SHA into $out/LABEL/.
build() {
  local sha=$1 label=$2 tree=/tmp/bench-$1
  if [ -e "$tree" ]; then
    echo "compare.sh: $tree exists (a previous run's?); remove it with: git worktree remove --force $tree" >&2
    exit 2
  fi
  git -C "$repo" worktree add --detach "$tree" "$sha" >/dev/null
  trees+=("$tree")
  # This harness over the commit's own (and the single-file bench of older commits).
  rm -rf "$tree/examples/bench" "$tree/examples/bench.rs"
  mkdir -p "$tree/examples/bench"
  cp -r "$here/." "$tree/examples/bench/"
  echo "== building $label ($sha)" >&2
  (cd "$tree" && CARGO_TARGET_DIR=$target nice -n 5 cargo build --release --bin hookgate --example bench)
  mkdir -p "$out/$label"
  cp "$target/release/hookgate" "$target/release/examples/bench" "$out/$label/"
}

build "$before" before
if [ "$after" = "$before" ]; then
  mkdir -p "$out/after" && cp "$out/before/"* "$out/after/"
else
  build "$after" after
fi

runs=()
for round in $(seq 1 "$rounds"); do
  for label in before after; do
    name=$label-$round
    echo "== run $name: $out/$label/bench $*" >&2
    rc=0
    "$out/$label/bench" --hookgate "$out/$label/hookgate" "$@" >"$out/$name.md" 2>"$out/$name.log" || rc=$?
    [ "$rc" = 0 ] || echo "   (exit $rc: see $out/$name.md and $out/$name.log)" >&2
    runs+=("$name")
  done
done

echo
echo "before = $before_ref ($before), after = $after_ref ($after); runs in order: ${runs[*]}"
for name in "${runs[@]}"; do
  echo
  echo "### $name"
  grep -E '^(generator ceiling|[0-9]+ connections|\||SOME PHASES)' "$out/$name.md" || echo "(no table: see $out/$name.log)"
done

# Per row (rows are in the same order on both sides): the mean of each side's runs and the
# change, for the figure and for p99.
echo
echo "### before → after (mean of $rounds runs each; change beyond ±10% marked !)"
echo
echo "| phase | before | after | change | p99 ms before | p99 ms after | change |"
echo "|---|---|---|---|---|---|---|"
for name in "${runs[@]}"; do
  side=${name%-*}
  # The first table only (the PostgreSQL comparison below it has other columns).
  awk '/^\| phase \|/ { t = 1; next } t && /^\|---/ { next } t && /^\| / { print; next } t { exit }' "$out/$name.md" | awk -v side="$side" -F'|' '
    { gsub(/^ +| +$/, "", $2); gsub(/ /, "", $3); gsub(/ /, "", $6); print side "\t" NR "\t" $2 "\t" $3 "\t" $6 }'
done | awk -F'\t' '
  function pct(a, b) { return (a > 0 && b != "") ? sprintf("%+.1f%%%s", (b - a) * 100 / a, ((b - a) * 100 / a > 10 || (b - a) * 100 / a < -10) ? " !" : "") : "–" }
  {
    key = $2; if (!(key in name)) { name[key] = $3; order[++n] = key }
    rate[$1, key] += $4; cnt[$1, key]++
    if ($5 != "–" && $5 != "") { p99[$1, key] += $5; pc[$1, key]++ }
  }
  END {
    for (i = 1; i <= n; i++) {
      k = order[i]
      rb = cnt["before", k] ? rate["before", k] / cnt["before", k] : ""
      ra = cnt["after", k] ? rate["after", k] / cnt["after", k] : ""
      pb = pc["before", k] ? p99["before", k] / pc["before", k] : ""
      pa = pc["after", k] ? p99["after", k] / pc["after", k] : ""
      printf "| %s | %s | %s | %s | %s | %s | %s |\n", name[k],
        rb == "" ? "–" : sprintf("%.0f", rb), ra == "" ? "–" : sprintf("%.0f", ra), pct(rb, ra),
        pb == "" ? "–" : sprintf("%.2f", pb), pa == "" ? "–" : sprintf("%.2f", pa), pct(pb, pa)
    }
  }'
echo
echo "(tables, logs and binaries kept in $out)"
