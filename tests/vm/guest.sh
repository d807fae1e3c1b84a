#!/bin/sh
# Runs inside the VM that tests/vm/run.py boots, as root, in the checkout (shared read-only).
# $1 is the directory shared writable with the host; the rest goes to pytest.
share=$1
shift
# What an init system does on a cgroup v2 host: delegate the controllers from the root. The
# group itself never writes the root (so it can run unchanged on such a host).
echo "+cpu +memory +pids" > /sys/fs/cgroup/cgroup.subtree_control || exit 1
echo "guest: up $(cut -d" " -f1 /proc/uptime)s, running the VM group"
# The byte code run.py compiled on the host; hypothesis is not used here, and importing it
# costs ~15 s under emulation.
export LINX_VM=1 PYTHONPYCACHEPREFIX="$(dirname "$0")/.cache/pycache"
exec .venv/bin/python -m pytest -m vm -p no:hypothesispytest -q -ra --durations=0 \
    --junitxml="$share/junit.xml" tests/vm "$@"
