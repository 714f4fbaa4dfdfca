"""``GET /api/docs``: the API reference, rendered on the server from the OpenAPI document.

Plain HTML and one small stylesheet from this server: no CDN, no script, so it works offline on
the Pi and under the strict Content-Security-Policy (``default-src 'self'``) the app sends.
"""

from __future__ import annotations

import json
from html import escape
from typing import Final

from .openapi import Document, Operation

__all__ = ["DOCS_CSS", "render_docs"]

DOCS_CSS: Final = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 60em; padding: 0 1em;
       color: #222; }
h1 { margin-bottom: 0; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
.op { border: 1px solid #ddd; border-radius: 6px; margin: 1em 0; padding: .6em 1em; }
.method { display: inline-block; min-width: 4em; font-weight: bold; font-family: monospace; }
.get { color: #05a; } .post { color: #080; } .put { color: #a50; } .delete { color: #a00; }
code, pre { font-family: ui-monospace, monospace; font-size: 13px; }
pre { background: #f6f6f6; padding: .5em; overflow-x: auto; }
table { border-collapse: collapse; } td, th { text-align: left; padding: 2px 10px 2px 0;
vertical-align: top; }
.lock { color: #a50; font-size: 13px; }
"""


def _schema_text(schema: object) -> str:
    return escape(json.dumps(schema, indent=1, ensure_ascii=False))


def _operation(path: str, method: str, op: Operation) -> str:
    parts = [
        f'<div class="op" id="{escape(method)}-{escape(path)}">',
        f'<span class="method {escape(method)}">{escape(method.upper())}</span> '
        f"<code>{escape(path)}</code> — {escape(op.summary)}",
    ]
    if op.security and {} not in op.security:
        parts.append(' <span class="lock">(needs a session + CSRF token, or an API token)</span>')
    elif op.security:
        parts.append(' <span class="lock">(needs a login unless reading is public)</span>')
    if op.description:
        parts.append(f"<p>{escape(op.description)}</p>")
    if op.parameters:
        parts.append("<table><tr><th>parameter</th><th>in</th><th>schema</th><th></th></tr>")
        for p in op.parameters:
            required = " (required)" if p.required else ""
            parts.append(
                f"<tr><td><code>{escape(p.name)}</code>{required}</td>"
                f"<td>{escape(p.where)}</td><td><code>{escape(json.dumps(p.schema))}</code>"
                f"</td><td>{escape(p.description)}</td></tr>"
            )
        parts.append("</table>")
    if op.request_body is not None:
        parts.append(f"<p>Body (JSON):</p><pre>{_schema_text(op.request_body.schema)}</pre>")
    parts.append("<p>Responses: ")
    parts.append(
        ", ".join(
            f"<b>{escape(code)}</b> {escape(str(r.get('description', '')))}"
            for code, r in op.responses.items()
        )
    )
    parts.append("</p></div>")
    return "".join(parts)


def render_docs(document: Document) -> str:
    """The reference page of ``document`` (the OpenAPI 3.1 document)."""
    info = document.info
    by_tag: dict[str, list[str]] = {}
    for path, methods in document.paths.items():
        for method, op in methods.items():
            tag = (op.tags or ["other"])[0]
            by_tag.setdefault(tag, []).append(_operation(path, method, op))
    sections = "".join(f"<h2>{escape(tag)}</h2>{''.join(ops)}" for tag, ops in by_tag.items())
    schemas = document.components["schemas"]
    assert isinstance(schemas, dict)
    schema_html = "".join(
        f'<h3 id="schema-{escape(name)}">{escape(name)}</h3><pre>{_schema_text(s)}</pre>'
        for name, s in schemas.items()
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{escape(info.title)} API</title>"
        '<link rel=stylesheet href="/api/docs.css"></head><body>'
        f"<h1>{escape(info.title)} API</h1>"
        f"<p>{escape(info.description)}</p>"
        '<p>Machine-readable: <a href="/api/openapi.json">/api/openapi.json</a> (OpenAPI 3.1).</p>'
        f"{sections}<h2>Schemas</h2>{schema_html}</body></html>"
    )
