"""The HTML pages: plain templates (string.Template) filled with escaped values. The server renders each
page's frame — landmarks, headings, navigation, the language switch — and the browser's script draws the
figures from the state embedded in the page and keeps them up to date from the event stream.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape
from pathlib import Path
from string import Template
from typing import Literal
from urllib.parse import urlencode

from services.stats.dashboard.i18n import LABELS, Lang, t
from services.stats.dashboard.state import HospitalView, StateView
from shared.auth import Principal, Role

TEMPLATES = Path(__file__).parent / "templates"
LANGUAGE_NAMES: dict[Lang, str] = {"nb": "Norsk (bokmål)", "en": "English"}  # each in its own language
_CURRENT_PAGE = ' aria-current="page"'
_CURRENT_LANG = ' aria-current="true"'


def _template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


_LAYOUT = _template("layout.html")
_DASHBOARD = _template("dashboard.html")
_LOGIN = _template("login.html")
_MESSAGE = _template("message.html")


@dataclass(frozen=True, slots=True)
class Frame:
    """What every page's frame needs."""

    lang: Lang
    path: str  # this page's path: the language links lead back to it
    principal: Principal | None = None
    hospitals: tuple[HospitalView, ...] = ()  # the units the principal may see, for the menu
    current: str | None = None  # "registry" or the hospital id this page shows


def _json_for_script(value: str) -> str:
    # Inside <script type="application/json"> only "</" could end the element early.
    return value.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _nav(frame: Frame) -> str:
    if frame.principal is None:
        return ""
    items = []
    if frame.principal.role is Role.STAFF:
        items.append(("/", t(frame.lang, "overview"), frame.current == "registry"))
    items += [(f"/hospitals/{h.id}", h.name, frame.current == h.id) for h in frame.hospitals]
    links = "".join(
        f'<li><a href="{escape(href)}"{_CURRENT_PAGE if current else ""}>{escape(text)}</a></li>'
        for href, text, current in items
    )
    return f'<nav class="site-nav" aria-label="{escape(t(frame.lang, "nav"))}"><ul>{links}</ul></nav>'


def _languages(frame: Frame) -> str:
    links = "".join(
        f'<li><a href="{escape(frame.path)}?{urlencode({"lang": lang})}" lang="{lang}" hreflang="{lang}"'
        f"{_CURRENT_LANG if lang == frame.lang else ''}>{escape(name)}</a></li>"
        for lang, name in LANGUAGE_NAMES.items()
    )
    return f'<nav class="languages" aria-label="{escape(t(frame.lang, "language"))}"><ul>{links}</ul></nav>'


def _account(frame: Frame) -> str:
    if frame.principal is None:
        return ""
    return (
        '<form class="account" method="post" action="/logout">'
        f"<span>{escape(t(frame.lang, 'signed_in_as', name=frame.principal.name))}</span> "
        f'<button type="submit">{escape(t(frame.lang, "logout"))}</button></form>'
    )


def _page(frame: Frame, title: str, content: str, head: str = "") -> str:
    site = t(frame.lang, "title")
    return _LAYOUT.substitute(
        lang=frame.lang,
        title=escape(f"{title} – {site}" if title != site else site),
        head=head,
        skip=escape(t(frame.lang, "skip")),
        site=escape(site),
        nav=_nav(frame),
        languages=_languages(frame),
        account=_account(frame),
        content=content,
    )


def dashboard_page(
    frame: Frame, view: Literal["overview", "hospital"], scope: str, heading: str, subtitle: str, state: StateView
) -> str:
    content = _DASHBOARD.substitute(
        heading=escape(heading),
        subtitle=escape(subtitle),
        connecting=escape(t(frame.lang, "status_connecting")),
        period=escape(t(frame.lang, "period")),
        view=view,
        scope=escape(scope),
        noscript=escape(t(frame.lang, "noscript")),
        labels=_json_for_script(json.dumps(LABELS[frame.lang], ensure_ascii=False)),
        state=_json_for_script(state.model_dump_json()),
    )
    return _page(frame, heading, content, head='<script type="module" src="/static/dashboard.js"></script>')


def login_page(frame: Frame, next_path: str, failed: bool, hours: float) -> str:
    error = f'<p class="error" id="login-error" role="alert">{escape(t(frame.lang, "login_failed"))}</p>'
    content = _LOGIN.substitute(
        heading=escape(t(frame.lang, "login_heading")),
        intro=escape(t(frame.lang, "login_intro", hours=f"{hours:g}")),
        error=error if failed else "",
        next=escape(next_path),
        token_label=escape(t(frame.lang, "token")),
        invalid=' aria-invalid="true" aria-describedby="login-error"' if failed else "",
        button=escape(t(frame.lang, "login_button")),
    )
    return _page(frame, t(frame.lang, "login_heading"), content)


def message_page(frame: Frame, heading: str, text: str, link: tuple[str, str] | None = None) -> str:
    content = _MESSAGE.substitute(
        heading=escape(heading),
        text=escape(text),
        link=f'<p><a href="{escape(link[0])}">{escape(link[1])}</a></p>' if link else "",
    )
    return _page(frame, heading, content)
