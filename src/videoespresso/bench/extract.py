"""Answer extraction: a model's free-form reply -> one option letter, or none with a reason.

The extractor never guesses. Rules run in a fixed priority order and the first that decides wins;
the name of that rule travels with the result so that a score can say how its letters were
obtained. Reasoning blocks (``<think>``, ``<evidence>``, the dataset's inline object/box tags) are
removed before any rule looks at the text, because they mention letters the model later rejects;
"Evidence:"/"Reasoning:" sections are removed before the loose rules 3-7 (an answer statement
inside them still counts).

Priority (the name recorded in :attr:`Extraction.rule`):

1. ``answer_tag``    ``<answer>B</answer>`` (its content is parsed again with rules 2-7)
2. ``answer_is``     "the answer is (B)", "Answer: B", "final answer: B", "I choose B",
                     "答案是B", "la respuesta es B" ... (the last such statement wins)
3. ``start``         a standalone letter opening the reply: "B", "(B)", "B.", "B: ...", "**B**"
4. ``end``           a standalone letter as the whole last line, or ending a reply that names no
                     other letter ("It must be D")
5. ``paren``         exactly one distinct ``(X)`` in the text
6. ``letter_punct``  exactly one distinct ``X.`` / ``X:`` / ``X)``
7. ``option_text``   the reply is, or contains exactly one of, the option texts
8. ``embedding``     optional: nearest option by a :class:`TextEmbedder` (the paper mapped long answers with BGE-M3)
9. ``judge``         optional: a :class:`ChatModel` asked to map the reply, which may say none

When nothing decides, ``letter`` is None and ``rule`` is ``none:<reason>`` (``none:missing``,
``none:empty``, ``none:ambiguous`` with the competing letters, ``none:no_letter``,
``none:echoed_options``, ``none:truncated_reasoning``, ``none:judge_declined``).

:func:`legacy_extract` reproduces the official ``score.py`` rule exactly (the first capital A-D
anywhere, so "Answer: B" is read as A); use it only for leaderboard parity.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, Sequence

from ..schema import LETTERS

if TYPE_CHECKING:
    from ..models.protocols import ChatModel, TextEmbedder

Mode = Literal["default", "legacy"]


@dataclass(frozen=True)
class Extraction:
    """The letter a reply chose (None when no rule could decide) and which rule decided."""

    letter: str | None
    rule: str

    @property
    def parsed(self) -> bool:
        return self.letter is not None


# --------------------------------------------------------------------------- legacy rule

_LEGACY_RE = re.compile(r"[A-D]")


def legacy_extract(text: Any) -> str | None:
    """The official ``score.py`` rule: the first capital A-D anywhere; None for non-strings."""
    if not isinstance(text, str):
        return None
    match = _LEGACY_RE.search(text)
    return match.group(0) if match else None


# --------------------------------------------------------------------------- cleaning

_BLOCK_TAGS = ("think", "thinking", "reasoning", "reason", "evidence", "analysis", "thought")
_CLOSED_BLOCK_RE = re.compile(
    r"<(?P<tag>" + "|".join(_BLOCK_TAGS) + r")\b[^>]*>.*?</(?P=tag)\s*>", re.I | re.S
)
_OPEN_BLOCK_RE = re.compile(r"<(?:" + "|".join(_BLOCK_TAGS) + r")\b[^>]*>", re.I)
# The dataset's inline grounding tags: object names and box coordinates are evidence, not answers.
_INLINE_TAGS_RE = re.compile(
    r"<obj_start>.*?<obj_end>|<box_start>.*?<box_end>|<\|?(?:box|object_ref|quad)_(?:start|end)\|?>",
    re.S,
)
# "Evidence: ..." sections written by two-stage reasoners, up to the answer statement.
_EVIDENCE_SECTION_RE = re.compile(
    r"^\s*(?:#+\s*)?\**(?:evidence|reasoning|analysis|explanation|thoughts?)\**\s*[:：].*?"
    r"(?=^\s*(?:#+\s*)?\**(?:final\s+)?answer\**\s*[:：]|\Z)",
    re.I | re.S | re.M,
)
_MARKDOWN_RE = re.compile(r"[*_`]+")


def _strip_blocks(text: str) -> tuple[str, bool]:
    """Remove tagged reasoning blocks and inline grounding tags; the flag says an unclosed block
    swallowed the rest of the reply."""
    truncated = False
    if "<" in text:
        text = _CLOSED_BLOCK_RE.sub(" ", text)
        opened = _OPEN_BLOCK_RE.search(text)
        if opened:
            # An opening tag with no closing tag: the model ran out of tokens while reasoning.
            text = text[: opened.start()]
            truncated = True
        text = _INLINE_TAGS_RE.sub(" ", text)
    return text, truncated


def _strip_sections(text: str) -> str:
    """Remove "Evidence: ..." style sections, whose letters ("Captain A") are not answers."""
    if ":" in text or "：" in text:
        return _EVIDENCE_SECTION_RE.sub(" ", text)
    return text


def _normalise(text: str) -> str:
    # NFKC folds full-width letters and brackets ("（Ｂ）") into ASCII.
    return unicodedata.normalize("NFKC", text)


@lru_cache(maxsize=8192)
def _plain_option(text: str) -> str:
    return _plain(text)


def _plain(text: str) -> str:
    """Lower-case words only, for comparing a reply with option texts."""
    text = _normalise(text).lower()
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


# --------------------------------------------------------------------------- letter rules

_L = r"(?P<letter>(?-i:[A-D]))"
_OPEN = r"[\(\[\{<]?"
_CLOSE = r"[\)\]\}>]?"
# What may follow a letter for it to count as a standalone letter (not the start of a word).
_AFTER = r"(?=$|[\s.,:;!?)\]}>\-\"'，。：；）])"

# Every alternative starts with a keyword (no optional lead-in), which keeps the search linear.
_ANSWER_IS_RE = re.compile(
    r"(?:"
    r"(?:answer|option|choice)s?\s*(?:is|would\s+be|should\s+be|will\s+be|=|:|：|-)"
    r"|i\s+(?:would\s+)?(?:choose|select|pick|go\s+with)|i\s*'?\s*ll\s+(?:choose|select|pick|go\s+with)"
    r"|(?:answer|option|choice)\s+(?=[\(\[]?(?-i:[A-D])[\)\]]?\s*(?:is\s+(?:correct|right)|$|[.\n]))"
    r"|(?:答案|选项)\s*(?:是|为|应该是|應該是|:|：)?|选择?|選擇?"
    r"|respuesta\s+(?:correcta\s+)?es|r[ée]ponse\s+(?:correcte\s+)?est"
    r"|antwort\s+(?:ist|lautet)"
    r"|resposta\s+(?:correta\s+)?[ée]"
    r")\s*(?:option|choice|letter|opción|opcion)?\s*" + _OPEN + r"\s*" + _L + r"\s*" + _CLOSE + _AFTER
    # "the answer is A or B" states no single answer.
    + r"(?!\s*(?:or|and|/|,|or\s+maybe)\s*[\(\[]?(?-i:[A-D])(?![A-Za-z]))",
    re.I,
)
# Cheap test first: most replies ("B", "(C)") contain no keyword at all.
_STATEMENT_HINT_RE = re.compile(
    "answer|option|choice|choose|select|pick|go with|答案|选|選|respuesta|réponse|reponse|antwort|resposta|'ll"
)
_LETTER_IS_CORRECT_RE = re.compile(
    r"(?<![A-Za-z0-9])" + _OPEN + _L + _CLOSE
    + r"\s+(?:is|would\s+be|seems\s+to\s+be|must\s+be)\s+(?:the\s+)?"
    r"(?:correct|right|best|most\s+(?:likely|appropriate|accurate))\b",
    re.I,
)
_ANSWER_TAG_RE = re.compile(r"<answer>\s*(?P<body>.*?)\s*</answer>", re.I | re.S)
# A letter opening a sentence about it ("A is wrong because ...") is not a reply of that letter.
_START_RE = re.compile(
    r"^\s*(?:option\s+|choice\s+)?" + _OPEN + _L + _CLOSE
    + r"(?=$|\s*\n|[.,:;!?)\]}>\-，。：；）]|\s+[^\sa-z])",
    re.I,
)
_END_LINE_RE = re.compile(r"^\s*(?:option\s+|choice\s+)?" + _OPEN + _L + _CLOSE + r"\s*[.!]?\s*$", re.I)
# A reply that is nothing but a lower-case letter ("b", "(d)") has no other reading.
_BARE_LOWER_RE = re.compile(r"^\s*[\(\[]?([a-d])[\)\]]?\s*[.]?\s*$")
_PAREN_RE = re.compile(r"[\(\[]\s*" + _L + r"\s*[\)\]]")
_LETTER_PUNCT_RE = re.compile(r"(?<![A-Za-z.])" + _L + r"[.:)](?=\s|$)")
_STANDALONE_RE = re.compile(r"(?<![A-Za-z0-9])" + _L + r"(?![A-Za-z0-9'’])")
_END_RE = re.compile(r"(?<![A-Za-z0-9])" + _OPEN + _L + _CLOSE + r"\s*[.!]?\s*$")


# Words that follow an option letter ("A is wrong", "A or B") but hardly ever the article "A".
_AFTER_LETTER_WORDS = frozenset(
    "and or nor is isn't was wasn't are seems seem looks matches match fits fit describes shows "
    "vs versus but then because since would could might must should can cannot can't does "
    "doesn't also too only best correctly".split()
)


def _article_not_answer(text: str, match: re.Match[str], options: Sequence[str] | None) -> bool:
    """"A man walks in" starts with the article A, not option A, unless option A's text follows."""
    letter = match.group("letter")
    if letter != "A":
        return False
    rest = text[match.end("letter"):]
    word = re.match(r"[ \t]+([^\W\d_][\w'-]*)", rest)
    if not word:
        return False
    if options:
        following = _plain(rest)
        option = _plain(options[0])
        if option and following.startswith(option):
            return False
    following_word = word.group(1)
    return following_word[0].islower() and following_word.lower() not in _AFTER_LETTER_WORDS


