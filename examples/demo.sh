#!/bin/sh
# The headline demo: one workload, fresh namespaces, set up at the checkpoint before it runs.
set -e
LINX=${1:-linx}
echo '$ linx run --ns all --hostname demo --mount-proc -- sh -c "hostname; echo pid \$\$; ip -br link; ps -o pid,comm"'
"$LINX" run --ns all --hostname demo --mount-proc -- sh -c 'hostname; echo pid $$; ip -br link; ps -o pid,comm'
echo
echo '$ linx run --ns net --checkpoint "echo host side: workload is pid \$LINX_PID, parked" -- echo running'
"$LINX" run --ns net --checkpoint 'echo host side: workload is pid $LINX_PID, parked' -- echo running
