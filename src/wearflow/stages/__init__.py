"""The stages of one run, in the order the runner calls them.

``ingest`` (catalog the locations, add new metadata file versions) -> ``plan``
(pure, :mod:`wearflow.plan`) -> ``execute`` (run the plan on an executor, with
retries and lease renewal) -> ``participants`` (combine wrists, write summaries)
-> ``issues`` (derive the issues queue from what the run saw, publish new ones).
Each takes the run's :class:`~wearflow.stages.context.RunContext`; only
:mod:`wearflow.runner` wires them together.
"""
