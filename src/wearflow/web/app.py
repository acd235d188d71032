"""The dashboard's FastAPI application: pages, the JSON API, metrics and report files.

Routes (``{sid}``: a served study's id, its ``study:`` name made URL-safe)::

    GET  /login  POST /login  POST /logout
    GET  /                                  the studies served
    GET  /s/{sid}/                          overview (refreshes itself)
    GET  /s/{sid}/issues?tag=&participant=&state=
    GET  /s/{sid}/files/{file_id}           a file: states, attempts, QC, provenance, audit
    GET  /s/{sid}/participants/{p}          a participant: files, results, reports
    GET  /s/{sid}/runs/{run_id}             a run and its report
    GET  /s/{sid}/reports/{path}            a report page written under <output>/reports/
    POST /s/{sid}/files/{file_id}/{retry|exclude|include}, /s/{sid}/issues/{id}/resolve
    GET  /api/...                           the same data as JSON (schema: /openapi.json)
    POST /api/s/{sid}/files/{file_id}/{action}, /api/s/{sid}/issues/{id}/resolve
    GET  /metrics                           Prometheus text format (a viewer's token)

Every page and API call needs a user of that study (viewer, operator, admin); the
manual actions need an operator and the user's token again, with a reason.
"""


import re
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from starlette.middleware.sessions import SessionMiddleware

from wearflow import __version__
from wearflow.config import Study
from wearflow.errors import WearflowError
from wearflow.identity import Role, token_sha256
from wearflow.results import REPORTS
from wearflow.services import dashboard, manual
from wearflow.state import State
from wearflow.storage import Store
from wearflow.web import auth
from wearflow.web.metrics import exposition, warm_up_metrics

T = TypeVar("T")
HERE = __file__.rsplit("/", 1)[0]
REFRESH_S = 2.0


class Action(BaseModel):
    """A manual action through the API: the bearer token is the signature."""

    reason: str = Field(min_length=1, description="why (mandatory, audited)")


def study_id(study: Study) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", study.study).strip("-") or "study"


