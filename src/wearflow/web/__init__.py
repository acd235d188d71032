"""``wearflow serve``: the dashboard, its JSON API and its metrics over one or more studies.

* ``app.py``: the FastAPI application (pages, API, metrics, report files);
* ``auth.py``: who is asking (bearer token, cookie session, trusted proxy header), roles,
  CSRF tokens;
* ``metrics.py``: the Prometheus text exposition of a study's state;
* ``templates/``, ``static/``: server-rendered pages and the one small script that
  refreshes the overview (vendored: no request leaves the server).

Read-only towards the science: its only writes are the manual actions of
:mod:`wearflow.services.manual`, signed and audited.
"""
