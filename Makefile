# korder: a Kubernetes-native order management system.
# `make help` lists the targets. Target names follow kubebuilder's where they apply.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Where the Go-built control plane (kube-apiserver, etcd, kubectl) is cached.
KORDER_CACHE_DIR ?= $(HOME)/.cache/korder
export KORDER_CACHE_DIR
PYTEST_ARGS ?=
# What make test-e2e runs: the whole suite, or E2E=tests/e2e/test_logs.py for one file.
E2E ?= tests/e2e
# The image every role runs (make deploy); `korder:dev` is the manifests' placeholder.
IMG ?= korder:dev
# kubectl from the control-plane cache (built by make controlplane), whose built-in
# kustomize builds manifests/. Override with KUBECTL=kubectl to use another one.
KUBECTL ?= $(shell $(PY) -m korder.localcluster kubectl)
# The image (kubebuilder's names). With podman and no BASE_IMAGE, the base is made locally
# from Debian's packages (hack/image/base.sh); otherwise the Dockerfile's default applies.
CONTAINER_TOOL ?= docker
BASE_IMAGE ?=
# podman's settings come from our file (runc, ulimits the host accepts), not the host's.
PODMAN_ENV = $(if $(filter podman,$(CONTAINER_TOOL)),CONTAINERS_CONF=$(CURDIR)/hack/image/containers.conf)

.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} \
	/^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } \
	/^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create the virtual environment with pinned dependencies.

.PHONY: controlplane
controlplane: venv ## Build (or reuse) kube-apiserver, etcd and kubectl in $(KORDER_CACHE_DIR).
	$(PY) -m korder.localcluster build

.PHONY: manifests
manifests: venv ## Generate crds/ from the domain models (and its copy in manifests/crd/bases/).
	$(PY) -m korder.kube.crd > crds/korder.dev_orders.yaml
	cp crds/korder.dev_orders.yaml manifests/crd/bases/korder.dev_orders.yaml

.PHONY: fmt
fmt: venv ## Format the code.
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

.PHONY: lint
lint: venv ## Lint: ruff, formatting, import-linter layer contracts.
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/hadolint Dockerfile

.PHONY: typecheck
typecheck: venv ## Type check with mypy --strict.
	$(VENV)/bin/mypy

.PHONY: test-unit
test-unit: venv ## Unit tests (no cluster, seconds).
	$(PY) -m pytest tests/unit -q $(PYTEST_ARGS)

# Jaeger's all-in-one, the trace backend of tests/e2e/test_traces.py, is built from its Go
# module (hack/jaeger) on first use and cached like the control plane.
.PHONY: jaeger
jaeger: venv ## Build (or reuse) Jaeger's all-in-one binary in $(KORDER_CACHE_DIR).
	$(PY) -m korder.localcluster jaeger

.PHONY: test-e2e
test-e2e: controlplane jaeger ## e2e tests on a real control plane, operator and facade.
	$(PY) -m pytest $(E2E) -q --ignore=tests/e2e/test_postman.py \
		--ignore=tests/e2e/test_console.py $(PYTEST_ARGS)

# The console's tests drive Debian's headless Chromium through Debian's chromedriver (a
# browser or driver download does not work everywhere, and Selenium Manager never runs).
# Their own target, so test-e2e needs no root and no browser.
.PHONY: browser-tools
browser-tools: ## (Debian) Install chromium and chromium-driver with apt-get when missing.
	@$(call apt_install,chromium chromium-driver,the web console is tested in headless Chromium)

.PHONY: test-console
test-console: controlplane browser-tools ## The web console in headless Chromium, on the real system.
	$(PY) -m pytest tests/e2e/test_console.py -q $(PYTEST_ARGS)

.PHONY: console-screenshots
console-screenshots: controlplane browser-tools ## The console's tests, keeping their screenshots in docs/console/ (the README's tour).
	KORDER_CONSOLE_SCREENSHOTS=$(CURDIR)/docs/console \
		$(PY) -m pytest tests/e2e/test_console.py -q $(PYTEST_ARGS)

# newman, pinned in package.json and package-lock.json, installed here and not globally.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

