# Shared by the benchmark scripts (sourced, not run).

# Builds this checkout's tributary in release mode; prints the binary's path.
build_tributary() {
  echo "building tributary (release)" >&2
  swift build -c release --product tributary >/dev/null
  echo "$(swift build -c release --show-bin-path)/tributary"
}

# Builds tributary as of git revision $1 in $2 (a scratch directory outside the checkout), for a
# before/after comparison in one run; prints the binary's path.
build_baseline() {
  local revision=$1 directory=$2
  echo "building the baseline tributary at $revision (release)" >&2
  rm -rf "$directory/src"; mkdir -p "$directory/src"
  git archive "$revision" | tar -x -C "$directory/src"
  swift build -c release --product tributary --package-path "$directory/src" --scratch-path "$directory/build" >/dev/null
  echo "$directory/build/release/tributary"
}

# The median of the numbers given as arguments.
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
