# Pynomaly Operator: every developer and CI entry point. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: help
help: ## list the targets with what they do
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: system-deps
system-deps: ## install Debian packages the tests use for real (redis, postgresql, pgbouncer, lua)
	@scripts/system-deps.sh

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

.PHONY: install
install: $(VENV)/.installed ## create .venv in the repo root with the service, the operator and dev tools

.PHONY: setup
setup: system-deps install controlplane checkov ## everything the tests need: packages, .venv, control plane binary

.PHONY: lint
lint: install ## ruff lint + format check + import layering contracts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

.PHONY: fmt
fmt: install ## apply ruff formatting and autofixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

.PHONY: types
types: install ## mypy --strict over both packages and the real-node tests
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy tests/realnode

.PHONY: test
test: setup ## run the whole test suite (starts real Redis, Postgres, PgBouncer and the control plane)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

.PHONY: check
check: setup lint types test ## lint + types + tests (everything but the image and Argo CD scenarios)

.PHONY: ci
ci: check test-images test-argocd test-realnode ## the README's test command, exactly what CI (.ci/run) runs: check, then the images, a live Argo CD and the real node

# ---- install manifests, policy checks and the demo (issue #6) --------------------------------
# checkov lives in its own virtualenv: its pins (packaging, python-dateutil) would downgrade .venv.
CHECKOV_VENV ?= .venv-checkov

$(CHECKOV_VENV)/.installed:
	python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q --upgrade pip
	$(CHECKOV_VENV)/bin/pip install -q 'checkov==3.3.30'
	touch $@

.PHONY: checkov
checkov: $(CHECKOV_VENV)/.installed ## install checkov (policy checks) into its own .venv-checkov

.PHONY: policy
policy: install checkov ## checkov over manifests/ and every sample's rendered children (zero failures)
	$(VENV)/bin/pytest -q tests/install/test_policy.py

.PHONY: argocd-health
argocd-health: install ## regenerate manifests/argocd/argocd-cm-health.yaml from health.lua
	$(PY) scripts/argocd-health-cm.py

.PHONY: demo
demo: setup ## the first five minutes: local cluster, operator, a sample detector, fit + score (stop: make demo-down)
	@scripts/demo.sh up

.PHONY: demo-down
demo-down: ## stop everything `make demo` started (state and logs stay in .demo/)
	@scripts/demo.sh down

# ---- operator (issue #4) -------------------------------------------------------------------------
.PHONY: crds
crds: install ## regenerate crds/ (CRD YAML + kustomization) from the pydantic spec/status models
	$(PY) -m pynomaly_operator.crdgen --readme operator/README.md

.PHONY: crd-docs
crd-docs: install ## print the AnomalyDetector field reference (Markdown) generated from the models
	@$(PY) -m pynomaly_operator.crdgen --markdown

.PHONY: test-operator
test-operator: install ## operator tests (builders, status, CRD parity, reconcile; marker cluster: the control plane)
	$(VENV)/bin/pytest tests/operator tests/install/test_rbac_cluster.py $(PYTEST_ARGS)

.PHONY: test-drift
test-drift: install ## drift monitoring and challenger tests (marker drift: real Redis, Postgres, service processes)
	$(VENV)/bin/pytest -m drift tests $(PYTEST_ARGS)

.PHONY: bench-operator
bench-operator: install controlplane ## operator benchmark on the local control plane (1 and 200 detectors; bench/operator/)
	$(PY) bench/operator/run.py

# ---- detector benchmark ---------------------------------------------------------------------------
BENCH_QUICK ?=
BENCH_ARGS ?=
.PHONY: bench
bench: install ## detector service vs MLServer 1.7, HTTP ceiling, in-process (BENCH_QUICK=1: 3 s cells; BENCH_ARGS=...)
	$(PY) bench/detector_bench.py $(if $(BENCH_QUICK),--quick) $(BENCH_ARGS)

# ---- detector HTTP layer (issue #11: hostile clients, auth, drain, OpenAPI) -------------------------
.PHONY: test-http
test-http: install ## the detector's HTTP layer against real server processes (marker http)
	$(VENV)/bin/pytest -q -m http tests/detector $(PYTEST_ARGS)

.PHONY: bench-http
bench-http: install ## HTTP reliability in the operator-rendered configuration: 500 clients, slow clients, 413 (bench/results/http-<date>.md)
	$(PY) bench/http_reliability.py

.PHONY: fuzz-openapi
fuzz-openapi: install ## the long schemathesis run: 1,000 cases per operation and mode (record in bench/results/openapi-fuzz-<date>.jsonl)
	PYNOMALY_FUZZ_EXAMPLES=1000 PYNOMALY_FUZZ_REPORT=bench/results/openapi-fuzz-$$(date +%F).jsonl \
		$(VENV)/bin/pytest -q tests/detector/test_openapi.py -k answers

# ---- local control plane (issue #3; e2e/README.md) ------------------------------------------------
.PHONY: controlplane
controlplane: ## build .cluster/bin/{controlplane,kwok,kubectl} (etcd+apiserver+controllers+scheduler, KWOK, kubectl of the same version); no-op when up to date
	@e2e/cluster.sh build

.PHONY: cluster
cluster: ## start the local Kubernetes control plane in the background; prints .cluster/kubeconfig
	@e2e/cluster.sh start

.PHONY: cluster-down
cluster-down: ## stop the local control plane (whole process group) and remove its state
	@e2e/cluster.sh stop

