#!/usr/bin/env bash
# Regenerates the Go code of the native API from api/ferry/v1/*.proto.
# protoc comes from Debian (protobuf-compiler, 3.21.12 on Debian 12); the
# plugins are the versions pinned by the tool directives of go.mod, so the
# output is the same byte for byte on every machine. `go generate ./api/...`
# runs this; `scripts/genproto.sh --check` fails when the committed code is
# stale (CI runs it).
set -euo pipefail
cd "$(dirname "$0")/.."

want_protoc="libprotoc 3.21.12"
if ! command -v protoc >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		(apt-get install -y -q protobuf-compiler >/dev/null 2>&1 ||
			{ apt-get update -q >/dev/null && apt-get install -y -q protobuf-compiler >/dev/null; })
	else
		echo "genproto: protoc not found; install Debian's protobuf-compiler" >&2
		exit 1
	fi
fi
got="$(protoc --version)"
if [ "$got" != "$want_protoc" ]; then
	echo "genproto: need $want_protoc (Debian 12's protobuf-compiler), have $got; the generated headers name the version" >&2
	exit 1
fi

bin="$(mktemp -d)"
out="$(mktemp -d)"
trap 'rm -rf "$bin" "$out"' EXIT
go build -o "$bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
go build -o "$bin/protoc-gen-connect-go" connectrpc.com/connect/cmd/protoc-gen-connect-go

protoc -I api -I /usr/include \
	--plugin=protoc-gen-go="$bin/protoc-gen-go" \
	--plugin=protoc-gen-connect-go="$bin/protoc-gen-connect-go" \
	--go_out="$out" --go_opt=module=github.com/ferrymq/ferry \
	--connect-go_out="$out" --connect-go_opt=module=github.com/ferrymq/ferry \
	api/ferry/v1/*.proto

if [ "${1:-}" = "--check" ]; then
	status=0
	for f in $(cd "$out" && find api -name '*.go' | sort); do
		if ! cmp -s "$out/$f" "$f"; then
			echo "genproto: $f is stale; run go generate ./api/..." >&2
			status=1
		fi
	done
	for f in $(find api -name '*.pb.go' -o -name '*.connect.go' | sort); do
		if [ ! -e "$out/$f" ]; then
			echo "genproto: $f is no longer generated; delete it" >&2
			status=1
		fi
	done
	exit $status
fi
cp -r "$out/api/." api/
