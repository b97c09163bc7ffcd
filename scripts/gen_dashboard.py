#!/usr/bin/env python3
"""Writes the Grafana dashboard both charts ship (charts/*/dashboards/pressure.json).

One source for the two copies (Helm cannot read files outside a chart); scripts/check_charts.py fails
when they differ or query a metric the binaries do not register.

    python3 scripts/gen_dashboard.py
"""

import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DS = {"type": "prometheus", "uid": "${datasource}"}
panels: list[dict] = []


def panel(title, exprs, x, y, w=12, h=8, kind="timeseries", unit="short", desc=""):
    p = {
        "id": len(panels) + 1,
        "type": kind,
        "title": title,
        "description": desc,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        "targets": [
            {"refId": chr(65 + i), "datasource": DS, "expr": e, "legendFormat": legend}
            for i, (e, legend) in enumerate(exprs)
        ],
    }
    if kind == "table":
        for t in p["targets"]:
            t["format"] = "table"
            t["instant"] = True
    panels.append(p)


def row(title, y):
    panels.append(
        {
            "id": len(panels) + 1,
            "type": "row",
            "title": title,
            "collapsed": False,
            "gridPos": {"x": 0, "y": y, "w": 24, "h": 1},
            "panels": [],
        }
    )


N = '{node=~"$node"}'
row("oom-tracer: OOM kills", 0)
panel(
    "OOM kills by kind",
    [(f"sum by (kind) (increase(oom_tracer_kills_total{N}[$__rate_interval]))", "{{kind}}")],
    0, 1,
    desc="Kernel OOM kills on the selected nodes: global (the node ran out of memory), memcg (a container "
    "or pod limit), cpuset_mempolicy, unknown (no kernel log to tell).",
)
panel(
    "OOM kills by node (time range)",
    [(f"sum by (node) (increase(oom_tracer_kills_total{N}[$__range]))", "{{node}}")],
    12, 1, kind="bargauge",
    desc="Kills per node over the dashboard's time range.",
)
panel(
    "Victims marked for eviction",
    [(f"sum by (stage, reason) (increase(oom_tracer_marked_victims_total{N}[$__rate_interval]))",
      "{{stage}} / {{reason}}")],
    0, 9,
    desc="Victim pods annotated (marked/annotation_applied) or left alone (skipped/annotation_exists); "
    "a descheduler evicts the marked ones.",
)
panel(
    "Kill handling by stage and reason",
    [(f"sum by (stage, reason) (increase(oom_tracer_events_total{N}[$__rate_interval]))",
      "{{stage}} / {{reason}}")],
    12, 9,
    desc="observed (ebpf_capture, kmsg_capture), identified (pod_identified), skipped (no_pod_match, "
    "non_or_ignored_global_oom), error (annotation_failed).",
)
row("oom-tracer: health", 17)
panel(
    "Lost or unparsed records",
    [
        (f"sum by (node) (increase(oom_tracer_ringbuf_drops_total{N}[$__rate_interval]))",
         "ring buffer drops {{node}}"),
        (f"sum by (node) (increase(oom_tracer_kmsg_parse_errors_total{N}[$__rate_interval]))",
         "kmsg parse errors {{node}}"),
        (f"sum by (node) (increase(oom_tracer_kmsg_lost_records_total{N}[$__rate_interval]))",
         "kmsg records lost {{node}}"),
        (f"sum by (node) (increase(oom_tracer_marks_without_kill_total{N}[$__rate_interval]))",
         "marks without kill {{node}}"),
    ],
    0, 18,
    desc="Should stay at zero: BPF ring buffer full, kernel-log records unparsed or overwritten; marks of "
    "already-exiting tasks are not kills.",
)
panel(
    "Kill sources per node",
    [(f"max by (node, bpf, kmsg) (oom_tracer_source_info{N})", "")],
    12, 18, kind="table",
    desc="bpf: tp_btf, tracepoint or none (kernel log alone); kmsg: whether the kernel log is read "
    "(needed to tell global from cgroup OOMs).",
)
panel(
    "oom-tracer versions",
    [(f"count by (version) (oom_tracer_build_info{N})", "{{version}}")],
    0, 26, w=8, h=4, kind="stat",
    desc="oom-tracer pods per version.",
)
panel(
    "pressured versions",
    [("count by (version) (pressured_build_info)", "{{version}}")],
    8, 26, w=8, h=4, kind="stat",
    desc="pressured pods per version.",
)
row("pressured: memory pressure events", 30)
panel(
    "Events by type and severity",
    [("sum by (event_type, severity) (increase(pressured_events_total[$__rate_interval]))",
      "{{event_type}} / {{severity}}")],
    0, 31,
    desc="memory_pressure (warn, critical), predicted_oom, oom_killed, recovered, heap_profile: what "
    "pressured saw and acted on.",
)
panel(
    "Events not handed to actions (queue full)",
    [("sum by (pod) (increase(pressured_actions_dropped_events_total[$__rate_interval]))", "{{pod}}")],
    12, 31,
    desc="Should stay at zero; otherwise actions (Lua, exec, webhook) are slower than events arrive "
    "(actions.queue_capacity).",
)
row("Containers near their memory limit (kubelet cAdvisor, kube-state-metrics)", 39)
C = 'container!="", container!="POD", node=~"$node"'
panel(
    "Working set / limit, top 10",
    [(f"topk(10, 100 * max by (namespace, pod, container) (container_memory_working_set_bytes{{{C}}}"
      f" / on (namespace, pod, container) group_left max by (namespace, pod, container)"
      f" (container_spec_memory_limit_bytes{{{C}}} > 0)))",
      "{{namespace}}/{{pod}}/{{container}}")],
    0, 40, unit="percent",
    desc="The signal pressured compares to thresholds.warn_percent / critical_percent (working set over "
    "limit), from the kubelet's cAdvisor metrics.",
)
panel(
    "Containers last terminated by OOMKilled",
    [('sum by (namespace, pod, container) (kube_pod_container_status_last_terminated_reason{reason="OOMKilled"}) > 0', "")],
    12, 40, kind="table",
    desc="From kube-state-metrics, when installed.",
)
row("pressured: containers closest to OOM (per-container gauges)", 48)
panel(
    "Closest to OOM",
    [(f"topk(10, max by (namespace, pod, container) (pressured_container_memory_usage_ratio{N}))",
      "{{namespace}}/{{pod}}/{{container}}")],
    0, 49, kind="bargauge", unit="percentunit",
    desc="The containers whose working set (thresholds.signal) is closest to their limit, from "
    "pressured's own readings (metrics.container_gauges: on in node and sidecar modes).",
)
panel(
    "Predicted OOMs",
    [(f"sort(min by (namespace, pod, container) (pressured_container_predicted_oom_seconds{N}))",
      "{{namespace}}/{{pod}}/{{container}}")],
    12, 49, kind="table", unit="s",
    desc="Containers whose memory is rising toward the limit, with pressured's predicted seconds until "
    "it is reached (present only while the rise is significant and evidenced, as for predicted_oom).",
)
panel(
    "OOM kills seen by pressured",
    [(f"sum by (namespace, pod, container) (increase(pressured_container_oom_kills_total{N}[$__rate_interval]))",
      "{{namespace}}/{{pod}}/{{container}}")],
    0, 57, w=24,
    desc="Increases of the containers' OOM-kill counters (cgroup memory.events / oom_control, or pod status).",
)

dashboard = {
    "title": "pressure: OOM kills and memory pressure",
    "uid": "pressure-oom",
    "description": "oom-tracer (kills by kind and node, victims marked, health) and pressured (events "
    "by type and severity) metrics, with the working-set/limit signal pressured acts on.",
    "tags": ["pressure", "oom", "memory"],
    "timezone": "utc",
    "editable": True,
    "schemaVersion": 39,
    "version": 1,
    "refresh": "30s",
    "time": {"from": "now-6h", "to": "now"},
    "templating": {
        "list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus",
             "label": "Data source", "current": {}, "hide": 0},
            {"name": "node", "type": "query", "label": "Node", "datasource": DS,
             "query": {"query": "label_values(oom_tracer_build_info, node)", "refId": "nodes"},
             "definition": "label_values(oom_tracer_build_info, node)",
             "includeAll": True, "multi": True, "allValue": ".*", "current": {}, "refresh": 2,
             "hide": 0},
        ]
    },
    "panels": panels,
    "annotations": {"list": []},
}

text = json.dumps(dashboard, indent=2) + "\n"
for chart in ("pressured", "oom-tracer"):
    path = os.path.join(ROOT, "charts", chart, "dashboards", "pressure.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(path, ROOT)} ({len(panels)} panels)")
