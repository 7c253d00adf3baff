"""Refusing what no column can store (a NUL character, an unpaired surrogate) in a form field, a
query parameter, a path part or an uploaded file's name, before a view runs: PostgreSQL would
fail the statement (a 500). The API refuses the same with :func:`ccm.validation.check_input`."""

from __future__ import annotations

from flask import render_template, request
from werkzeug.wrappers import Response

from ccm.validation import unstorable


def refuse_unstorable() -> Response | None:
    """``before_request``: 422 naming the first field that holds what cannot be stored."""
    names = {f"{key}.filename": file.filename or "" for key, file in request.files.items()}
    for values in (request.view_args or {}, request.args.to_dict(), request.form.to_dict(), names):
        found = unstorable(values, "")
        if found is not None:
            field, problem = found
            html = render_template("input_refused.html", field=field, problem=problem)
            return Response(html, status=422, mimetype="text/html")
    return None
