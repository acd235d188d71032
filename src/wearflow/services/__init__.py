"""Read and act on a study outside a run: what the command line and the API call.

``status`` (files by state, participants, issues, metadata, per-day QC and its
export), ``audit`` (verify and export the trail), ``manual`` (retry, exclude,
resolve, each audited), ``verify`` (outputs against their recorded hashes,
re-running a result), ``export`` (analysis-ready tables from the current
participant results) and ``runs`` (the runs of a study, and one run's task attempts).
Each returns a typed result with ``to_json()``.
"""
