#!/usr/bin/env bash
# The peers' own virtual environment (benchmarks/peers/.venv): anomalib and PyOD beside torch 2.14.1 /
# torchvision 0.29.1, plus anogen itself (editable) for its data specs (exact same splits and seeds) and metrics.
# None of this is a dependency of anogen. Run from anywhere:  bash benchmarks/peers/setup.sh
# Prints the install time and the environment's size at the end.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="$here/.venv"
py="${PYTHON:-python3}"

t0=$(date +%s)
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1" anomalib pyod
"$venv/bin/python" -m pip install --quiet -e "$repo"
t1=$(date +%s)

"$venv/bin/python" - <<'EOF'
from importlib.metadata import version
for p in ("torch", "torchvision", "anomalib", "pyod", "lightning", "anogen", "numpy", "scikit-learn"):
    try:
        print(f"{p:>14} {version(p)}")
    except Exception as e:  # pragma: no cover
        print(f"{p:>14} missing ({e})")
EOF
echo "install: $((t1 - t0)) s; size: $(du -sh "$venv" | cut -f1)"