.PHONY: test-postman
test-postman: controlplane node_modules/.installed ## The Postman collection under newman, against the whole system.
	$(PY) -m pytest tests/e2e/test_postman.py -q $(PYTEST_ARGS)

# The image tests build and run the image with podman, which needs no Docker engine: the
# target sets CONTAINER_TOOL=podman for its docker-build too (the command line still wins).
.PHONY: test-image
test-image: CONTAINER_TOOL = podman
test-image: image-tools docker-build controlplane ## The image built and run in each role: health, non-root, read-only root.
	$(PODMAN_ENV) KORDER_IMAGE=$(IMG) CONTAINER_TOOL=$(CONTAINER_TOOL) \
		$(PY) -m pytest tests/image -q $(PYTEST_ARGS)

# promtool is built from its Go module on first use and cached like the control plane.
.PHONY: test-monitoring
test-monitoring: controlplane ## The monitoring component: promtool check and test rules, the dashboard's queries.
	$(PY) -m pytest tests/monitoring -q $(PYTEST_ARGS)

.PHONY: test
test: lint typecheck test-unit test-monitoring test-e2e test-console test-postman test-chaos test-image test-cluster-smoke ## Everything CI runs: lint, types, unit, monitoring, e2e, the console in Chromium, Postman, chaos, image tests, korder as pods.

##@ Running

.PHONY: run
run: controlplane ## The whole system: control plane, CRD, operator, facade on :8000. Ctrl-C stops it.
	$(PY) -m korder.localcluster run

.PHONY: controlplane-up
controlplane-up: controlplane ## Only the control plane and the CRD, writing .korder/kubeconfig.
	$(PY) -m korder.localcluster up

.PHONY: kind-up
kind-up: ## (Laptops with Docker and kind) A kind cluster; then `make test-e2e KORDER_E2E_KUBECONFIG=.korder/kind-kubeconfig`.
	mkdir -p .korder
	kind create cluster --name korder --kubeconfig .korder/kind-kubeconfig
	KUBECONFIG=.korder/kind-kubeconfig kubectl apply --server-side -k manifests/crd

.PHONY: kind-load
kind-load: ## (Laptops with Docker and kind) Load the image IMG into the kind cluster's nodes.
	kind load docker-image $(IMG) --name korder

.PHONY: kind-down
kind-down: ## Delete the kind cluster.
	kind delete cluster --name korder

##@ Local cluster

# $(call apt_install,PACKAGES,WHY): apt-get install the Debian PACKAGES that are missing,
# saying WHY; a recipe line of the target that needs them ($@ names it in the messages).
define apt_install
missing=""; for p in $(1); do \
	dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
if [ -n "$$missing" ]; then \
	echo "$@: installing$$missing with apt-get ($(2))"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends $$missing >/dev/null \
	|| { echo "$@: apt-get failed; as root: apt-get install$$missing" >&2; exit 1; }; \
fi
endef

# The single-node cluster of make cluster-up (korder/localcluster/node.py): its kubeconfig.
CLUSTER_KUBECONFIG := $(CURDIR)/.korder/cluster/kubeconfig
# What the cluster needs from Debian (root): the runtime, the CNI plugins, iptables, and
# podman, runc and mmdebstrap for the images.
CLUSTER_PACKAGES := containerd containernetworking-plugins iptables podman runc mmdebstrap

