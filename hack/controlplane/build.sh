#!/usr/bin/env bash
# Build the local cluster's Kubernetes binaries from a pinned Go module, once.
#
#   build.sh [controlplane|node|promtool]
#
# controlplane (the default): kube-apiserver, etcd and kubectl, from hack/controlplane,
# what make test and make run need. node: kube-controller-manager, kube-scheduler,
# kubelet, kube-proxy and the pause program, from hack/node, what make cluster-up adds.
# promtool: Prometheus' rule checker, from hack/promtool, for make test-monitoring; built
# without Prometheus' service discoveries (the remove_all_sd tag), which promtool's rule
# commands never use and which would be most of the download and the build.
# Two modules, two cache entries: adding the node's tools does not change the control
# plane's digest, so make test's control plane is not rebuilt for them.
#
# The binaries land in $KORDER_CACHE_DIR/<module>/<kubernetes version>-<digest>/
# (default ~/.cache/korder), so every clone on the machine shares one build, and a
# change of pinned versions builds into a new folder. A folder that holds its .complete
# stamp is reused without running Go at all.
#
# Prints the folder of binaries on its last line of stdout; progress goes to stderr.
set -euo pipefail
module=${1:-controlplane}
here=$(cd "$(dirname "$0")/.." && pwd)/$module
case "$module" in
  controlplane) tools="etcd:go.etcd.io/etcd/server/v3 kube-apiserver:k8s.io/kubernetes/cmd/kube-apiserver kubectl:k8s.io/kubernetes/cmd/kubectl"
    extra_inputs=() ;;
  node) tools="kube-controller-manager:k8s.io/kubernetes/cmd/kube-controller-manager kube-scheduler:k8s.io/kubernetes/cmd/kube-scheduler kube-proxy:k8s.io/kubernetes/cmd/kube-proxy kubelet:k8s.io/kubernetes/cmd/kubelet pause:./pause"
    extra_inputs=("$here/pause/main.go") ;;
  promtool) tools="promtool:github.com/prometheus/prometheus/cmd/promtool"
    extra_inputs=() build_tags=remove_all_sd ;;
  *) echo "build.sh: unknown module $module (controlplane, node or promtool)" >&2; exit 2 ;;
esac
cache_root=${KORDER_CACHE_DIR:-$HOME/.cache/korder}
k8s_version=$(awk '$1=="k8s.io/kubernetes"{print $2; exit} $1=="require" && $2=="k8s.io/kubernetes"{print $3; exit}' "$here/go.mod")
if [[ $module == promtool ]]; then  # the cache folder is named by the Prometheus module's version
  k8s_version=$(awk '$1=="github.com/prometheus/prometheus"{print $2; exit} $1=="require" && $2=="github.com/prometheus/prometheus"{print $3; exit}' "$here/go.mod")
fi
etcd_version=$(awk '$1=="go.etcd.io/etcd/server/v3"{print $2; exit}' "$here/go.mod")
# Bump recipe when the flags below change, so the cache folder changes with them.
recipe=1
digest=$( (cat "$here/go.mod" "$here/go.sum" ${extra_inputs[@]+"${extra_inputs[@]}"}; echo "recipe=$recipe") \
  | sha256sum | cut -c1-12)
out="$cache_root/$module/$k8s_version-$digest"

if [[ -f "$out/.complete" ]]; then
  echo "$module $k8s_version: cached in $out" >&2
  echo "$out"
  exit 0
fi

mkdir -p "$out"
# Two clones (or a test run and a make run) may build at once: one builds, the other
# waits for it here and then finds the stamp, instead of both writing the same files.
exec 9>"$out.lock"
flock 9
if [[ -f "$out/.complete" ]]; then
  echo "$module $k8s_version: cached in $out (built meanwhile)" >&2
  echo "$out"
  exit 0
fi
log() { printf '[%s %s] %s\n' "$module" "$(date +%H:%M:%S)" "$*" >&2; }
# The build is CPU-bound; -p 2 matches the machine and keeps memory in check.
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
ver_pkg=k8s.io/component-base/version
k8s_ldflags="-s -w -X $ver_pkg.gitVersion=$k8s_version -X $ver_pkg.gitTreeState=clean \
 -X $ver_pkg.gitMajor=1 -X $ver_pkg.gitMinor=$(cut -d. -f2 <<<"$k8s_version") \
 -X $ver_pkg.buildDate=1970-01-01T00:00:00Z"
build() {  # name package ldflags
  local name=$1 pkg=$2 flags=$3 start=$SECONDS
  log "building $name from $pkg (this takes minutes on a cold cache)"
  (cd "$here" && go build -p 2 -trimpath -tags "${build_tags:-}" -ldflags "$flags" -o "$out/$name.tmp" "$pkg")
  mv "$out/$name.tmp" "$out/$name"
  log "built $name in $((SECONDS - start))s"
}
for tool in $tools; do
  name=${tool%%:*} pkg=${tool#*:}
  case "$pkg" in
    k8s.io/*) build "$name" "$pkg" "$k8s_ldflags" ;;
    *) build "$name" "$pkg" "-s -w" ;;
  esac
done
if [[ $module == controlplane ]]; then
  printf 'kubernetes %s\netcd %s\n' "$k8s_version" "$etcd_version" > "$out/VERSIONS"
elif [[ $module == promtool ]]; then
  printf 'prometheus %s\n' "$k8s_version" > "$out/VERSIONS"
else
  printf 'kubernetes %s\n' "$k8s_version" > "$out/VERSIONS"
fi
touch "$out/.complete"
log "$module $k8s_version ready in $out"
echo "$out"