def _letters_in(pattern: re.Pattern[str], text: str) -> list[str]:
    return [m.group("letter").upper() for m in pattern.finditer(text)]


def _distinct(letters: list[str]) -> list[str]:
    return sorted(set(letters))


def _has_hint(text: str) -> bool:
    return _STATEMENT_HINT_RE.search(text.lower()) is not None


def _answer_statement(text: str, options: Sequence[str] | None) -> str | None:
    found = [
        (m.start(), m.group("letter"))
        for m in (_ANSWER_IS_RE.finditer(text) if _has_hint(text) else ())
        if not _article_not_answer(text, m, options)
    ]
    found += [(m.start(), m.group("letter")) for m in _LETTER_IS_CORRECT_RE.finditer(text)]
    found.sort()
    # The last statement is the final one: "I first thought the answer is A, but the answer is B".
    return found[-1][1] if found else None


def _option_text_match(text: str, options: Sequence[str] | None) -> str | None:
    if not options:
        return None
    reply = _plain(text)
    plains = [_plain_option(o) for o in options]
    if not reply:
        return None
    exact = [LETTERS[i] for i, p in enumerate(plains) if p and p == reply]
    if len(exact) == 1:
        return exact[0]
    padded = f" {reply} "
    contained = [LETTERS[i] for i, p in enumerate(plains) if p and f" {p} " in padded]
    # An option text inside another one ("a dog" in "a dog and a cat") is not evidence for it.
    contained = [
        letter
        for letter in contained
        if not any(
            other != letter and plains[LETTERS.index(letter)] in plains[LETTERS.index(other)]
            for other in contained
        )
    ]
    return contained[0] if len(contained) == 1 else None


