#!/usr/bin/env bash
# Renders a Helm chart (helm-python-sdk, no helm binary) and prints its objects of the given kinds as
# one JSON List, for the end-to-end tests that apply a chart's RBAC to a real API server.
#
#   pressure-testkit/scripts/render-chart.sh CHART_DIR RELEASE NAMESPACE VALUES_JSON [KIND...]
#
# Uses the same cached virtualenv as scripts/check-charts.sh.
set -euo pipefail
venv="${CHECK_CHARTS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/pressure-check-charts}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv" >&2
fi
if ! "$venv/bin/python" -c 'import helm_python, yaml' 2>/dev/null; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        'helm-python-sdk>=0.2.2,<0.3' 'kubernetes-validate>=1.33' 'PyYAML>=6' >&2
fi
exec "$venv/bin/python" "$(dirname "${BASH_SOURCE[0]}")/render_chart.py" "$@"
