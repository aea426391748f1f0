"""Run every ``benchmarks/bench_*.py`` and print each figure with its ratio to its baseline.

Usage: ``python benchmarks/run.py [--quick] [--json] [NAME ...]`` (NAME filters modules by substring).
Exit status 1 when any benchmark with a target misses it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from benchmarks.harness import Result  # noqa: E402


def _modules(filters: list[str]) -> list[Path]:
    paths = sorted(HERE.glob("bench_*.py"))
    return [p for p in paths if not filters or any(f in p.stem for f in filters)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="run only modules whose name contains one of these")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--json", action="store_true", help="one JSON object per result")
    args = parser.parse_args()
    results: list[Result] = []
    for path in _modules(args.names):
        spec = importlib.util.spec_from_file_location(f"benchmarks.{path.stem}", path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for result in module.run(args.quick):
            results.append(result)
            if args.json:
                print(json.dumps(result.as_dict()), flush=True)
            else:
                verdict = {True: "ok", False: "MISSED", None: ""}[result.passed]
                print(
                    f"{result.name:<48} {result.figure:>12.4g} {result.unit:<10} "
                    f"vs {result.baseline_name} {result.baseline:.4g}: ratio {result.ratio:.3f} "
                    f"{result.target} {verdict}".rstrip(),
                    flush=True,
                )
    return 1 if any(r.passed is False for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
