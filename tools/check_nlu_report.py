"""Fails (exit 1) when the held-out NLU score is under the bar; prints the per-intent table either way."""

from __future__ import annotations

import argparse
import json
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("report", help="intent_report.json written by `rasa test nlu`")
    parser.add_argument("--min-macro-f1", type=float, default=0.90)
    args = parser.parse_args()
    with open(args.report, encoding="utf-8") as f:
        report = json.load(f)
    intents = {k: v for k, v in report.items() if isinstance(v, dict) and "support" in v and "avg" not in k}
    print(f"{'intent':<24}{'precision':>10}{'recall':>8}{'f1':>8}{'n':>5}  confused with")
    for name, r in sorted(intents.items(), key=lambda kv: kv[1]["f1-score"]):
        confused = ", ".join(f"{k}×{v}" for k, v in (r.get("confused_with") or {}).items())
        print(f"{name:<24}{r['precision']:>10.2f}{r['recall']:>8.2f}{r['f1-score']:>8.2f}{r['support']:>5}  {confused}")
    macro = report["macro avg"]["f1-score"]
    print(f"held-out macro-F1 {macro:.3f} over {len(intents)} intents (bar {args.min_macro_f1:.2f})")
    if macro < args.min_macro_f1:
        print("FAILED: macro-F1 is under the bar", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
