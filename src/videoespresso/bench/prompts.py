"""Benchmark prompt templates: the official close-ended prompt (verbatim) and named alternatives.

Templates are versioned text files in ``videoespresso/prompts/bench/``. ``official`` reproduces
``eval/close_ended.py`` character for character, including its quirks (a space before the option
list's newline, the option list's trailing newline before ". Select ..."); evidence, when asked
for, is inserted exactly where the official script puts it.
"""

from __future__ import annotations

from ..errors import ConfigError
from ..prompts import Prompt, load_prompt
from ..schema import BenchItem

#: Named templates -> (packaged prompt file, the sentence that carries evidence when it is on).
TEMPLATES: dict[str, tuple[str, str]] = {
    "official": ("bench/official", "Your inference evidence is {evidence}. "),
    "letter": ("bench/letter", "Evidence: {evidence}\n"),
    "cot": ("bench/cot", "Evidence: {evidence}\n"),
    "open": ("bench/open", "Evidence: {evidence}\n"),
}

#: Templates that ask for an open-ended answer (scored by the judge, not by letter).
OPEN_ENDED = frozenset({"open"})


def template_names() -> list[str]:
    return list(TEMPLATES)


def get_template(name: str) -> Prompt:
    """The packaged template behind a name, with its version and hash."""
    if name not in TEMPLATES:
        raise ConfigError(f"unknown prompt template {name!r}; known: {', '.join(TEMPLATES)}")
    return load_prompt(TEMPLATES[name][0])


def template_id(name: str) -> str:
    """``name@version:sha``, recorded with every prediction."""
    prompt = get_template(name)
    return f"{name}@{prompt.version}:{prompt.sha}"


def render_prompt(item: BenchItem, template: str = "official", with_evidence: bool = False) -> str:
    """The text prompt for one benchmark item."""
    prompt = get_template(template)
    clause = TEMPLATES[template][1].format(evidence=item.evidence) if with_evidence else ""
    a, b, c, d = item.options
    return prompt.render(
        task=item.task,
        question=item.question,
        evidence_clause=clause,
        a=a,
        b=b,
        c=c,
        d=d,
    )
