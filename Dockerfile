# The one image of korder: the REST facade, the operator and the reference participants.
# The role is the first argument or KORDER_ROLE: `docker run IMAGE api|operator|participants`.
#
# `make docker-build` builds it (kubebuilder's target: CONTAINER_TOOL, IMG, BASE_IMAGE). The
# wheels, korder's and every pinned runtime dependency's, are made beforehand on the host
# into build/image/wheels/ by hack/image/build.sh, so the build reads no package index: no
# index address, certificate or credential of the building machine ends up in a layer.
#
# Why Debian slim and not Alpine: the compiled dependencies (pydantic-core, PyYAML, msgspec,
# aiohttp with multidict, yarl, frozenlist and propcache; cryptography in the dev tools) are
# installed from manylinux wheels, built against glibc. Alpine's musl takes only musllinux
# wheels, which not every pinned version publishes, and otherwise a C compiler and a Rust
# toolchain (pydantic-core is Rust) in the build stage. Slim costs some tens of MB more and
# runs the very wheels the tests run.
#
# Read-only root filesystem: nothing writes outside /tmp (mount a tmpfs or emptyDir there).
# Bytecode is compiled at install time and never written at run time.

# The official image by default; a base made from Debian's packages where no registry is
# reachable (hack/image/base.sh). Either has python3 on PATH, /usr/local/bin or /usr/bin.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INDEX=1
# The venv is made by the base's own python3, which the runtime stage has at the same path:
# the venv's python is a symlink to it.
RUN python3 -m venv /opt/korder
# Dependencies first, korder last: a change of korder's code reuses the dependencies' layer.
COPY build/image/wheels/deps/ /wheels/deps/
RUN /opt/korder/bin/pip install --no-deps /wheels/deps/*.whl
COPY build/image/wheels/korder/ /wheels/korder/
# pip check fails the build if a dependency of korder is missing from the wheels.
RUN /opt/korder/bin/pip install --no-deps /wheels/korder/*.whl \
    && /opt/korder/bin/pip check \
    && /opt/korder/bin/pip uninstall --yes pip setuptools

FROM ${BASE_IMAGE}
# A fixed non-root user (65532, as distroless images use), written directly so that bases
# without useradd (Debian's minbase has none) work too.
RUN echo 'korder:x:65532:65532:korder:/tmp:/usr/sbin/nologin' >> /etc/passwd \
    && echo 'korder:x:65532:' >> /etc/group
COPY --from=build /opt/korder /opt/korder
# Inside a container the servers listen on every interface, so that probes and Services
# reach them; outside one the settings' default stays 127.0.0.1.
ENV PATH=/opt/korder/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    KORDER_HOST=0.0.0.0 \
    KORDER_PARTICIPANTS_HOST=0.0.0.0 \
    KORDER_OPERATOR_PROBE_HOST=0.0.0.0
USER 65532:65532
# facade, reference participants, operator liveness, operator metrics
EXPOSE 8000 8001 8081 8082
# The role's own health endpoint on 127.0.0.1 (python -m korder healthcheck). Kubernetes
# ignores this and uses the manifests' probes.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/opt/korder/bin/python", "-m", "korder", "healthcheck"]
ENTRYPOINT ["/opt/korder/bin/python", "-m", "korder"]

# Last, so that a new revision changes the image's configuration and no layer.
ARG VERSION=dev
ARG REVISION=unknown
ARG BASE_IMAGE
LABEL org.opencontainers.image.title="korder" \
      org.opencontainers.image.description="Kubernetes-native order management: REST facade, saga operator, reference participants" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
