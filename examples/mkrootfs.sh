#!/bin/sh
# Make a minimal root filesystem from busybox-static in DIR (for examples/pivot.toml).
set -e
DIR=${1:?usage: mkrootfs.sh DIR}
mkdir -p "$DIR/bin" "$DIR/proc" "$DIR/etc" "$DIR/tmp"
cp /bin/busybox "$DIR/bin/busybox"
for tool in sh ls cat echo mount ps hostname; do ln -sf busybox "$DIR/bin/$tool"; done
echo "inside the pivoted root" > "$DIR/etc/hostname-inside"
