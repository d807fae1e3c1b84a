#!/bin/sh
# The headline demo: a web server whose identity, cgroup, network, mounts, sysctls,
# capabilities and syscall filter are all decided at the checkpoint, before its first
# instruction (examples/web.toml). It runs in a throwaway network namespace, so the host's
# own network is not touched, and leaves nothing behind.
set -e
LINX=${1:-linx}
NS=linx-demo-$$
ip netns add "$NS"
trap 'ip netns del "$NS"' EXIT
in_ns() { nsenter --net="/run/netns/$NS" "$@"; }

echo "== the plan: linx run --spec examples/web.toml --dry-run"
in_ns "$LINX" run --spec examples/web.toml --dry-run
echo
echo "== the workload, from inside"
in_ns "$LINX" run --spec examples/web.toml -- sh -c '
  echo "hostname: $(hostname)   uid: $(id -u)   pid: $$"
  ip -br addr show eth0; ip route
  grep -E "^(CapBnd|CapEff|NoNewPrivs|Seccomp):" /proc/self/status
  mkdir /srv/x 2>&1 || true
  echo "cgroup: $(grep ^0:: /proc/self/cgroup)"'
echo
echo "== from the host: the web server answers over its veth"
in_ns "$LINX" run -d --name linx-demo-web --keep-cgroup --spec examples/web.toml >/dev/null
sleep 0.5
ip netns exec "$NS" busybox wget -q -O- http://10.200.0.2:8080/
"$LINX" ps
"$LINX" rm -f linx-demo-web
rmdir "$(findmnt -n -t cgroup2 -o TARGET | head -1)/linx-example-web" 2>/dev/null || true
echo
echo "== a session with a terminal: linx run -dt, then linx attach (ctrl-p ctrl-q detaches)"
"$LINX" run -dt --name linx-demo-sh --ns pid,mount,uts --hostname box --mount-proc -- sh >/dev/null
printf 'hostname; ps -o pid,comm; exit 7\n' | "$LINX" attach linx-demo-sh || echo "(attach exited with the workload's status $?)"
"$LINX" rm linx-demo-sh