def create_app(studies: Sequence[Study], settings: auth.Settings | None = None,
               session_secret: str | None = None) -> FastAPI:
    """The application over ``studies`` (each with its own state database and users)."""
    settings = settings or auth.Settings()
    by_id = {study_id(s): s for s in studies}
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # the overview's costly counts and the metrics' histogram, in the background
        dashboard.warm_up(studies)
        threading.Thread(target=warm_up_metrics, args=(studies,), daemon=True,
                         name="wearflow-metrics-warm-up").start()
        yield

    app = FastAPI(title="wearflow", version=__version__, docs_url=None, redoc_url=None,
                  description="The dashboard's JSON API: what the pages show, for scripts.",
                  lifespan=lifespan)
    app.add_middleware(SessionMiddleware, secret_key=session_secret or secrets.token_hex(32),
                       session_cookie="wearflow_session", same_site="strict",
                       https_only=False, max_age=12 * 3600)
    app.mount("/static", StaticFiles(directory=f"{HERE}/static"), name="static")
    templates = Jinja2Templates(directory=f"{HERE}/templates")
    templates.env.filters["name"] = lambda uri: (uri or "").rstrip("/").rsplit("/", 1)[-1]

    def get_study(sid: str) -> Study:
        if sid not in by_id:
            raise HTTPException(404, f"no study {sid!r} is served here")
        return by_id[sid]

    StudyDep = Annotated[Study, Depends(get_study)]

    def reader(request: Request, study: StudyDep) -> auth.Who:
        return auth.require(request, study, settings, Role.VIEWER)

    def page(request: Request, template: str, study: Study | None, who: auth.Who | None,
             status_code: int = 200, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, template, status_code=status_code,
                                          context={
            "study": study, "sid": study_id(study) if study else "", "who": who,
            "csrf": auth.csrf_token(request), "version": __version__,
            "flash": request.session.pop("flash", None), "refresh_s": REFRESH_S,
            "can_act": who is not None and who.user.role.allows(Role.OPERATOR),
            "studies": [(k, s.study) for k, s in by_id.items()], **context})

    def page_user(request: Request, study: Study) -> auth.Who | RedirectResponse:
        who = auth.identify(request, study, settings)
        if who is None:
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        return who

    def guarded(request: Request, study: Study, template: str,
                load: Callable[[], dict[str, Any]]) -> Response:
        who = page_user(request, study)
        if isinstance(who, RedirectResponse):
            return who
        try:
            data = load()
        except WearflowError as exc:
            raise HTTPException(404, exc.message) from None
        return page(request, template, study, who, data=data)

    # ------------------------------------------------------------------ login
    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request, next: str = "/") -> Response:
        return page(request, "login.html.j2", None, None, next=_local(next), error=None)

    @app.post("/login", include_in_schema=False)
    def login(request: Request, token: Annotated[str, Form()],
              csrf: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/"
              ) -> Response:
        auth.check_csrf(request, csrf)
        for study in by_id.values():
            with State(study.state_url) as state:
                if state.users.authenticate(token) is not None:
                    request.session[auth.SESSION_TOKEN] = token_sha256(token)
                    return RedirectResponse(_local(next), status_code=303)
        return page(request, "login.html.j2", None, None, next=_local(next),
                    error="unknown or disabled token")

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
        auth.check_csrf(request, csrf)
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    # ------------------------------------------------------------------ pages
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home(request: Request) -> Response:
        if len(by_id) == 1:
            return RedirectResponse(f"/s/{next(iter(by_id))}/", status_code=303)
        return page(request, "studies.html.j2", None, None)

    @app.get("/s/{sid}/", response_class=HTMLResponse, include_in_schema=False)
    def overview_page(request: Request, study: StudyDep) -> Response:
        return guarded(request, study, "overview.html.j2", lambda: dashboard.overview(study))

    @app.get("/s/{sid}/issues", response_class=HTMLResponse, include_in_schema=False)
    def issues_page(request: Request, study: StudyDep, tag: str = "", participant: str = "",
                    state: str = "open") -> Response:
        return guarded(request, study, "issues.html.j2", lambda: {
            "issues": dashboard.issues(study, tag=tag, participant=participant, state=state),
            "filters": {"tag": tag, "participant": participant, "state": state}})

    @app.get("/s/{sid}/files/{file_id}", response_class=HTMLResponse, include_in_schema=False)
    def file_page(request: Request, study: StudyDep, file_id: int) -> Response:
        return guarded(request, study, "file.html.j2",
                       lambda: dashboard.file_detail(study, file_id))

    @app.get("/s/{sid}/participants/{participant}", response_class=HTMLResponse,
             include_in_schema=False)
    def participant_page(request: Request, study: StudyDep, participant: str) -> Response:
        return guarded(request, study, "participant.html.j2",
                       lambda: dashboard.participant_detail(study, participant))

    @app.get("/s/{sid}/runs/{run_id}", response_class=HTMLResponse, include_in_schema=False)
    def run_page(request: Request, study: StudyDep, run_id: str) -> Response:
        return guarded(request, study, "run.html.j2", lambda: dashboard.run_page(study, run_id))

    @app.get("/s/{sid}/reports/{path:path}", include_in_schema=False)
    def report_file(request: Request, study: StudyDep, path: str) -> Response:
        who = page_user(request, study)
        if isinstance(who, RedirectResponse):
            return who
        parts = path.split("/")
        if not path.endswith("/report.html") or any(p in ("", ".", "..") for p in parts):
            raise HTTPException(404, "not a report")
        store = Store(study.output, study.storage_options)
        full = f"{REPORTS}/{path}"
        if not store.exists(full):
            raise HTTPException(404, "no such report")
        return HTMLResponse(store.read_bytes(full),
                            headers={"Content-Security-Policy": "default-src 'none'; "
                                     "style-src 'unsafe-inline'; img-src data:"})

    # ------------------------------------------------------------------ actions (pages)
    def act(request: Request, study: Study, csrf: str, token: str, reason: str,
            do: Callable[[Any], str], back: str) -> Response:
        auth.check_csrf(request, csrf)
        who = auth.require(request, study, settings, Role.OPERATOR)
        signer = auth.sign(study, who, token)
        try:
            message = do(signer)
        except WearflowError as exc:
            raise HTTPException(409, exc.message) from None
        request.session["flash"] = message
        return RedirectResponse(back, status_code=303)

    @app.post("/s/{sid}/files/{file_id}/{action}", include_in_schema=False)
    def file_action(request: Request, study: StudyDep, file_id: int, action: str,
                    reason: Annotated[str, Form()], token: Annotated[str, Form()] = "",
                    csrf: Annotated[str, Form()] = "") -> Response:
        uri = _file_uri(study, file_id)
        back = f"/s/{study_id(study)}/files/{file_id}"
        return act(request, study, csrf, token, reason,
                   _file_action(study, uri, action, reason), back)

    @app.post("/s/{sid}/issues/{issue_id}/resolve", include_in_schema=False)
    def issue_action(request: Request, study: StudyDep, issue_id: int,
                     reason: Annotated[str, Form()], token: Annotated[str, Form()] = "",
                     csrf: Annotated[str, Form()] = "") -> Response:
        return act(request, study, csrf, token, reason,
                   lambda signer: "resolved: " + manual.resolve(study, issue_id, reason,
                                                                signer),
                   f"/s/{study_id(study)}/issues")

    # ------------------------------------------------------------------ JSON API
    @app.get("/api/studies")
    def api_studies(request: Request) -> list[dict[str, str]]:
        """The studies served and whether the caller may read each."""
        return [{"id": k, "study": s.study} for k, s in by_id.items()
                if auth.identify(request, s, settings) is not None]

    @app.get("/api/s/{sid}/overview")
    def api_overview(study: StudyDep, who: Annotated[auth.Who, Depends(reader)]
                     ) -> dict[str, Any]:
        """Files, tasks, participants, problems, runs, workers and alerts."""
        return dashboard.overview(study)

    @app.get("/api/s/{sid}/issues")
    def api_issues(study: StudyDep, who: Annotated[auth.Who, Depends(reader)], tag: str = "",
                   participant: str = "", state: str = "open") -> list[dict[str, Any]]:
        """The issues queue (state: open, closed or all)."""
        return _or_404(lambda: dashboard.issues(study, tag=tag, participant=participant,
                                                state=state))

    @app.get("/api/s/{sid}/files/{file_id}")
    def api_file(study: StudyDep, who: Annotated[auth.Who, Depends(reader)], file_id: int
                 ) -> dict[str, Any]:
        """A file's versions, tasks, attempts, QC, provenance, issues and audit entries."""
        return _or_404(lambda: dashboard.file_detail(study, file_id))

    @app.get("/api/s/{sid}/participants/{participant}")
    def api_participant(study: StudyDep, who: Annotated[auth.Who, Depends(reader)],
                        participant: str) -> dict[str, Any]:
        """A participant's files, results and reports."""
        return _or_404(lambda: dashboard.participant_detail(study, participant))

    @app.get("/api/s/{sid}/runs/{run_id}")
    def api_run(study: StudyDep, who: Annotated[auth.Who, Depends(reader)], run_id: str
                ) -> dict[str, Any]:
        """A run with its every attempt (not the configuration it ran with)."""
        return _or_404(lambda: dashboard.run_page(study, run_id))

    @app.post("/api/s/{sid}/files/{file_id}/{action}")
    def api_file_action(request: Request, study: StudyDep, file_id: int, action: str,
                        body: Action) -> dict[str, str]:
        """retry, exclude or include a file; the bearer token signs it (operator)."""
        who = _api_operator(request, study)
        uri = _file_uri(study, file_id)
        return {"message": _signed_api(_file_action(study, uri, action, body.reason),
                                       who)}

    @app.post("/api/s/{sid}/issues/{issue_id}/resolve")
    def api_resolve(request: Request, study: StudyDep, issue_id: int, body: Action
                    ) -> dict[str, str]:
        """Close an issue by hand; the bearer token signs it (operator)."""
        who = _api_operator(request, study)
        return {"message": _signed_api(
            lambda signer: manual.resolve(study, issue_id, body.reason, signer), who)}

    def _api_operator(request: Request, study: Study) -> auth.Who:
        if auth.bearer(request) is None:
            raise HTTPException(401, "the API acts with a bearer token only",
                                headers={"WWW-Authenticate": "Bearer"})
        return auth.require(request, study, settings, Role.OPERATOR)

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        readable = [s for s in by_id.values() if auth.bearer(request) is not None
                    and auth.identify(request, s, settings) is not None]
        if not readable:
            raise HTTPException(401, "metrics need a user's bearer token",
                                headers={"WWW-Authenticate": "Bearer"})
        return Response(exposition(readable), media_type="text/plain; version=0.0.4")

    @app.exception_handler(HTTPException)
    def http_error(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith(("/api/", "/metrics")):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                                headers=exc.headers)
        return page(request, "error.html.j2", None, None, exc.status_code,
                    status=exc.status_code, detail=exc.detail)

    return app