.PHONY: cluster-tools
cluster-tools: ## (Debian, root) Install containerd, the CNI plugins, iptables, podman, runc, mmdebstrap when missing.
	@$(call apt_install,$(CLUSTER_PACKAGES),the local cluster's runtime and network)

.PHONY: cluster-up
cluster-up: venv cluster-tools ## A single-node cluster on this machine, in the background (state in .korder/cluster/).
	$(PY) -m korder.localcluster cluster-up

.PHONY: cluster-down
cluster-down: venv ## Stop the local cluster and clean up after it (also after a killed run).
	$(PY) -m korder.localcluster cluster-down

.PHONY: cluster-load
cluster-load: venv ## Put the podman image IMG into the local cluster's node (no registry, no pull).
	$(PY) -m korder.localcluster load-image $(IMG)

# The image made with podman on the local base, put into the node, and manifests/ with
# the local overlay applied; done when every Deployment is Available.
.PHONY: cluster-deploy
cluster-deploy: CONTAINER_TOOL = podman
cluster-deploy: docker-build cluster-load ## Build IMG with podman, load it into the local cluster and deploy korder (overlays/local).
	KUBECONFIG=$(CLUSTER_KUBECONFIG) $(MAKE) --no-print-directory deploy \
		DEPLOY_BASE=manifests/overlays/local IMG=$(IMG)
	for d in korder-participants korder-operator korder-api; do \
		$(KUBECTL) --kubeconfig=$(CLUSTER_KUBECONFIG) -n korder-system rollout status \
			deployment/$$d --timeout=5m || exit 1; done

DEPLOYED_PYTEST_ARGS ?=

# make test's check that the image and the manifests still run as pods: a fresh cluster
# (one that was up is stopped first), korder deployed, the smoke tests, the cluster stopped
# whatever happened.
.PHONY: test-cluster-smoke
test-cluster-smoke: venv cluster-tools ## A fresh local cluster, korder deployed, one order to Confirmed and one rolling update; then cluster-down.
	@$(MAKE) --no-print-directory cluster-down >/dev/null 2>&1; \
	$(MAKE) --no-print-directory cluster-up \
	&& $(MAKE) --no-print-directory test-deployed DEPLOYED_PYTEST_ARGS="-m smoke"; \
	rc=$$?; $(MAKE) --no-print-directory cluster-down; exit $$rc

.PHONY: test-deployed
test-deployed: cluster-deploy ## The e2e tests against korder's pods on the local cluster (make cluster-up first).
	KORDER_DEPLOYED_KUBECONFIG=$(CLUSTER_KUBECONFIG) KORDER_KUBECTL=$(KUBECTL) \
		$(PY) -m pytest tests/deployed -q $(PYTEST_ARGS) $(DEPLOYED_PYTEST_ARGS)

##@ Benchmarks

# make bench BENCH_ARGS="--population 2000" for a shorter run (python -m bench.suite --help).
BENCH_ARGS ?=

.PHONY: bench
bench: controlplane ## Every performance figure in one run on one fresh control plane: a table and bench-results/results.json.
	$(PY) -m bench.suite $(BENCH_ARGS)

.PHONY: profile
profile: controlplane ## Where the operator's and the facade's CPU goes under a sustained load (py-spy).
	$(PY) -m bench.profile $(PROFILE_ARGS)

.PHONY: bench-apiserver
bench-apiserver: controlplane ## The API server's write ceiling on this machine.
	$(PY) -m bench.apiserver

.PHONY: bench-saga
bench-saga: controlplane ## 100 orders at once through the whole saga: throughput, latency, invariants.
	$(PY) -m bench.saga

.PHONY: bench-failover
bench-failover: controlplane ## Two operator replicas, the leader SIGKILLed: how long orders wait.
	$(PY) -m bench.failover

# The long run: every fault, with python -m chaos's defaults (see its --help); more with
# CHAOS_ARGS, e.g. CHAOS_ARGS="--replicas 2 --seed 7".
.PHONY: chaos
chaos: controlplane ## The long chaos run: every fault through the facade; fails if an invariant breaks.
	$(PY) -m chaos $(CHAOS_ARGS)

# The short seeded runs of make test, one per operator topology: one operator (whose
# watches must outlive a partition) and three replicas on two shards' Leases (the shard
# holders killed, the spare taking a range over).
CHAOS_SHORT = --orders 60 --concurrency 6 --duration 45 --participant-restarts 1 \
	--operator-kills 2 --targeted-kills 1 --apiserver-restarts 1 --etcd-restarts 1 \
	--cuts 1 --cut-seconds 30 30 --settle-seconds 150
.PHONY: test-chaos
test-chaos: controlplane ## Two short seeded chaos runs with every fault kind (part of make test).
	$(PY) -m chaos $(CHAOS_SHORT) --seed 11 --replicas 1 --out bench-results/chaos-short-1
	$(PY) -m chaos $(CHAOS_SHORT) --seed 12 --replicas 3 --shards 2 --out bench-results/chaos-short-2

##@ Build

.PHONY: image-tools
image-tools: ## (Debian) Install podman, runc and mmdebstrap with apt-get when missing.
	@$(call apt_install,podman runc mmdebstrap,the image is built and run with podman)

.PHONY: docker-build
docker-build: venv $(if $(filter podman,$(CONTAINER_TOOL)),image-tools) ## Build the image IMG with CONTAINER_TOOL (skipped when its inputs are unchanged).
	$(PODMAN_ENV) CONTAINER_TOOL=$(CONTAINER_TOOL) IMG=$(IMG) BASE_IMAGE=$(BASE_IMAGE) PY=$(PY) \
		bash hack/image/build.sh

.PHONY: docker-push
docker-push: ## Push the image IMG with CONTAINER_TOOL.
	$(PODMAN_ENV) $(CONTAINER_TOOL) push $(IMG)

##@ Deployment

.PHONY: install
install: controlplane ## Install the CRD (manifests/crd) into the cluster in KUBECONFIG.
	$(KUBECTL) apply --server-side -k manifests/crd

.PHONY: uninstall
uninstall: controlplane ## Remove the CRD (and every Order!) from the cluster in KUBECONFIG.
	$(KUBECTL) delete --ignore-not-found -k manifests/crd

# make deploy writes an overlay of manifests/default that sets the image to IMG (the way
# kubebuilder's `kustomize edit set image` does, without editing the tracked files).
DEPLOY_OVERLAY := .korder/deploy
# What make deploy applies: manifests/default, or an overlay of it (manifests/overlays/kind).
DEPLOY_BASE ?= manifests/default

.PHONY: deploy
deploy: controlplane ## Deploy korder (DEPLOY_BASE, manifests/default) to the cluster in KUBECONFIG, with the image IMG.
	@mkdir -p $(DEPLOY_OVERLAY)
	@set -e; ref='$(IMG)'; last="$${ref##*/}"; \
	case "$$last" in \
	  *@*) name="$${ref%@*}"; set_ref="  digest: '$${ref#*@}'";; \
	  *:*) name="$${ref%:*}"; set_ref="  newTag: '$${ref##*:}'";; \
	  *)   name="$$ref"; set_ref="  newTag: latest";; \
	esac; \
	printf '%s\n' "# Generated by make deploy IMG=$(IMG); not tracked." \
	  'apiVersion: kustomize.config.k8s.io/v1beta1' 'kind: Kustomization' \
	  'resources:' '- ../../$(DEPLOY_BASE)' \
	  'images:' '- name: korder' "  newName: '$$name'" "$$set_ref" \
	  > $(DEPLOY_OVERLAY)/kustomization.yaml
	$(KUBECTL) apply --server-side -k $(DEPLOY_OVERLAY)

