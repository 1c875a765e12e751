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
types: install ## mypy --strict over both packages
	$(VENV)/bin/mypy

.PHONY: test
test: setup ## run the whole test suite (starts real Redis, Postgres, PgBouncer and the control plane)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

.PHONY: check
check: setup lint types test ## lint + types + tests: exactly what CI runs (the README's test command)

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

.PHONY: bench-operator
bench-operator: install ## operator benchmark on the local control plane (1 and 200 detectors; bench/operator/)
	$(PY) bench/operator/run.py

# ---- detector benchmark ---------------------------------------------------------------------------
BENCH_QUICK ?=
BENCH_ARGS ?=
.PHONY: bench
bench: install ## detector service vs MLServer 1.7, HTTP ceiling, in-process (BENCH_QUICK=1: 3 s cells; BENCH_ARGS=...)
	$(PY) bench/detector_bench.py $(if $(BENCH_QUICK),--quick) $(BENCH_ARGS)

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

# ---- real node (issue #14; e2e/node/README.md) ----------------------------------------------------
.PHONY: node-deps
node-deps: ## install the Debian packages the real node runs on (containerd, runc, CNI plugins, iptables, conntrack)
	@scripts/node-deps.sh

.PHONY: node
node: controlplane ## build the real node: kubelet+kube-proxy (.cluster/bin/node), CoreDNS, metrics-server, pause and test images
	@e2e/cluster.sh build-node

.PHONY: test-realnode
test-realnode: install node-deps node ## real pods on a real node: Pod Security, Services, DNS, logs/exec, metrics, HPA, clean stop (root)
	PYNOMALY_REAL_NODE=1 $(VENV)/bin/pytest -m realnode tests/realnode $(PYTEST_ARGS)
