#!/usr/bin/env bash
# Build the korder image IMG with CONTAINER_TOOL (`make docker-build`).
#
# 1. The base: BASE_IMAGE when given; else, with podman, the local Debian-made base of
#    hack/image/base.sh; else the Dockerfile's default (the official python image).
# 2. The wheels, on the host, into build/image/wheels/: the pinned runtime dependencies
#    (constraints.txt) as manylinux wheels for the image's CPU, whatever the host's OS,
#    and korder's own wheel. The host's pip settings (index, certificates) apply here,
#    outside the image.
# 3. The build, skipped when an image IMG exists whose label dev.korder.image.inputs is
#    the digest of this build's inputs (sources, pins, Dockerfile, base image ID), so a
#    second `make test` costs a second; otherwise layer caching does the rest.
#
# Env: CONTAINER_TOOL (docker), IMG (korder:dev), BASE_IMAGE, PY (.venv/bin/python).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
tool=${CONTAINER_TOOL:-docker}
img=${IMG:-korder:dev}
py=${PY:-.venv/bin/python}
base=${BASE_IMAGE:-}
wheels=build/image/wheels
log() { printf '[image %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if ! command -v "$tool" >/dev/null; then
  echo "CONTAINER_TOOL=$tool is not installed (without Docker: CONTAINER_TOOL=podman," \
    "which 'make image-tools' installs on Debian)" >&2
  exit 1
fi

if [[ -z "$base" && "$tool" == podman ]]; then
  base=$(bash hack/image/base.sh | tail -n1)
fi
build_args=()
if [[ -n "$base" ]]; then
  build_args+=(--build-arg "BASE_IMAGE=$base")
  base_id=$("$tool" image inspect --format '{{.Id}}' "$base" 2>/dev/null || echo "$base")
else
  base_id=default
fi
# podman's default OCI format has no HEALTHCHECK; Docker's format keeps it.
[[ "$tool" == podman ]] && build_args+=(--format docker)

case "$(uname -m)" in
  x86_64 | amd64) arch=x86_64 ;;
  aarch64 | arm64) arch=aarch64 ;;
  *) echo "no manylinux wheels for CPU $(uname -m)" >&2; exit 1 ;;
esac

version=$("$py" -c 'import korder; print(korder.__version__)')
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# Everything the image is made of. Untracked files count too, ignored ones do not.
inputs=$(
  {
    git ls-files --cached --others --exclude-standard -- korder pyproject.toml \
      constraints.txt README.md Dockerfile .dockerignore hack/image | sort -u |
      while read -r f; do [[ -f "$f" ]] && sha256sum "$f"; done
    echo "base=$base_id arch=$arch version=$version"
  } | sha256sum | cut -c1-16
)
current=$("$tool" image inspect --format '{{index .Config.Labels "dev.korder.image.inputs"}}' \
  "$img" 2>/dev/null || true)
if [[ "$current" == "$inputs" ]]; then
  log "$img is up to date (inputs $inputs): no build"
  exit 0
fi

start=$SECONDS
rm -rf "$wheels/korder"
# The wheel's timestamps from the last commit: an unchanged tree gives the same bytes, and
# the layer that installs it is reused.
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 315532800) \
  "$py" -m pip wheel --quiet --no-deps --wheel-dir "$wheels/korder" .
deps_key=$( (cat constraints.txt pyproject.toml; echo "$arch") | sha256sum | cut -c1-16)
if [[ "$(cat "$wheels/deps/.key" 2>/dev/null)" != "$deps_key" ]]; then
  log "downloading the pinned dependencies as manylinux $arch wheels"
  rm -rf "$wheels/deps"
  # Debian bookworm has glibc 2.36: any manylinux wheel up to that runs on either base.
  platforms=()
  for tag in manylinux_2_36 manylinux_2_28 manylinux_2_17 manylinux2014; do
    platforms+=(--platform "${tag}_$arch")
  done
  "$py" -m pip download --quiet --only-binary=:all: "${platforms[@]}" \
    --python-version 3.11 --implementation cp --abi cp311 \
    -c constraints.txt --dest "$wheels/deps" "$wheels"/korder/korder-*.whl
  rm -f "$wheels"/deps/korder-*.whl
  echo "$deps_key" > "$wheels/deps/.key"
fi

log "building $img with $tool on ${base:-the default base of the Dockerfile}"
# The ${a[@]+...} form: an empty array under set -u is an error in the bash of macOS.
"$tool" build ${build_args[@]+"${build_args[@]}"} \
  --build-arg "VERSION=$version" --build-arg "REVISION=$revision" \
  --label "dev.korder.image.inputs=$inputs" \
  --tag "$img" .
log "built $img in $((SECONDS - start))s"