def _signed_api(do: Callable[[Any], str], who: auth.Who) -> str:
    from wearflow.identity import Signer

    try:
        return do(Signer(who.user.name, who.user.role, "token"))
    except WearflowError as exc:
        raise HTTPException(409, exc.message) from None


def _file_action(study: Study, uri: str, action: str, reason: str) -> Callable[[Any], str]:
    if action == "retry":
        return lambda signer: (f"{len(manual.retry(study, uri, reason, signer))} task(s) "
                               "queued again")
    if action in ("exclude", "include"):
        return lambda signer: (f"{action}d: " + manual.exclude(
            study, uri, reason, undo=action == "include", signer=signer))
    raise HTTPException(404, f"unknown action {action!r} (retry, exclude, include)")


def _file_uri(study: Study, file_id: int) -> str:
    with State(study.state_url) as state:
        f = state.dashboard.file(file_id)
    if f is None:
        raise HTTPException(404, f"no file {file_id} in study {study.study}")
    return str(f["uri"])


def _or_404(load: Callable[[], T]) -> T:
    try:
        return load()
    except WearflowError as exc:
        raise HTTPException(404, exc.message) from None


def _local(target: str) -> str:
    """Only a path on this server (no open redirect)."""
    return target if target.startswith("/") and not target.startswith("//") else "/"
