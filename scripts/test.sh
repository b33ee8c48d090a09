#!/usr/bin/env bash
# test.sh is Ferry's one test command: CI, make test and people all run it.
#
#   scripts/test.sh                          every package, race detector on
#   scripts/test.sh -run TestRecovery        those tests, in every package
#   scripts/test.sh -run TestX ./storage/... those tests, in those packages
#
# Arguments go to `go test` after the defaults (-race -count=1 -timeout 15m),
# so a later -count or -timeout overrides them. Packages named in the
# arguments replace ./...; the bench/ module is tested only when none are.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() {
	echo "test.sh: $*" >&2
	exit 1
}

command -v go >/dev/null 2>&1 ||
	die "go is not on PATH; install Go (see go.mod for the version) and add its bin folder to PATH"

apt_updated=false

# need_deb installs the Debian packages named that are not installed yet, so a
# fresh machine needs no setup by hand. It runs apt-get update once per run,
# and only if something is missing.
need_deb() {
	local missing=() pkg
	for pkg in "$@"; do
		dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
	done
	((${#missing[@]} > 0)) || return 0
	command -v apt-get >/dev/null 2>&1 || die "missing packages ${missing[*]} and no apt-get to install them"
	local sudo=()
	((EUID == 0)) || sudo=(sudo)
	echo "test.sh: installing ${missing[*]}" >&2
	if ! $apt_updated; then
		"${sudo[@]}" apt-get update -qq
		apt_updated=true
	fi
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# The race detector needs cgo, so a C compiler and the C library headers.
# Front doors will add the real clients their tests drive here (kcat, ...).
need_deb gcc libc6-dev
# The Kafka front door's tests drive kcat (librdkafka) and kafkajs (Node.js,
# installed by npm from tests/kafkajs/package-lock.json); with CI set, those
# tests fail rather than skip when the tool is missing. A Node.js from
# elsewhere (NodeSource's nodejs package) brings its own npm and conflicts
# with Debian's npm package: then npm is not asked for.
need_deb kcat
if command -v npm >/dev/null 2>&1; then
	need_deb nodejs
else
	need_deb nodejs npm
fi
# The dashboard's tests (tests/dashboard_test.go) drive headless Chromium
# through the DevTools protocol (chromedp); with CI set, they fail rather than
# skip when it is missing.
need_deb chromium
export CGO_ENABLED=1

go mod download

# An argument names packages when it looks like a package pattern: a relative
# path, or a path in this module. Anything else is a flag or a flag's value
# (the TestX of -run TestX), so give a flag a path value with '=':
# -coverprofile=./cover.out. Arguments from -args on belong to the test
# binary and must come after the packages.
module=$(go list -m)
flags=() pkgs=() binary_args=()
for ((i = 1; i <= $#; i++)); do
	a=${!i}
	case $a in
	-args | --args)
		binary_args=("${@:i}")
		break
		;;
	. | ./* | .. | ../* | "$module" | "$module"/*) pkgs+=("$a") ;;
	*) flags+=("$a") ;;
	esac
done
all=false
if ((${#pkgs[@]} == 0)); then
	all=true
	pkgs=(./...)
fi

run() {
	echo "+ $*" >&2
	"$@"
}

run go test -race -count=1 -timeout 15m "${flags[@]}" "${pkgs[@]}" "${binary_args[@]}"

# bench/ is its own module (it pulls in peer drivers), so ./... skips it.
# Its tests run each driver against the real brokers, started on 127.0.0.1
# by bench/peers: Debian's nats-server, redis-server and rabbitmq-server (on
# ports and an epmd of their own, so a system RabbitMQ the package may have
# started on 5672 is no matter).
if $all && [[ -f bench/go.mod ]]; then
	need_deb nats-server redis-server rabbitmq-server
	cd bench
	run go mod download
	run go test -race -count=1 -timeout 15m "${flags[@]}" ./... "${binary_args[@]}"
fi
