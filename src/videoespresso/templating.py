"""HTML through Jinja2 with autoescaping on: the only way this package writes markup.

Every value a template prints is escaped unless a template marks it safe (none does), so a value
from a data file can never become markup, whatever field it sits in. Templates live in a
``templates/`` folder of the package that renders them (``videoespresso.ui``,
``videoespresso.bench``) and ship as package data.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


def seconds(value: Any) -> str:
    """A time for people: ``7.25 s`` under a minute, ``2:05.4`` (m:ss.s) or ``1:02:05`` above."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if value < 60:
        return f"{value:.2f} s"
    minutes, rest = divmod(float(value), 60.0)
    if minutes < 60:
        return f"{int(minutes)}:{rest:04.1f}"
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{int(rest):02d}"


@lru_cache(maxsize=None)
def environment(package: str) -> "Any":
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader(package, "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["seconds"] = seconds
    return env


def render(package: str, template: str, **context: Any) -> str:
    """``template`` of ``package``'s ``templates/`` folder, every value escaped."""
    return environment(package).get_template(template).render(**context)


__all__ = ["environment", "render", "seconds"]
