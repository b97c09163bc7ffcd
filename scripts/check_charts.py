#!/usr/bin/env python3
"""Lints, renders and validates every Helm chart under charts/ with every example values file.

Run through scripts/check-charts.sh, which installs the two PyPI packages this needs:
helm-python-sdk (the Helm v4 SDK: lint and render, no helm binary) and kubernetes-validate (the
Kubernetes OpenAPI schemas, strict: unknown fields are errors). Exits 1 on any problem.

Per chart, with its default values and with each examples/helm/<chart>-*.yaml:
  1. helm lint --strict for Kubernetes 1.33;
  2. render, split into objects, validate each with kubernetes-validate --strict for 1.33
     (ServiceMonitor and PrometheusRule, CRDs without a schema there, are checked for their required
     fields instead);
  3. the binaries accept what is rendered: `pressured ARGS --check-config` with the rendered arguments
     and config.json (its parser rejects unknown keys); oom-tracer's rendered flags parse. The binaries
     come from target/{debug,release} or $PRESSURED_BIN / $OOM_TRACER_BIN; missing ones are skipped,
     or fail when CI=true.
Plus: examples/sidecar.yaml validates; examples/descheduler-values.yaml matches the oom-tracer chart's
annotation; the Grafana dashboard is valid JSON and only queries metrics oom-tracer registers; the
pressured chart's optional PrometheusRule passes `promtool check rules` (Debian prometheus; skipped
without promtool, failed when CI=true); and values that must be refused (an unknown mode) are refused.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml
import kubernetes_validate
from helm_python import chart as helm_chart

KUBE_VERSION = "1.33"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE, NAMESPACE = "pressure", "monitoring"

problems: list[str] = []
checked = 0


def problem(where: str, message: str) -> None:
    problems.append(f"{where}: {message}")
    print(f"FAIL {where}: {message}")


def rel(path: str) -> str:
    return os.path.relpath(path, ROOT)


def load_values(path: str | None) -> dict:
    if path is None:
        return {}
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def objects_of(rendered: dict[str, str]) -> list[tuple[str, dict]]:
    """The Kubernetes objects of a render, with the template each came from."""
    out = []
    for template, text in sorted(rendered.items()):
        if template.endswith("NOTES.txt") or not text.strip():
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                out.append((template, doc))
    return out


def check_service_monitor(where: str, obj: dict) -> None:
    """ServiceMonitor is a prometheus-operator CRD: no schema in kubernetes-validate; check its shape."""
    spec = obj.get("spec") or {}
    if not spec.get("selector", {}).get("matchLabels"):
        problem(where, "ServiceMonitor without spec.selector.matchLabels")
    endpoints = spec.get("endpoints") or []
    if not endpoints or not all(e.get("port") for e in endpoints):
        problem(where, "ServiceMonitor endpoints need a named port")


def check_prometheus_rule_shape(where: str, obj: dict) -> None:
    """PrometheusRule is a prometheus-operator CRD: every group has a name and rules with an expr."""
    groups = (obj.get("spec") or {}).get("groups") or []
    if not groups:
        problem(where, "PrometheusRule without spec.groups")
    for g in groups:
        rules = g.get("rules") or []
        if not g.get("name") or not rules:
            problem(where, f"PrometheusRule group {g.get('name')!r} needs a name and rules")
        for r in rules:
            if not r.get("expr") or not (r.get("alert") or r.get("record")):
                problem(where, f"PrometheusRule group {g.get('name')!r}: a rule needs expr and alert/record")


def under_ci() -> bool:
    """CI set to anything but empty, 0 or false (as pressure_testkit::under_ci)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


def check_prometheus_rules() -> None:
    """The pressured chart's PrometheusRule (metrics.prometheusRule.enabled) passes promtool check rules."""
    chart_dir = os.path.join(ROOT, "charts", "pressured")
    where = "pressured [metrics.prometheusRule.enabled]"
    values = {"metrics": {"prometheusRule": {"enabled": True}}}
    with helm_chart.Chart.load(chart_dir) as c:
        objs = objects_of(c.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True))
    rules = [o for _, o in objs if o.get("kind") == "PrometheusRule"]
    if len(rules) != 1:
        problem(where, f"rendered {len(rules)} PrometheusRule objects, want 1")
        return
    for template, obj in objs:
        validate_object(f"{where} {template}", obj)
    promtool = shutil.which("promtool")
    if promtool is None:
        if under_ci():
            problem(where, "CI is set but promtool is not on PATH (Debian prometheus)")
        else:
            print(f"skip {where}: promtool is not on PATH (Debian prometheus)")
        return
    with tempfile.NamedTemporaryFile("w", suffix=".rules.yaml", delete=False) as f:
        yaml.safe_dump({"groups": rules[0]["spec"]["groups"]}, f)
        path = f.name
    try:
        out = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
    finally:
        os.unlink(path)
    if out.returncode != 0:
        problem(where, f"promtool check rules:\n{out.stdout}{out.stderr}")
    else:
        print(f"ok   {where}: promtool check rules: {out.stdout.strip().splitlines()[-1]}")


