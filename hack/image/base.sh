#!/usr/bin/env bash
# Build (or reuse) the local base image: Debian bookworm's python3, made by mmdebstrap.
#
# Used by `make docker-build` with CONTAINER_TOOL=podman and no BASE_IMAGE, where no
# image registry is reachable: the base comes from Debian's packages instead of the
# official python:3.11-slim-bookworm. The tag is localhost/korder-base:<recipe digest>,
# the digest of this script and of apt_sources.py, so a change of recipe builds a new
# base and an unchanged one is reused: from podman's store when the image is there,
# else from the tarball kept in $KORDER_CACHE_DIR/images/ (default ~/.cache/korder).
#
# Prints the tag on its last line of stdout; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tool=${CONTAINER_TOOL:-podman}
cache_dir=${KORDER_CACHE_DIR:-$HOME/.cache/korder}/images
digest=$(cat "$here/base.sh" "$here/apt_sources.py" | sha256sum | cut -c1-12)
tag=localhost/korder-base:$digest
tarball=$cache_dir/korder-base-$digest.tar
# mmdebstrap picks the format from the name: a partial file must end in .tar too.
partial=$cache_dir/.partial-korder-base-$digest.tar
log() { printf '[base %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if "$tool" image exists "$tag"; then
  log "$tag: in $tool's store"
  echo "$tag"
  exit 0
fi

if [[ ! -f "$tarball" ]]; then
  if ! command -v mmdebstrap >/dev/null; then
    echo "mmdebstrap is missing: run 'make image-tools' (apt-get install mmdebstrap)" >&2
    exit 1
  fi
  mkdir -p "$cache_dir"
  log "building the base with mmdebstrap from the host's mirrors (a minute or two, once)"
  mapfile -t sources < <(python3 "$here/apt_sources.py")
  start=$SECONDS
  # minbase plus python3 and its venv module, nothing else. Documentation, man pages
  # and translations are left out (as Debian's own container images do): a third of
  # the size. The mirror may serve a frozen snapshot whose Release files are past
  # their Valid-Until date, so that check is off, as in the host's apt.
  mmdebstrap --variant=minbase --include=python3,python3-venv \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='rm -f "$1"/etc/apt/apt.conf.d/99mmdebstrap' \
    --quiet bookworm "$partial" "${sources[@]}"
  mv "$partial" "$tarball"
  log "built $tarball in $((SECONDS - start))s"
fi

log "importing $tarball as $tag"
"$tool" import --quiet \
  --change 'CMD ["python3"]' \
  --change 'LABEL org.opencontainers.image.title=korder-base' \
  "$tarball" "$tag" >/dev/null
echo "$tag"
