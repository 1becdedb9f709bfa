"""`pertdit compare`: every model of a benchmark on the same split, for the same compute budget and seeds
(benchmark.py: what runs; runner.py: the runs, resumable; summary.py: the numbers; report.py and plots.py:
the tables and figures; cli.py: the command). docs/results.md."""