def check_semantics(where: str, obj: dict) -> None:
    """Rules the API server enforces that the OpenAPI schemas do not express."""
    spec = (obj.get("spec") or {}).get("template", {}).get("spec") or obj.get("spec") or {}
    for c in spec.get("containers") or []:
        sc = c.get("securityContext") or {}
        if sc.get("privileged") and sc.get("allowPrivilegeEscalation") is False:
            problem(where, f"container {c.get('name')}: privileged with allowPrivilegeEscalation: false")
        ports = {p.get("name") for p in c.get("ports") or []}
        for probe in ("livenessProbe", "readinessProbe"):
            port = ((c.get(probe) or {}).get("httpGet") or {}).get("port")
            if isinstance(port, str) and port not in ports:
                problem(where, f"container {c.get('name')}: {probe} on unknown port {port!r}")
        mounts = {m.get("name") for m in c.get("volumeMounts") or []}
        volumes = {v.get("name") for v in spec.get("volumes") or []}
        if mounts - volumes:
            problem(where, f"container {c.get('name')}: mounts undeclared volumes {sorted(mounts - volumes)}")


def validate_object(where: str, obj: dict) -> None:
    global checked
    kind = obj.get("kind", "?")
    name = (obj.get("metadata") or {}).get("name", "?")
    at = f"{where} {kind}/{name}"
    checked += 1
    if obj.get("apiVersion") == "monitoring.coreos.com/v1" and kind == "ServiceMonitor":
        check_service_monitor(at, obj)
        return
    if obj.get("apiVersion") == "monitoring.coreos.com/v1" and kind == "PrometheusRule":
        check_prometheus_rule_shape(at, obj)
        return
    check_semantics(at, obj)
    try:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = ".".join(str(p) for p in e.absolute_path)
        problem(at, f"{path}: {e.message}")
    except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as e:
        problem(at, e.message)


def binary(name: str) -> str | None:
    """`$PRESSURED_BIN` / `$OOM_TRACER_BIN`, else target/{debug,release}/NAME."""
    env = os.environ.get(name.upper().replace("-", "_") + "_BIN")
    if env:
        return env
    for profile in ("debug", "release"):
        path = os.path.join(ROOT, "target", profile, name)
        if os.access(path, os.X_OK):
            return path
    return None


def find_binary(where: str, name: str) -> str | None:
    path = binary(name)
    if path is None:
        env = name.upper().replace("-", "_") + "_BIN"
        message = f"no {name} binary (cargo build -p {name}-cli, or set {env})"
        if os.environ.get("CI") == "true":
            problem(where, message)
        else:
            print(f"SKIP {where}: flag check: {message}")
    return path


def container_args(objs: list[tuple[str, dict]], container: str) -> list[str] | None:
    for _, obj in objs:
        spec = (obj.get("spec") or {}).get("template", {}).get("spec", {})
        for c in spec.get("containers", []):
            if c.get("name") == container:
                return [str(a) for a in c.get("args", [])]
    return None


WORKLOADS = ("DaemonSet", "Deployment", "StatefulSet")
# What a container's process gets from its pod's securityContext unless it sets its own.
PROCESS_KEYS = ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile")


def check_security_contexts(where: str, chart: str, objs: list[tuple[str, dict]]) -> None:
    """The rendered workloads carry the chart's default security contexts unchanged.

    The system tests run the binaries in the sandbox these values describe (pressure-testkit's
    ChartSecurity reads the same values.yaml), so this is what keeps tested and deployed the same.
    """
    values = load_values(os.path.join(ROOT, "charts", chart, "values.yaml"))
    want_pod = values.get("podSecurityContext") or {}
    want_container = values.get("securityContext") or {}
    seen = 0
    for template, obj in objs:
        if obj.get("kind") not in WORKLOADS:
            continue
        spec = obj["spec"]["template"]["spec"]
        for c in spec.get("containers", []):
            if c.get("name") != chart:
                continue
            seen += 1
            if (spec.get("securityContext") or {}) != want_pod:
                problem(f"{where} {template}", f"pod securityContext {spec.get('securityContext')} "
                        f"is not the tested {want_pod} (charts/{chart}/values.yaml)")
            if (c.get("securityContext") or {}) != want_container:
                problem(f"{where} {template}", f"container securityContext {c.get('securityContext')} "
                        f"is not the tested {want_container} (charts/{chart}/values.yaml)")
    if not seen:
        problem(where, f"no {chart} container in a workload: security contexts unchecked")


