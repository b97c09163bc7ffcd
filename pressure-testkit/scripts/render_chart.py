#!/usr/bin/env python3
"""Prints the objects of a Helm chart's render (optionally only some kinds) as one JSON v1 List.

Usage: render_chart.py CHART_DIR RELEASE NAMESPACE VALUES_JSON [KIND...]
"""

from __future__ import annotations

import json
import sys

import yaml
from helm_python import chart as helm_chart


def main() -> int:
    chart_dir, release, namespace, values_json, *kinds = sys.argv[1:]
    values = json.loads(values_json)
    with helm_chart.Chart.load(chart_dir) as c:
        rendered = c.render(values, name=release, namespace=namespace, is_install=True)
    items = []
    for template, text in sorted(rendered.items()):
        if not template.endswith((".yaml", ".yml")):
            continue
        for obj in yaml.safe_load_all(text):
            if isinstance(obj, dict) and obj.get("kind") and (not kinds or obj["kind"] in kinds):
                items.append(obj)
    json.dump({"apiVersion": "v1", "kind": "List", "items": items}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
