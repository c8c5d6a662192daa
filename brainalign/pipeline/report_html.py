"""HTML pieces of the reports: the page, captioned figures, embedded viewers, provenance blocks.

Every figure is a ``<figure>`` holding one ``<img>`` (a PNG, base64) or one
``<iframe>`` (an interactive nilearn viewer, in ``srcdoc``) and a ``<figcaption>``
that says what is shown and at which threshold, so a reader (and the tests) can
find each figure by its caption.
"""
from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import re
from typing import Iterable

CSS = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
       "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}"
       "pre{background:#f6f6f6;padding:8px;font-size:11px;overflow:auto}.warn{color:#a60}"
       "figure{margin:1em 0;display:inline-block;vertical-align:top}"
       "figcaption{font-size:12px;color:#444;max-width:900px}"
       "iframe{border:1px solid #ccc;width:900px;height:420px}.answer{font-size:15px}")


def plt():
    """matplotlib.pyplot on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as pyplot

    return pyplot


def png(fig) -> str:
    """The figure as a base64 PNG (fixed metadata, so the same figure gives the same bytes); closes it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    plt().close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def figure(fig, caption: str, kind: str) -> str:
    """A captioned ``<figure>`` with the matplotlib figure as PNG; ``kind`` is a short machine name."""
    return (f"<figure data-kind='{html.escape(kind)}'><img alt='{html.escape(caption)}' "
            f"src='data:image/png;base64,{png(fig)}'/><figcaption>{html.escape(caption)}</figcaption></figure>")


#: The element ids nilearn's ``view_img`` draws afresh (uuid4 hex) at every render.
_VIEWER_ID = re.compile(r"\b(div_viewer|3Dviewer|spriteImg|overlayImg|colorMap|opacity|demo)-([0-9a-f]{32})\b")


def stable_viewer_ids(page_html: str) -> str:
    """``page_html`` with nilearn's random viewer ids replaced by ids drawn from its own content.

    Two renders of the same map then give the same bytes (reruns and resumed runs write
    identical reports); distinct viewers still get distinct ids.
    """
    order = list(dict.fromkeys(m.group(2) for m in _VIEWER_ID.finditer(page_html)))
    if not order:
        return page_html
    digest = hashlib.sha256(_VIEWER_ID.sub(r"\1-", page_html).encode()).hexdigest()
    new = {old: hashlib.sha256(f"{digest}:{i}".encode()).hexdigest()[:32] for i, old in enumerate(order)}
    return _VIEWER_ID.sub(lambda m: f"{m.group(1)}-{new[m.group(2)]}", page_html)


def viewer(page_html: str, caption: str, kind: str = "viewer") -> str:
    """A captioned ``<figure>`` embedding a standalone viewer page (nilearn ``view_img`` ...) in an iframe."""
    page_html = stable_viewer_ids(page_html)
    return (f"<figure data-kind='{html.escape(kind)}'><iframe title='{html.escape(caption)}' "
            f"srcdoc=\"{html.escape(page_html, quote=True)}\"></iframe>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def page(title: str, body: Iterable[str]) -> str:
    """A whole HTML document."""
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>" + "\n".join(body) + "</body></html>\n")


def para(text: str, cls: str | None = None) -> str:
    return f"<p{f' class={cls!r}' if cls else ''}>{html.escape(text)}</p>"


def heading(text: str, level: int = 2) -> str:
    return f"<h{level}>{html.escape(text)}</h{level}>"


def items(values: Iterable[str], empty: str, cls: str | None = None) -> str:
    values = list(values)
    if not values:
        return para(empty)
    return f"<ul{f' class={cls!r}' if cls else ''}>" + "".join(f"<li>{html.escape(v)}</li>" for v in values) + "</ul>"


def warnings_block(warns: Iterable[str]) -> str:
    return heading("Warnings", 3) + items(warns, "No warnings.", "warn")


def settings_block(settings: dict) -> str:
    return ("<details><summary>settings</summary><pre>" + html.escape(json.dumps(settings, indent=1, sort_keys=True))
            + "</pre></details>")


def table(rows: list[dict], caption: str) -> str:
    """A small HTML table from a list of dicts (same keys)."""
    if not rows:
        return ""
    keys = list(rows[0])
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(k, '')))}</td>" for k in keys) + "</tr>" for r in rows)
    return f"<table><caption>{html.escape(caption)}</caption><tr>{head}</tr>{body}</table>"
