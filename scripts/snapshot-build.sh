#!/usr/bin/env bash
# Copies the current build (dist/, bin/, node_modules/) into a separate folder with an `etcd`
# launcher and an `etcdctl` link, so long external runs (etcd's e2e suite, benchmarks) are not
# disturbed by rebuilds of the working tree.   usage: scripts/snapshot-build.sh DEST
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:?usage: snapshot-build.sh DEST}
mkdir -p "$dest/app"
rsync -a --delete "$src/dist" "$src/bin" "$src/package.json" "$dest/app/"
ln -sfn "$src/node_modules" "$dest/app/node_modules"
cat > "$dest/etcd" <<EOT
#!/bin/sh
exec node "$dest/app/bin/etcd" "\$@"
EOT
chmod +x "$dest/etcd"
ln -sf "${ETCDCTL:-/usr/bin/etcdctl}" "$dest/etcdctl"
echo "$dest/etcd -> $dest/app"