def extract_answer(
    text: Any,
    options: Sequence[str] | None = None,
    *,
    embedder: "TextEmbedder | None" = None,
    embedding_margin: float = 0.0,
    judge: "ChatModel | None" = None,
    question: str = "",
) -> Extraction:
    """Extract the chosen option letter from a reply, or say why none can be chosen.

    ``options`` are the four option texts (without ``(A):``); they enable the option-text rule and
    the optional embedding (``embedder``, with ``embedding_margin`` between the best and the
    second-best cosine similarity) and judge (``judge``) fallbacks.
    """
    if not isinstance(text, str):
        return Extraction(None, "none:missing")
    if not text.strip():
        return Extraction(None, "none:empty")
    normal = _normalise(text)

    tag = _ANSWER_TAG_RE.findall(normal)
    if tag:
        inner = _rules(tag[-1], options)
        if inner.letter is not None:
            return Extraction(inner.letter, "answer_tag")

    cleaned, truncated = _strip_blocks(normal)
    flat = _MARKDOWN_RE.sub("", cleaned)
    if not flat.strip():
        return Extraction(None, "none:truncated_reasoning" if truncated else "none:empty")

    bare = _BARE_LOWER_RE.match(flat)
    if bare:
        return Extraction(bare.group(1).upper(), "start")
    # An answer statement counts even inside a reasoning section ("Reasoning: ... so the answer
    # is C"); the looser rules look only at what is left once such sections are removed.
    stated = _answer_statement(flat, options)
    if stated:
        return Extraction(stated, "answer_is")
    result = _rules(_strip_sections(flat), options)
    if result.letter is not None or not (embedder or judge):
        return result
    if embedder is not None and options:
        mapped = _embedding_match(flat, options, embedder, embedding_margin)
        if mapped is not None:
            return Extraction(mapped, "embedding")
    if judge is not None and options:
        mapped = judge_extract(judge, question, options, text)
        if mapped is not None:
            return Extraction(mapped, "judge")
        return Extraction(None, "none:judge_declined")
    return result


