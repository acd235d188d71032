"""Commands that serve a study to a browser: serve."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from wearflow.cli._common import (
    ProfileOption,
    ProfilesOption,
    app,
    err,
    open_study,
    reports_errors,
)
from wearflow.extras import require


@app.command()
@reports_errors
def serve(
    studies: Annotated[list[Path], typer.Argument(
        help="study files (or folders holding study.yaml)")],
    host: Annotated[str, typer.Option(
        help="address to listen on (127.0.0.1: this machine only)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port", min=1, max=65535)] = 8080,
    trust_proxy_header: Annotated[str | None, typer.Option(
        help="trust this header (e.g. X-Forwarded-User) for the user's name, as set by a "
             "reverse proxy doing single sign-on; only behind such a proxy")] = None,
    profile: ProfileOption = None,
    profiles: ProfilesOption = None,
) -> None:
    """The dashboard, its JSON API (/openapi.json) and /metrics, for the study's users.

    A live overview, pages for files, participants, runs and issues, and signed manual
    actions. Add users first: `wearflow users add STUDY NAME --role admin`."""
    require("fastapi", "serve", "wearflow serve")
    require("uvicorn", "serve", "wearflow serve")
    import uvicorn

    from wearflow.web.app import create_app, study_id
    from wearflow.web.auth import Settings

    loaded = [open_study(s, profile, profiles) for s in studies]
    application = create_app(loaded, Settings(proxy_header=trust_proxy_header),
                             os.environ.get("WEARFLOW_SESSION_SECRET"))
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"listening on {host}: reachable from other machines; put it behind TLS",
                  highlight=False)
    for s in loaded:
        err.print(f"serving {s.study} at http://{host}:{port}/s/{study_id(s)}/",
                  highlight=False, soft_wrap=True)
    uvicorn.run(application, host=host, port=port, log_level="warning")
