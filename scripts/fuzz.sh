#!/usr/bin/env bash
# fuzz.sh runs every fuzz target of the module, one after the other, each for
# FUZZTIME (default 30s; go test's -fuzztime syntax, so 1000x works too).
#
#   scripts/fuzz.sh                    every package
#   FUZZTIME=5m scripts/fuzz.sh ./storage/record
#
# A failing input is saved under the package's testdata/fuzz/ by go test;
# commit it with the fix, so that plain `go test` keeps checking it.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

fuzztime=${FUZZTIME:-30s}
(($# > 0)) || set -- ./...

# go test -fuzz takes one target in one package, so list them first:
# -list prints the names that match in each package, then "ok <package> <time>".
list=$(go test -run '^$' -list '^Fuzz' "$@")
targets=() names=()
while IFS= read -r line; do
	case $line in
	Fuzz*) names+=("$line") ;;
	"ok "*)
		read -r _ pkg _ <<<"$line"
		for name in "${names[@]}"; do
			targets+=("$pkg" "$name")
		done
		names=()
		;;
	esac
done <<<"$list"

if ((${#targets[@]} == 0)); then
	echo "fuzz.sh: no fuzz targets in $*"
	exit 0
fi
for ((i = 0; i < ${#targets[@]}; i += 2)); do
	pkg=${targets[i]} name=${targets[i + 1]}
	echo "+ go test -run '^\$' -fuzz '^$name\$' -fuzztime $fuzztime $pkg" >&2
	go test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" "$pkg"
done
echo "fuzz.sh: $((${#targets[@]} / 2)) targets ran for $fuzztime each"