def _rules(text: str, options: Sequence[str] | None) -> Extraction:
    stated = _answer_statement(text, options)
    if stated:
        return Extraction(stated, "answer_is")

    parens = _distinct(_letters_in(_PAREN_RE, text))
    if len(parens) >= 3:
        # The reply repeats the option list; any letter we picked from it would be a guess.
        return Extraction(None, "none:echoed_options")

    start = _START_RE.match(text)
    if start and not _article_not_answer(text, start, options):
        return Extraction(start.group("letter").upper(), "start")

    lines = [line for line in text.strip().splitlines() if line.strip()]
    if lines:
        end = _END_LINE_RE.match(lines[-1])
        if end:
            return Extraction(end.group("letter").upper(), "end")

    # Every letter standing alone ("between A and B"), articles excepted: a loose rule may only
    # decide when the reply mentions one letter.
    standalone = _distinct(
        [m.group("letter") for m in _STANDALONE_RE.finditer(text) if not _article_not_answer(text, m, options)]
    )
    if len(standalone) > 1:
        return Extraction(None, "none:ambiguous:" + "".join(standalone))

    # The tail is enough for an end-anchored pattern and keeps the search constant-time.
    end = _END_RE.search(text[-24:])
    if end and not _article_not_answer(text[-24:], end, options):
        return Extraction(end.group("letter"), "end")
    if len(parens) == 1:
        return Extraction(parens[0], "paren")
    punct = _distinct(_letters_in(_LETTER_PUNCT_RE, text))
    if len(punct) == 1:
        return Extraction(punct[0], "letter_punct")

    by_text = _option_text_match(text, options)
    if by_text:
        return Extraction(by_text, "option_text")
    return Extraction(None, "none:no_letter")


def _embedding_match(
    text: str, options: Sequence[str], embedder: "TextEmbedder", margin: float
) -> str | None:
    import numpy as np

    vectors = embedder.embed([text, *options])
    sims = vectors[1:] @ vectors[0]
    order = np.argsort(-sims)
    if sims[order[0]] - sims[order[1]] < margin:
        return None
    return LETTERS[int(order[0])]


# --------------------------------------------------------------------------- judge fallback

_JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"letter": {"type": "string", "enum": ["A", "B", "C", "D", "none"]}},
    "required": ["letter"],
    "additionalProperties": False,
}


def judge_extract(
    judge: "ChatModel", question: str, options: Sequence[str], reply: str
) -> str | None:
    """Ask a chat model which option a reply chose; it may (and should) answer "none"."""
    from ..errors import StructuredOutputError
    from ..models.protocols import user
    from ..prompts import load_prompt

    prompt = load_prompt("bench/extract_judge").render(
        question=question,
        a=options[0], b=options[1], c=options[2], d=options[3],
        reply=reply,
    )
    try:
        generation = judge.generate([[user(prompt)]], schema=_JUDGE_SCHEMA)[0]
    except StructuredOutputError:
        return None
    parsed = generation.parsed
    if parsed is None:
        try:
            parsed = json.loads(generation.text)
        except (ValueError, TypeError):
            return None
    letter = parsed.get("letter") if isinstance(parsed, dict) else None
    return letter if letter in LETTERS else None


def extract(text: Any, options: Sequence[str] | None = None, mode: Mode = "default") -> Extraction:
    """Extraction under a named mode: ``default`` (the rules above) or ``legacy`` (score.py)."""
    if mode == "legacy":
        letter = legacy_extract(text)
        return Extraction(letter, "legacy" if letter else "none:legacy")
    return extract_answer(text, options)
