"""The estimator arena (`mas arena CONFIG`, docs/arena.md): the same environment and budget trained
with several advantage estimators over several seeds, then one table, one JSON file and one plot.

spec.py (the arena file and every run's config), runner.py (the trainings, as subprocesses),
collect.py (the numbers of one finished run), stats.py (AUC, spikes, t-intervals), report.py
(table, JSON, PNG), command.py (what `mas arena` does)."""