# The Namespace and the CRD stay: deleting either deletes every Order (make uninstall
# removes the CRD on purpose).
UNDEPLOY_OVERLAY := .korder/undeploy

.PHONY: undeploy
undeploy: controlplane ## Remove what make deploy made, except the Namespace and the CRD (the Orders).
	@mkdir -p $(UNDEPLOY_OVERLAY)
	@printf '%s\n' "# Generated by make undeploy; not tracked." \
	  'apiVersion: kustomize.config.k8s.io/v1beta1' 'kind: Kustomization' \
	  'resources:' '- ../../manifests/default' 'patches:' \
	  '- patch: |-' '    $$patch: delete' '    apiVersion: v1' '    kind: Namespace' \
	  '    metadata: {name: korder-system}' \
	  '- patch: |-' '    $$patch: delete' '    apiVersion: apiextensions.k8s.io/v1' \
	  '    kind: CustomResourceDefinition' '    metadata: {name: orders.korder.dev}' \
	  > $(UNDEPLOY_OVERLAY)/kustomization.yaml
	$(KUBECTL) delete --ignore-not-found -k $(UNDEPLOY_OVERLAY)

.PHONY: clean
clean: ## Remove the virtual environment and local state (not the control-plane cache).
	@# A running local cluster has mounts under .korder/cluster: stop it before removing.
	@if [ -d .korder/cluster ] && [ -x $(PY) ]; then $(PY) -m korder.localcluster cluster-down; fi
	rm -rf $(VENV) node_modules .korder .mypy_cache .ruff_cache .pytest_cache build/image
