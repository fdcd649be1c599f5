"""The web app of `reasonlite serve`: Starlette routes rendering autoescaping Jinja2 templates.

GET only. Model output and dataset rows are untrusted: templates autoescape every value (no
``|safe`` anywhere), links are built from URL-quoted ids, and the Content-Security-Policy header
forbids scripts outright, so even a missed escape could not run one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from urllib.parse import quote, urlencode

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from warehouse.errors import UserError
from warehouse.serve import data

HERE = Path(__file__).resolve().parent
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _pct(value, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{100 * float(value):.{digits}f} %"


def _num(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return f"{value:,}" if isinstance(value, int) else str(value)


def _pretty_json(text) -> str:
    if not text:
        return ""
    try:
        return json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(text)


def templates() -> Jinja2Templates:
    # autoescape=True for every template whatever its name (Starlette's default only covers .html).
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pct=_pct, num=_num, pretty_json=_pretty_json, id_path=lambda v: quote(str(v), safe=""))
    return Jinja2Templates(env=env)


def create_app() -> Starlette:
    index = data.ProblemIndex()
    views = templates()

    def render(request: Request, name: str, status_code: int = 200, **context) -> HTMLResponse:
        context.setdefault("build", index.build or data.current_build())
        return views.TemplateResponse(request, name, context, status_code=status_code, headers=SECURITY_HEADERS)

    def home(request: Request):
        summary = index.summary()
        return render(request, "overview.html", nav="overview", summary=summary, **data.overview(),
                      runs=data.runs_overview(index.run_samples))

    def problems(request: Request):
        try:
            flt = data.ProblemFilter.from_query(request.query_params)
        except data.BadFilter as err:
            return render(request, "error.html", status_code=400, nav="problems", title="Bad filter", message=str(err))
        found, total = index.page(flt)
        pages = max(1, math.ceil(total / flt.per_page))

        def link(page: int) -> str:
            return "/problems?" + urlencode(flt.query_string(page=page))

        return render(request, "problems.html", nav="problems", problems=found, total=total, flt=flt,
                      pages=pages, sources=index.sources, label_sources=data.LABEL_SOURCES,
                      page_sizes=data.PAGE_SIZES, prev_link=link(flt.page - 1) if flt.page > 1 else None,
                      next_link=link(flt.page + 1) if flt.page < pages else None,
                      back=request.url.path + ("?" + request.url.query if request.url.query else ""))

    def problem(request: Request):
        problem_id = request.path_params["problem_id"]
        detail = data.problem_detail(problem_id)
        if detail is None:
            raise HTTPException(404, f"no problem {problem_id!r} in the lake")
        return render(request, "problem.html", nav="problems", d=detail,
                      back=_safe_back(request.query_params.get("back")))

    def runs(request: Request):
        index.cursor().close()  # run sample counts come with the index
        return render(request, "runs.html", nav="runs", runs=data.runs_overview(index.run_samples))

    def run(request: Request):
        run_id = request.path_params["run_id"]
        detail = data.run_detail(run_id)
        if detail is None:
            raise HTTPException(404, f"no run {run_id!r} in the lake")
        return render(request, "run.html", nav="runs", d=detail)

    async def not_found(request: Request, exc: HTTPException):
        return render(request, "error.html", status_code=exc.status_code, nav="", title=f"{exc.status_code}",
                      message=str(exc.detail))

    async def busy(request: Request, exc: data.Busy):
        return render(request, "error.html", status_code=503, nav="", title="Warehouse busy",
                      message="Another process is writing the marts (a `reasonlite curate`?); try again when it "
                              f"is done. ({exc})")

    async def user_error(request: Request, exc: UserError):
        return render(request, "error.html", status_code=500, nav="", title="Cannot read the lake",
                      message=str(exc).splitlines()[0])

    routes = [
        Route("/", home, methods=["GET"]),
        Route("/problems", problems, methods=["GET"]),
        Route("/problems/{problem_id:path}", problem, methods=["GET"]),
        Route("/runs", runs, methods=["GET"]),
        Route("/runs/{run_id:path}", run, methods=["GET"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found, data.Busy: busy,
                                                       UserError: user_error})
    app.state.index = index
    return app


def _safe_back(value: str | None) -> str:
    """A 'back to the list' link only to our own problem list (never an attacker's URL)."""
    if value and value.startswith("/problems") and not value.startswith("/problems/") and "//" not in value:
        return value
    return "/problems"
