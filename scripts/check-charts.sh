#!/usr/bin/env bash
# Lints, renders and validates every Helm chart and example values file (Kubernetes 1.33), see
# scripts/check_charts.py. Installs helm-python-sdk and kubernetes-validate from PyPI into a cached
# virtualenv (no helm binary, no cluster). Exits non-zero on any problem.
#
#   scripts/check-charts.sh                 # uses target/{debug,release}/pressured for --check-config
#   PRESSURED_BIN=/path/pressured scripts/check-charts.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${CHECK_CHARTS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/pressure-check-charts}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import helm_python, kubernetes_validate, yaml' 2>/dev/null; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        'helm-python-sdk>=0.2.2,<0.3' 'kubernetes-validate>=1.33' 'PyYAML>=6'
fi
exec "$venv/bin/python" "$root/scripts/check_charts.py" "$@"
