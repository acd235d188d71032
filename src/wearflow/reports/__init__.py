"""Reports people look at: self-contained HTML pages drawn from stored results.

Pure rendering: each module takes what was stored (tables, QC figures, state
rows) and returns a page; :mod:`wearflow.services.reports` gathers the inputs
and writes the pages through :mod:`wearflow.results`.

* ``participant``: a timeline per day with the per-day and per-night tables;
* ``study``: files by state, completeness, problems, biomarker distributions;
* ``run``: a run's tasks on a timeline per worker, CPU, memory and stages;
* ``timeline``, ``svg``, ``words``, ``page``: the pieces they share.
"""
