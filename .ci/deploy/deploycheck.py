#!/usr/bin/env python3
"""Small checks behind .ci/validate-deploy.sh that no off-the-shelf tool does.

    deploycheck.py split RENDERED.yaml CORE.yaml CRDS.json   core kinds vs CRDs
    deploycheck.py rules check|sync                          alerts.yml <-> PrometheusRule
    deploycheck.py grafana DASHBOARD.json                    parses + sane panels
    deploycheck.py compose COMPOSE.yml                       parses + mounted files exist
    deploycheck.py promql OUT.yml                            dashboard + analysis queries
                                                             as a rule file for promtool

Exit status 0 = pass, 1 = fail (message on stderr). Needs PyYAML only.
"""
import json
import os
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ALERTS = os.path.join(ROOT, "deploy", "prometheus", "alerts.yml")
PROM_RULE = os.path.join(ROOT, "k8s", "base", "prometheusrule.yaml")
CRD_GROUPS = ("argoproj.io/", "monitoring.coreos.com/")

RULE_HEADER = """\
# GENERATED from deploy/prometheus/alerts.yml by `.ci/validate-deploy.sh --sync-rules`.
# Do not edit by hand: CI fails when this file and alerts.yml disagree.
"""


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def split(rendered, core_out, crds_out):
    with open(rendered) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    core = [d for d in docs if not d.get("apiVersion", "").startswith(CRD_GROUPS)]
    crds = [d for d in docs if d.get("apiVersion", "").startswith(CRD_GROUPS)]
    with open(core_out, "w") as f:
        yaml.safe_dump_all(core, f, sort_keys=False)
    with open(crds_out, "w") as f:
        json.dump(crds, f)
    kinds = sorted({d["kind"] for d in docs})
    print(f"{len(docs)} objects ({len(core)} core, {len(crds)} CRD): {', '.join(kinds)}")


def prometheus_rule(alerts):
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "inferd",
            # Matches the Prometheus Operator's ruleSelector in kube-prometheus-stack.
            "labels": {"release": "kube-prometheus-stack"},
        },
        "spec": {"groups": alerts["groups"]},
    }


class _Literal(str):
    pass


yaml.SafeDumper.add_representer(
    _Literal, lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", s, style="|")
)


def _multiline_as_literal(node):
    if isinstance(node, dict):
        return {k: _multiline_as_literal(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_multiline_as_literal(v) for v in node]
    if isinstance(node, str) and "\n" in node:
        return _Literal(node)
    return node


def rules(mode):
    with open(ALERTS) as f:
        alerts = yaml.safe_load(f)
    if not alerts or not alerts.get("groups"):
        fail(f"{ALERTS}: no rule groups")
    want = prometheus_rule(alerts)
    if mode == "sync":
        with open(PROM_RULE, "w") as f:
            f.write(RULE_HEADER)
            yaml.safe_dump(_multiline_as_literal(want), f, sort_keys=False, width=120)
        print(f"wrote {os.path.relpath(PROM_RULE, ROOT)}")
        return
    with open(PROM_RULE) as f:
        have = yaml.safe_load(f)
    if have != want:
        fail(
            "k8s/base/prometheusrule.yaml is out of sync with deploy/prometheus/alerts.yml;"
            " run `.ci/validate-deploy.sh --sync-rules`"
        )
    n = sum(len(g["rules"]) for g in alerts["groups"])
    print(f"PrometheusRule matches alerts.yml ({len(alerts['groups'])} groups, {n} rules)")


def grafana(path):
    with open(path) as f:
        dash = json.load(f)
    panels = dash.get("panels") or fail(f"{path}: no panels")
    ids = [p.get("id") for p in panels]
    if len(ids) != len(set(ids)):
        fail(f"{path}: duplicate panel ids")
    targets = 0
    for p in panels:
        if p.get("type") == "row":
            continue
        if not p.get("targets"):
            fail(f"{path}: panel {p.get('title')!r} has no queries")
        for t in p["targets"]:
            if not t.get("expr"):
                fail(f"{path}: panel {p.get('title')!r} has a target without expr")
            targets += 1
    if not dash.get("uid") or not dash.get("title"):
        fail(f"{path}: uid and title are required for provisioning")
    print(f"dashboard {dash['uid']!r}: {len(panels)} panels, {targets} queries")


def compose(path):
    with open(path) as f:
        doc = yaml.safe_load(f)
    base = os.path.dirname(os.path.abspath(path))
    missing = []
    for name, svc in (doc.get("services") or {}).items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            if src.startswith((".", "/")) and not os.path.exists(os.path.join(base, src)):
                missing.append(f"{name}: {src}")
        build = svc.get("build")
        if isinstance(build, dict):
            ctx = os.path.join(base, build.get("context", "."))
            df = os.path.join(ctx, build.get("dockerfile", "Dockerfile"))
            if not os.path.exists(df):
                missing.append(f"{name}: {df}")
    if missing:
        fail(f"{path}: missing files: {', '.join(missing)}")
    print(f"compose: services {', '.join(doc['services'])}; every mounted file exists")


GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "1m", "$job": ".+"}
ANALYSIS = os.path.join(ROOT, "k8s", "components", "canary", "analysistemplate.yaml")
ADAPTER = os.path.join(ROOT, "deploy", "prometheus-adapter", "values.yaml")


def promql(out):
    """Every PromQL expression outside alerts.yml, as recording rules, so that
    `promtool check rules` parses them. Template variables get sample values."""
    exprs = []
    with open(os.path.join(ROOT, "deploy", "grafana", "inferd.json")) as f:
        for p in json.load(f)["panels"]:
            for t in p.get("targets", []):
                e = t["expr"]
                for var, val in GRAFANA_VARS.items():
                    e = e.replace(var, val)
                exprs.append((f"grafana: {p['title']}", e))
    with open(ANALYSIS) as f:
        tmpl = yaml.safe_load(f)
    args = {a["name"]: a.get("value", "x") for a in tmpl["spec"]["args"]}
    for m in tmpl["spec"]["metrics"]:
        e = m["provider"]["prometheus"]["query"]
        for name, val in args.items():
            e = e.replace("{{args.%s}}" % name, val)
        exprs.append((f"analysis: {m['name']}", e))
    with open(ADAPTER) as f:
        for rule in yaml.safe_load(f)["rules"]["custom"]:
            e = rule["metricsQuery"].replace("<<.GroupBy>>", "pod").replace(
                "<<.Series>>", rule["seriesQuery"].split("{")[0]).replace("<<.LabelMatchers>>", 'pod!=""')
            exprs.append(("prometheus-adapter", e))
    rules = [{"record": f"inferd_check:query:{i}", "expr": e} for i, (_, e) in enumerate(exprs)]
    with open(out, "w") as f:
        yaml.safe_dump({"groups": [{"name": "queries", "rules": rules}]}, f, sort_keys=False)
    print(f"{len(exprs)} queries (dashboard, AnalysisTemplate, prometheus-adapter)")


def main(argv):
    if len(argv) == 5 and argv[1] == "split":
        split(*argv[2:])
    elif len(argv) == 3 and argv[1] == "rules" and argv[2] in ("check", "sync"):
        rules(argv[2])
    elif len(argv) == 3 and argv[1] == "grafana":
        grafana(argv[2])
    elif len(argv) == 3 and argv[1] == "promql":
        promql(argv[2])
    elif len(argv) == 3 and argv[1] == "compose":
        compose(argv[2])
    else:
        fail(__doc__)


if __name__ == "__main__":
    main(sys.argv)
