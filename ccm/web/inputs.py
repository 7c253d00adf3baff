"""Refusing what no column can store (a NUL character, an unpaired surrogate) in a path part, a
query parameter, a form field or an uploaded file's name, before a view runs: PostgreSQL would
fail the statement (a 500). The API refuses the same with :func:`ccm.validation.check_input`."""

from __future__ import annotations

from flask import render_template, request
from werkzeug.wrappers import Response

from ccm.validation import unstorable


def refuse_unstorable() -> Response | None:
    """``before_request`` of every screen (:func:`ccm.web.pages.screen`): 422 naming the first
    field that holds what cannot be stored."""
    names = [(f"{key}.filename", file.filename or "") for key, file in request.files.items(multi=True)]
    sources = (request.view_args or {}).items(), request.args.items(multi=True), request.form.items(multi=True), names
    for items in sources:
        for name, value in items:
            found = unstorable(value, name)
            if found is not None:
                html = render_template("input_refused.html", field=found[0], problem=found[1])
                return Response(html, status=422, mimetype="text/html")
    return None
