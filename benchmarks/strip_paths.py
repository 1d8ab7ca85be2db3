"""Rewrite records so that they name no folder of the machine that made them (issue 16, item 13).

    python benchmarks/strip_paths.py --data-root /abs/path/of/data benchmarks/results/*.jsonl benchmarks/results/peers/*.jsonl

In each record the data spec's data root becomes ``DATA`` (``anogen.bench.relative_spec``, what ``anogen bench`` now
writes) and the run id is recomputed from that spec as ``anogen.bench.Run.key`` does (so a rerun of the suite finds
the record); a peer's record loses its ``python_executable``. Metrics, scores and every other field are untouched.
Files are rewritten only when something changed; running it twice changes nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from anogen.bench import _jsonable, relative_spec


def _our_key(r: dict, spec: str) -> str:
    payload = json.dumps([r["suite"], r["detector"], spec, r["seed"], r["variant"], r["scale"],
                          _jsonable(r["overrides"]), r["max_train"], r["max_test"]], sort_keys=True)
    return hashlib.sha1(payload.encode()).hexdigest()[:16]


def _peer_key(r: dict, spec: str) -> str:  # benchmarks/peers/common.py run_key
    parts = [r["suite"], r["detector"], spec, r["seed"], r["variant"], "cpu", r["overrides"]]
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def strip(r: dict, root: str) -> dict:
    r = dict(r)
    r.pop("python_executable", None)
    spec = r.get("data")
    if isinstance(spec, str):
        new = relative_spec(spec, root)
        if new != spec:
            key = _peer_key if "peer" in r else _our_key
            if key(r, spec) == r.get("run_id"):  # an id made by the rules above: remade from the new spec
                r["run_id"] = key(r, new)
            r["data"] = new
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--data-root", required=True, help="the data root the records were made with")
    a = ap.parse_args(argv)
    for f in a.files:
        lines, changed = f.read_text().splitlines(), 0
        for i, line in enumerate(lines):
            if line.strip():
                rec = json.loads(line)
                new = strip(rec, a.data_root)
                if new != rec:  # only changed records are re-serialised; the others keep their bytes
                    lines[i], changed = json.dumps(new, sort_keys=True), changed + 1
        if changed:
            f.write_text("\n".join(lines) + "\n")
            print(f"{f}: {changed} records rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
