#!/usr/bin/env bash
# Router benchmark: installs what it needs, then runs the Go harness.
#
#   bash bench/router/run.sh            # 3 rounds × 10 s per target (BENCHMARKS.md)
#   bash bench/router/run.sh -short     # CI: 1 round × 3 s, under a minute
#   bash bench/router/run.sh -h         # the harness's flags
#
# Needs Docker, Go and, when nginx or wrk is missing, root and apt-get
# (Debian packages: nginx-light, or nginx where it is gone, and wrk).
set -euo pipefail

cd "$(dirname "$0")/../.."

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
	if apt-cache show nginx-light >/dev/null 2>&1; then
		missing+=(nginx-light)
	else
		missing+=(nginx)
	fi
fi

if [ "${#missing[@]}" -gt 0 ]; then
	echo "bench/router: installing ${missing[*]}" >&2
	sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		sudo=(sudo)
	fi
	# Keep the packages from starting a system-wide nginx on port 80: the
	# benchmark starts its own, on loopback, with its own configuration.
	policy=/usr/sbin/policy-rc.d
	made_policy=
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' | ${sudo[@]+"${sudo[@]}"} tee "$policy" >/dev/null
		${sudo[@]+"${sudo[@]}"} chmod 755 "$policy"
		made_policy=1
	fi
	cleanup_policy() {
		if [ -n "$made_policy" ]; then
			${sudo[@]+"${sudo[@]}"} rm -f "$policy"
		fi
	}
	trap cleanup_policy EXIT
	# apt-get update only when the package lists do not know the packages.
	if ! apt-cache show "${missing[@]}" >/dev/null 2>&1; then
		${sudo[@]+"${sudo[@]}"} apt-get update -q
	fi
	${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
	cleanup_policy
	trap - EXIT
fi

export PATH="$PATH:/usr/sbin"
exec go run ./bench/router "$@"