def check_sidecar_security(path: str, docs: list[dict]) -> None:
    """examples/sidecar.yaml runs the pressured container as the chart (and the tests) do."""
    values = load_values(os.path.join(ROOT, "charts", "pressured", "values.yaml"))
    want_pod = values.get("podSecurityContext") or {}
    want_container = values.get("securityContext") or {}
    seen = 0
    for obj in docs:
        if obj.get("kind") not in WORKLOADS:
            continue
        spec = obj["spec"]["template"]["spec"]
        pod = spec.get("securityContext") or {}
        for c in spec.get("containers", []):
            if c.get("name") != "pressured":
                continue
            seen += 1
            own = c.get("securityContext") or {}
            effective = {k: own.get(k, pod.get(k)) for k in PROCESS_KEYS}
            for k in PROCESS_KEYS:
                if k in want_pod and effective[k] != want_pod[k]:
                    problem(rel(path), f"pressured container: {k} is {effective[k]}, the chart's "
                            f"(tested) is {want_pod[k]}")
            for k, v in want_container.items():
                if own.get(k) != v:
                    problem(rel(path), f"pressured container: securityContext.{k} is {own.get(k)}, "
                            f"the chart's (tested) is {v}")
    if not seen:
        problem(rel(path), "no pressured container")


def check_pressured_config(where: str, objs: list[tuple[str, dict]]) -> None:
    """Runs `pressured --check-config` with the rendered arguments and config.json: the binary's own
    flag parser and config parser (which rejects unknown keys) accept what the chart renders."""
    config = next(
        (o["data"]["config.json"] for _, o in objs
         if o.get("kind") == "ConfigMap" and "config.json" in (o.get("data") or {})),
        None,
    )
    if config is None:
        problem(where, "no ConfigMap with config.json rendered")
        return
    path = find_binary(where, "pressured")
    if path is None:
        return
    args = container_args(objs, "pressured")
    if args is None:  # sidecar mode: the chart renders no workload
        args = ["-c", "/etc/pressured/config.json"]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(config)
    try:
        args = [f.name if a == "/etc/pressured/config.json" else a for a in args]
        run = subprocess.run([path, *args, "--check-config"], capture_output=True, text=True)
    finally:
        os.unlink(f.name)
    if run.returncode != 0:
        problem(where, f"pressured {' '.join(args)} --check-config: {run.stderr.strip()}")


def check_oom_tracer_args(where: str, objs: list[tuple[str, dict]]) -> None:
    """Runs oom-tracer with the rendered flags and no node name: it must get past flag parsing and stop
    at the missing node name (exit 2 with that message), so every rendered flag exists."""
    args = container_args(objs, "oom-tracer")
    if args is None:
        problem(where, "no oom-tracer container rendered")
        return
    path = find_binary(where, "oom-tracer")
    if path is None:
        return
    env = {k: v for k, v in os.environ.items() if k not in ("K8S_NODENAME", "NODE_NAME")}
    run = subprocess.run([path, *args], capture_output=True, text=True, env=env, timeout=30)
    if run.returncode != 2 or "K8S_NODENAME" not in run.stderr:
        problem(where, f"oom-tracer {' '.join(args)}: exit {run.returncode}: {run.stderr.strip()}")


def check_chart(chart_dir: str, values_path: str | None) -> list[tuple[str, dict]]:
    name = os.path.basename(chart_dir)
    where = f"{name} [{rel(values_path) if values_path else 'defaults'}]"
    values = load_values(values_path)
    before = len(problems)
    report = helm_chart.lint(chart_dir, values, strict=True, kube_version=f"v{KUBE_VERSION}.0")
    for m in report.get("messages", []):
        if m.get("severity", 0) >= 2:  # 2 warning, 3 error; strict fails on both
            problem(where, f"helm lint: {m.get('path')}: {m.get('error')}")
    for e in report.get("errors", []):
        problem(where, f"helm lint: {e}")
    try:
        with helm_chart.Chart.load(chart_dir) as c:
            rendered = c.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    except Exception as e:  # the SDK raises HelmError subclasses with the template at fault
        problem(where, f"render: {e}")
        return []
    objs = objects_of(rendered)
    if not objs:
        problem(where, "rendered no objects")
    for template, obj in objs:
        validate_object(f"{where} {template}", obj)
    if values_path is None:
        check_security_contexts(where, name, objs)
    if name == "pressured":
        check_pressured_config(where, objs)
    elif name == "oom-tracer":
        check_oom_tracer_args(where, objs)
    if len(problems) == before:
        print(f"ok   {where}: lint, render, {len(objs)} objects valid")
    return objs