# ---- GitOps with a live Argo CD (issue #18; e2e/README.md "Argo CD") ------------------------------
.PHONY: argocd
argocd: ## build Argo CD (controller + repo server) and kustomize into .cluster/bin, copy Argo CD's CRDs; no-op when up to date
	@e2e/argocd.sh build

.PHONY: test-argocd
test-argocd: install controlplane argocd ## GitOps scenarios: a live Argo CD syncs manifests/ from a local Git repository (marker argocd)
	$(VENV)/bin/pytest -m argocd tests/gitops $(PYTEST_ARGS)

# ---- detector service tests (issue #11) -----------------------------------------------------
.PHONY: test-detector
test-detector: install ## detector service tests: real redis-server (standalone/sentinel/cluster), PostgreSQL + PgBouncer
	$(VENV)/bin/pytest tests/detector $(PYTEST_ARGS)

# ---- Open Inference Protocol: gRPC stubs and protocol clients (issue #17) ------------------------
GRPC_DIR := detector_service/pynomaly_detector/api/grpc
.PHONY: grpc-stubs
grpc-stubs: install ## regenerate api/grpc/inference_pb2.py(i) from inference.proto (committed; a test checks they match)
	$(PY) scripts/grpc-stubs.py $(GRPC_DIR)

# kserve pins psutil<6 and pandas<3 (below .venv's floors): its clients get their own venv.
KSERVE_VENV ?= .venv-kserve

$(KSERVE_VENV)/.installed:
	python3 -m venv $(KSERVE_VENV)
	$(KSERVE_VENV)/bin/pip install -q 'kserve==0.21.*'
	touch $@

.PHONY: kserve-venv
kserve-venv: $(KSERVE_VENV)/.installed ## KServe's Python clients in their own .venv-kserve (for the protocol client tests)

.PHONY: test-oip
test-oip: install kserve-venv ## Open Inference Protocol: tensor codecs, binary REST, gRPC, Triton and KServe clients
	$(VENV)/bin/pytest -q tests/detector/scoring/test_tensors.py tests/detector/api/test_binary_tensors.py tests/detector/api/test_inference_api.py tests/detector/api/test_auth.py tests/detector/oip $(PYTEST_ARGS)

.PHONY: bench-oip
bench-oip: install ## JSON v2 vs binary v2 vs gRPC (256/4,096 rows) beside MLServer's gRPC -> bench/results/oip-<date>.md
	$(PY) bench/oip_bench.py $(BENCH_ARGS)

# ---- operations: alert rules, dashboard, kubectl plugin (issue #15) -----------------------------
.PHONY: promtool
promtool: ## build .cluster/bin/promtool from the pinned Prometheus module (e2e/promtool; cold up to ~1 h on a loaded 2-core box, warm ~45 s)
	@e2e/promtool/build.sh

.PHONY: monitoring-manifests
monitoring-manifests: install ## regenerate manifests/monitoring/ (PrometheusRule, PodMonitor, rules.yaml, dashboard.json)
	$(PY) scripts/monitoring-manifests.py

.PHONY: test-ops
test-ops: install promtool ## rules (promtool check + unit tests on live series), dashboard, kubectl plugin (tests/ops)
	$(VENV)/bin/pytest tests/ops $(PYTEST_ARGS)

# ---- container images (issue #13; README "Container images") -------------------------------------
.PHONY: images-deps
images-deps: ## install podman, buildah, runc, catatonit, mmdebstrap, skopeo, docker-registry (Debian)
	@scripts/images-deps.sh

.PHONY: images
images: images-deps ## build Debian + Python bases, pynomaly/{detector,operator} and the store images with podman (.images/)
	@images/build.sh

.PHONY: images-push
images-push: images-deps ## push the built images to a registry on 127.0.0.1:$${IMAGES_REGISTRY_PORT:-5000} (started if needed)
	@images/registry.sh push

.PHONY: images-oci
images-oci: ## write the built images as an OCI layout in .images/oci (for a node without a registry)
	@images/registry.sh oci

.PHONY: test-images
test-images: install controlplane images ## run each image as the operator's pods run it (pytest -m images)
	$(VENV)/bin/pytest -m images tests/images $(PYTEST_ARGS)

# ---- real node (issue #14; e2e/node/README.md) ----------------------------------------------------
.PHONY: node-deps
node-deps: ## install the Debian packages the real node runs on (containerd, runc, CNI plugins, iptables, conntrack)
	@scripts/node-deps.sh

.PHONY: node
node: controlplane ## build the real node: kubelet+kube-proxy (.cluster/bin/node), CoreDNS, metrics-server, pause and test images
	@e2e/cluster.sh build-node

.PHONY: test-realnode
test-realnode: install node-deps node images ## real pods on a real node: the minimal sample on the project's images, HPA, faults, clean stop (root)
	@e2e/cluster.sh test-node
	PYNOMALY_REAL_NODE=1 $(VENV)/bin/pytest -m realnode tests/realnode $(PYTEST_ARGS)

HPA_DEFAULTS_RECORD ?= bench/results/hpa-$(shell date -u +%Y-%m-%d)-defaults.md
.PHONY: test-hpa-defaults
test-hpa-defaults: install node-deps node images ## the real-node HPA with the guide's default windows, ~15 min; timeline to bench/results/hpa-<date>-defaults.md (root)
	PYNOMALY_REAL_NODE=1 PYNOMALY_HPA_DEFAULTS=1 PYNOMALY_HPA_DEFAULTS_RECORD=$(HPA_DEFAULTS_RECORD) \
		$(VENV)/bin/pytest -m hpa_defaults tests/realnode -s $(PYTEST_ARGS)
