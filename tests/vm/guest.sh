#!/bin/sh
# Runs inside the VM that tests/vm/run.py boots, as root, in the checkout (shared read-only).
# $1 is the directory shared writable with the host; the rest goes to pytest.
share=$1
shift
# What an init system does on a cgroup v2 host: delegate the controllers from the root. The
# group itself never writes the root (so it can run unchanged on such a host).
echo "+cpu +memory +pids" > /sys/fs/cgroup/cgroup.subtree_control || exit 1
# run.py --bench SCRIPT [ARGS]: that script instead of the group. Its output goes to the console
# and to $share/bench.txt, its exit status to $share/bench.status.
if [ "$1" = "--bench" ]; then
    shift
    echo "guest: up $(cut -d" " -f1 /proc/uptime)s, running $*"
    export LINX_VM=1
    { .venv/bin/python -u "$@"; echo $? > "$share/bench.status"; } 2>&1 | tee "$share/bench.txt"
    exit 0
fi
echo "guest: up $(cut -d" " -f1 /proc/uptime)s, running the VM group"
# No plugin autoload: scanning every installed distribution for entry points costs seconds
# over 9p under emulation, and none is used.
export LINX_VM=1 PYTEST_DISABLE_PLUGIN_AUTOLOAD=1
exec .venv/bin/python -m pytest -m vm -q -ra --durations=5 \
    --junitxml="$share/junit.xml" tests/vm "$@"