def must_fail(chart_dir: str, values: dict, why: str) -> None:
    """Values the chart must refuse at render time."""
    try:
        with helm_chart.Chart.load(chart_dir) as c:
            c.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    except Exception:
        print(f"ok   {os.path.basename(chart_dir)}: refuses {why}")
        return
    problem(os.path.basename(chart_dir), f"accepted {why}")


def check_descheduler_values(path: str) -> None:
    """The descheduler example must evict on the annotation key the oom-tracer chart writes."""
    values = load_values(path)
    with helm_chart.Chart.load(os.path.join(ROOT, "charts", "oom-tracer")) as c:
        annotation = c.values["victimAnnotation"]
    key = annotation.split("=", 1)[0]
    found = []
    for profile in values.get("deschedulerPolicy", {}).get("profiles", []):
        for pc in profile.get("pluginConfig", []):
            if pc.get("name") == "RemoveAnnotated":
                found.append((pc.get("args") or {}).get("annotationKey"))
        enabled = profile.get("plugins", {}).get("deschedule", {}).get("enabled", [])
        if found and "RemoveAnnotated" not in enabled:
            problem(rel(path), f"profile {profile.get('name')}: RemoveAnnotated configured, not enabled")
    if key not in found:
        problem(rel(path), f"no RemoveAnnotated plugin with annotationKey {key!r} (got {found})")
    else:
        print(f"ok   {rel(path)}: RemoveAnnotated evicts on {key}")


def check_dashboards() -> None:
    """Each dashboard parses, the charts' copies are identical, and every oom_tracer_* / pressured_*
    series it queries is one the binaries register (oom-tracer-cli/src/metrics.rs,
    pressured-cli/src/server.rs)."""
    registered: set[str] = set()
    for source in ("oom-tracer-cli/src/metrics.rs", "pressured-cli/src/server.rs"):
        path = os.path.join(ROOT, source)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                registered |= set(re.findall(r'"((?:oom_tracer|pressured)_[a-z_]+)"', f.read()))
    paths = sorted(glob.glob(os.path.join(ROOT, "charts", "*", "dashboards", "*.json")))
    texts = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            texts[path] = f.read()
        try:
            dashboard = json.loads(texts[path])
        except json.JSONDecodeError as e:
            problem(rel(path), f"not JSON: {e}")
            continue
        exprs = [t.get("expr", "") for p in dashboard.get("panels", []) for t in p.get("targets", [])]
        for series in sorted(set(re.findall(r"(?:oom_tracer|pressured)_[a-z_]+", " ".join(exprs)))):
            base = re.sub(r"_(total|bucket|sum|count)$", "", series)
            if base not in registered:
                problem(rel(path), f"queries {series}, which no binary registers")
        print(f"ok   {rel(path)}: {len(exprs)} queries, metric names registered by the binaries")
    by_name: dict[str, list[str]] = {}
    for path in paths:
        by_name.setdefault(os.path.basename(path), []).append(path)
    for copies in by_name.values():
        if len({texts[p] for p in copies}) > 1:
            problem(", ".join(rel(p) for p in copies), "copies differ: run scripts/gen_dashboard.py")


def main() -> int:
    charts = sorted(d for d in glob.glob(os.path.join(ROOT, "charts", "*")) if os.path.isdir(d))
    for chart_dir in charts:
        name = os.path.basename(chart_dir)
        check_chart(chart_dir, None)
        for values_path in sorted(glob.glob(os.path.join(ROOT, "examples", "helm", f"{name}-*.yaml"))):
            check_chart(chart_dir, values_path)
    strays = [
        p
        for p in glob.glob(os.path.join(ROOT, "examples", "helm", "*.yaml"))
        if not any(os.path.basename(p).startswith(os.path.basename(c) + "-") for c in charts)
    ]
    for p in strays:
        problem(rel(p), "names no chart (examples/helm/<chart>-<what>.yaml)")
    sidecar = os.path.join(ROOT, "examples", "sidecar.yaml")
    with open(sidecar, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    for obj in docs:
        validate_object(rel(sidecar), obj)
    check_sidecar_security(sidecar, docs)
    print(f"ok   {rel(sidecar)}: {len(docs)} objects valid")
    check_descheduler_values(os.path.join(ROOT, "examples", "descheduler-values.yaml"))
    check_dashboards()
    check_prometheus_rules()
    must_fail(os.path.join(ROOT, "charts", "pressured"), {"mode": "everywhere"}, "an unknown mode")
    must_fail(
        os.path.join(ROOT, "charts", "pressured"),
        {"storage": {"enabled": True, "backend": "s3"}},
        "s3 storage without a bucket",
    )
    if problems:
        print(f"\n{len(problems)} problem(s) in {len(charts)} charts, {checked} objects checked")
        return 1
    print(f"\nall good: {len(charts)} charts, {checked} objects valid for Kubernetes {KUBE_VERSION}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
