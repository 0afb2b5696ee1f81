#!/usr/bin/env bash
# Balancer benchmark: installs haproxy if it is missing, then runs the Go
# harness.
#
#   bash bench/balancer/run.sh            # 3 rounds, 1 GiB × 4 connections, 5 s connection runs (BENCHMARKS.md)
#   bash bench/balancer/run.sh -short     # CI: 1 round, under 45 s
#   bash bench/balancer/run.sh -h         # the harness's flags
#
# Needs Go, Docker (unless -rack=false) and, when haproxy is missing, root or
# sudo and apt-get (Debian package haproxy).
set -euo pipefail

cd "$(dirname "$0")/../.."

if ! command -v haproxy >/dev/null 2>&1 && [ ! -x /usr/sbin/haproxy ]; then
	echo "bench/balancer: installing haproxy" >&2
	sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		sudo=(sudo)
	fi
	# Keep the package from starting a system-wide haproxy: the benchmark
	# starts its own, on loopback, with its own configuration.
	policy=/usr/sbin/policy-rc.d
	made_policy=
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
		"${sudo[@]}" chmod 755 "$policy"
		made_policy=1
	fi
	cleanup_policy() {
		if [ -n "$made_policy" ]; then
			"${sudo[@]}" rm -f "$policy"
		fi
	}
	trap cleanup_policy EXIT
	# apt-get update only when the package lists do not know haproxy.
	if ! apt-cache show haproxy >/dev/null 2>&1; then
		"${sudo[@]}" apt-get update -q
	fi
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends haproxy >&2
	cleanup_policy
	trap - EXIT
fi

export PATH="$PATH:/usr/sbin"
exec go run ./bench/balancer "$@"
