"""`make bench`: understanding, speed, conversation length and resources of the whole stack in one run, written to
results/bench/report.md with its figures (python -m tools.bench --help)."""
