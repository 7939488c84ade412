#!/usr/bin/env bash
# Build kube-apiserver, etcd and kubectl for the local control plane, once.
#
# The binaries land in $KORDER_CACHE_DIR/controlplane/<kubernetes version>-<go.sum digest>/
# (default ~/.cache/korder), so every clone on the machine shares one build, and a
# change of pinned versions builds into a new folder. A folder that holds all three
# binaries and its .complete stamp is reused without running Go at all.
#
# Prints the folder of binaries on its last line of stdout; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache_root=${KORDER_CACHE_DIR:-$HOME/.cache/korder}
k8s_version=$(awk '$1=="k8s.io/kubernetes"{print $2; exit}' "$here/go.mod")
etcd_version=$(awk '$1=="go.etcd.io/etcd/server/v3"{print $2; exit}' "$here/go.mod")
# Bump recipe when the flags below change, so the cache folder changes with them.
recipe=1
digest=$( (cat "$here/go.mod" "$here/go.sum"; echo "recipe=$recipe") | sha256sum | cut -c1-12)
out="$cache_root/controlplane/$k8s_version-$digest"

if [[ -f "$out/.complete" ]]; then
  echo "control plane $k8s_version: cached in $out" >&2
  echo "$out"
  exit 0
fi

mkdir -p "$out"
log() { printf '[controlplane %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
# The build is CPU-bound; -p 2 matches the machine and keeps memory in check.
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
ver_pkg=k8s.io/component-base/version
k8s_ldflags="-s -w -X $ver_pkg.gitVersion=$k8s_version -X $ver_pkg.gitTreeState=clean \
 -X $ver_pkg.gitMajor=1 -X $ver_pkg.gitMinor=$(cut -d. -f2 <<<"$k8s_version") \
 -X $ver_pkg.buildDate=1970-01-01T00:00:00Z"
build() {  # name package ldflags
  local name=$1 pkg=$2 flags=$3 start=$SECONDS
  log "building $name from $pkg (this takes minutes on a cold cache)"
  (cd "$here" && go build -p 2 -trimpath -ldflags "$flags" -o "$out/$name.tmp" "$pkg")
  mv "$out/$name.tmp" "$out/$name"
  log "built $name in $((SECONDS - start))s"
}
build etcd go.etcd.io/etcd/server/v3 "-s -w"
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$k8s_ldflags"
build kubectl k8s.io/kubernetes/cmd/kubectl "$k8s_ldflags"
printf 'kubernetes %s\netcd %s\n' "$k8s_version" "$etcd_version" > "$out/VERSIONS"
touch "$out/.complete"
log "control plane $k8s_version ready in $out"
echo "$out"
