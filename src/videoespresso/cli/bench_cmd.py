"""``videoespresso eval | score | judge | report``: the VideoEspresso benchmark.

Exit codes: 0 everything went through; 2 bad input that stopped the command (a missing or
malformed file, a bad option); 3 the command finished but some items failed or were skipped
(unreadable videos, malformed prediction lines, duplicate or unknown ids, judge replies that
could not be parsed); each is reported.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Optional

import typer

from . import app
from ._common import ConfigOption, ProfileOption, console, effective_config, err_console, note_random_weights

#: The command finished, but some items failed or were skipped (each is reported).
EXIT_PARTIAL = 3

TasksAnyOption = typer.Option(
    False, "--tasks-any",
    help="A custom benchmark: accept task names outside the 14 VideoEspresso tasks (then no leaderboard comparison).",
)


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


# --------------------------------------------------------------------------- eval


@app.command("eval")
def eval_command(
    bench: Path = typer.Option(..., "--bench", "-b", help="Benchmark file in the official shape (bench_hard.json), or a Hugging Face datasets folder from `export hf`."),
    video_root: Path = typer.Option(..., "--video-root", help="Folder the items' video_path values are relative to."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="VisionLanguageModel spec; default: the profile's reasoner."),
    out: Path = typer.Option(..., "--out", "-o", help="Predictions JSONL (appended to; a rerun resumes)."),
    frames: Optional[int] = typer.Option(None, "--frames", "-k", min=1, help="Uniform frames per video (default: config eval.frames)."),
    sampler: Optional[str] = typer.Option(None, "--sampler", help="Any video sampler spec, e.g. uniform:16, fps:1."),
    frames_file: Optional[Path] = typer.Option(None, "--frames-file", help="Precomputed frame lists: selections JSON keyed by question id."),
    selector: Optional[str] = typer.Option(None, "--selector", help="Choose frames per question with this selector."),
    evidence: bool = typer.Option(False, "--evidence/--no-evidence", help="Insert the item's evidence into the prompt."),
    template: str = typer.Option("official", "--template", help="Prompt template: official, letter, cot, open."),
    mode: str = typer.Option("generate", "--mode", help="generate (reply + extractor) or logprob (score the option letters)."),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", min=1),
    temperature: Optional[float] = typer.Option(None, "--temperature", min=0.0, help="0 = greedy (default)."),
    top_p: Optional[float] = typer.Option(None, "--top-p", min=0.0, max=1.0),
    seed: Optional[int] = typer.Option(None, "--seed", min=0),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Questions per model call (default: config eval.batch_size)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N items (after the task filter)."),
    task: Optional[list[str]] = typer.Option(None, "--task", help="Only these tasks (paper or leaderboard name); repeatable."),
    max_side: Optional[int] = typer.Option(None, "--max-side", min=0, help="Resize frames so the longer side is at most this; 0: native size (default: config sampling.max_side)."),
    protocol: str = typer.Option("ours", "--protocol", help="ours (16 uniform frames as images, resized, greedy) or official (the official script: per-video frame count, one video input, native size, temperature 0.8, 512 tokens, seed 0)."),
    input_form: Optional[str] = typer.Option(None, "--input", help="How frames reach the model: images (one each) or video (one video input). Default: images; video under --protocol official."),
    frames_from: str = typer.Option("video", "--frames-from", help="video (decode the item's video) or core-frames (the item's core_frames_paths images)."),
    core_root: Optional[Path] = typer.Option(None, "--core-root", help="With --frames-from core-frames: folder the core_frames_paths are relative to (default: --video-root)."),
    core_fps: float = typer.Option(1.0, "--core-fps", min=0.001, help="With --frames-from core-frames: the fps core-frame file names (480.jpg) count in (default 1, the maintainers' statement)."),
    official: Optional[Path] = typer.Option(None, "--official", help="Also write the official format (items + model_output) here."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Model response cache (SQLite); default: next to --out."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not cache model replies."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start over: remove the predictions (and manifest) already at --out."),
    retry_failed: bool = typer.Option(True, "--retry-failed/--no-retry-failed", help="Answer again the items whose earlier attempt failed (default on)."),
    tasks_any: bool = TasksAnyOption,
    profile: Optional[str] = ProfileOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Run a vision-language model over the benchmark; predictions stream to JSONL and resume.

    A rerun resumes only with the settings recorded in OUT.manifest.json (model, generation
    settings, frame source, input form, protocol, template, mode, benchmark file); anything else
    is refused, naming the difference. Items that failed before are answered again.

    --protocol official reproduces the official evaluation script; our default (ours) is
    greedy, so a rerun gives the same answers.

    Example: videoespresso eval --bench bench_hard.json --video-root videos --model hf:Qwen/Qwen2-VL-7B-Instruct --out runs/qwen2vl.jsonl

    Example: videoespresso eval --protocol official --bench bench_hard.json --video-root videos --model hf:Qwen/Qwen2-VL-7B-Instruct --out runs/qwen2vl-official.jsonl --official runs/qwen2vl-official.json
    """
    from ..bench.run import (
        EvalOptions,
        core_frames_source,
        filter_items,
        run_eval,
        run_settings,
        sampler_source,
        selections_source,
        selector_source,
        settings_from_lines,
        write_official,
    )
    from ..errors import ConfigError
    from ..engine.journal import Journal, finished_ids
    from ..formats.bench import bench_fingerprint, read_bench
    from ..models.registry import load_model

    from ..bench.protocol import INPUT_FORMS, OFFICIAL_SAMPLER, OFFICIAL_SETTINGS, PROTOCOLS
    from ..bench.score import check_task_names

    cfg = effective_config(profile, config)
    if protocol not in PROTOCOLS:
        raise ConfigError(f"--protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    if input_form is not None and input_form not in INPUT_FORMS:
        raise ConfigError(f"--input must be one of {', '.join(INPUT_FORMS)}, not {input_form!r}")
    if max_side is not None and 0 < max_side < 16:
        raise ConfigError(f"--max-side must be 0 (native size) or at least 16, not {max_side}")
    if frames_from not in ("video", "core-frames"):
        raise ConfigError(f"--frames-from must be video or core-frames, not {frames_from!r}")
    if frames_from == "core-frames" and any(x is not None for x in (frames, sampler, frames_file, selector)):
        raise ConfigError("--frames-from core-frames reads the items' core-frame images; drop --frames/--sampler/--frames-file/--selector")
    if frames_from != "core-frames" and core_root is not None:
        raise ConfigError("--core-root applies to --frames-from core-frames only")
    if protocol == "official":
        # The preset is the official script's run; a changed part would make it something else
        # under the same name.
        fixed = {
            "--frames/--sampler/--frames-file/--selector": any(x is not None for x in (frames, sampler, frames_file, selector)),
            "--frames-from core-frames": frames_from != "video", "--evidence": evidence, "--template": template != "official",
            "--mode": mode != "generate", "--input": input_form not in (None, "video"), "--max-side": max_side not in (None, 0),
            "--max-new-tokens/--temperature/--top-p/--seed": any(x is not None for x in (max_new_tokens, temperature, top_p, seed)),
        }
        changed = [name for name, was_set in fixed.items() if was_set]
        if changed:
            raise ConfigError(f"--protocol official fixes frames, input, size, decoding and prompt; drop {', '.join(changed)} "
                              "(or use --protocol ours to choose them yourself)")
    if sum(x is not None for x in (frames_file, selector)) + (frames is not None or sampler is not None) > 1:
        raise ConfigError("choose one frame source: --frames/--sampler, --frames-file or --selector")
    if mode not in ("generate", "logprob"):
        raise ConfigError(f"--mode must be generate or logprob, not {mode!r}")
    if not video_root.is_dir():
        raise ConfigError(f"--video-root {video_root} is not a folder")
    if core_root is not None and not core_root.is_dir():
        raise ConfigError(f"--core-root {core_root} is not a folder")
    settings = cfg.generation.model_copy(
        update={
            k: v
            for k, v in {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p, "seed": seed}.items()
            if v is not None
        }
    )
    if top_p == 0.0:
        raise ConfigError("--top-p must be above 0 (0 keeps no token); use --temperature 0 for greedy decoding")
    if protocol == "official":
        settings = OFFICIAL_SETTINGS.model_copy()
    all_items = read_bench(bench)
    if not tasks_any:
        check_task_names(((i.task, i.id) for i in all_items), f"benchmark file {bench}")
        check_task_names(((name, None) for name in task or ()), "--task")
    items = filter_items(all_items, task, limit)
    side = max_side if max_side is not None else cfg.sampling.max_side
    if protocol == "official" or side == 0:
        side = None
    form = input_form or ("video" if protocol == "official" else "images")
    if frames_from == "core-frames":
        root = core_root or video_root
        source, label = core_frames_source(root, core_fps, side), f"core-frames@{core_fps:g}fps"
    elif protocol == "official":
        source, label = sampler_source(OFFICIAL_SAMPLER, side), OFFICIAL_SAMPLER
    elif frames_file is not None:
        source, label = selections_source(frames_file, side), f"frames-file:{frames_file.name}"
    elif selector is not None:
        source, label = selector_source(selector, cfg, side, items), f"selector:{selector}"
    else:
        spec = sampler or f"uniform:{frames or cfg.eval.frames}"
        source, label = sampler_source(spec, side), spec
    opts = EvalOptions(
        template=template,
        with_evidence=evidence,
        mode=mode,  # type: ignore[arg-type]
        settings=settings,
        batch_size=batch_size or cfg.eval.batch_size,
        frames_label=label,
        max_side=side,
        retry_failed=retry_failed,
        protocol=protocol,
        input_form=form,
        frames_from=frames_from,
    )
    spec = model or cfg.models.reasoner
    roles = {"model": spec}
    if selector in ("embedding", "caption-llm"):
        roles["selector captioner"] = cfg.models.selector_vlm
    if selector == "caption-llm":
        roles["selector LLM"] = cfg.models.selector_llm
    wanted = {i.id for i in items}
    cache_path = None if no_cache else (cache or (Path(cfg.cache) if cfg.cache else out.with_name(out.name + ".cache.sqlite")))
    # The lock comes first: until it is held, nothing at --out (another run's) is touched.
    with Journal(out, "predictions file", kind="eval", overwrite=overwrite,
                 settings=run_settings(opts, spec, cfg.model_options(spec), bench_fingerprint(bench)),
                 legacy_settings=settings_from_lines) as journal:
        note_random_weights(roles)
        finished = journal.ids(include_failed=not retry_failed) & wanted
        # A rerun with nothing left to answer never loads the model.
        vlm = None if finished == wanted else load_model(spec, kind="vlm", cache=cache_path, **cfg.model_options(spec))

        with _progress() as progress:
            bar = progress.add_task(f"eval {spec}", total=len(items))
            progress.update(bar, completed=len(finished))
            summary = run_eval(items, vlm, out, source, video_root, opts, on_item=lambda _: progress.advance(bar),
                               journal=journal)

    if summary.repaired_tail:
        err_console.print(f"[yellow]dropped a half-written last line in {out} (an interrupted run)[/]")
    console.print(
        f"{summary.total} items: {summary.already_done} reused, {summary.answered} answered, "
        f"{summary.failed} failed ({summary.retried} earlier failures retried) in {summary.seconds:.1f} s -> {out}"
    )
    if vlm is None:
        console.print("nothing left to answer: the model was not loaded")
    chooser = getattr(source, "selector", None)
    if chooser is not None and chooser.stats:
        console.print("selector events (repairs, clamped or out-of-range frames, fallbacks): "
                      + ", ".join(f"{k} {v}" for k, v in sorted(chooser.stats.items())), highlight=False)
    for reason, count in summary.failure_reasons.items():
        err_console.print(f"  failed ({reason}): {count}")
    for example in summary.failure_examples:
        err_console.print(f"  {example}", highlight=False, markup=False)
    if official is not None:
        written = write_official(items, out, official)
        unanswered = len(items) - len(finished_ids(out, include_failed=False) & wanted)
        note = f" ({unanswered} failed or unanswered, written with an empty model_output: wrong for score.py)" if unanswered else ""
        console.print(f"official format: {written} items -> {official}{note}")
    if summary.failed:
        raise typer.Exit(EXIT_PARTIAL)


# --------------------------------------------------------------------------- score


@app.command("score")
def score_command(
    predictions: Path = typer.Argument(..., help="Predictions JSONL (from eval) or an official-format JSON list."),
    bench: Optional[Path] = typer.Option(None, "--bench", "-b", help="Benchmark file (optional when predictions carry task and correct_answer)."),
    legacy: bool = typer.Option(False, "--legacy", help="Count exactly what the official score.py counts: every element (missing outputs, repeats, loose truths such as 'Option (B)' included), first capital A-D anywhere in output and truth."),
    embedder: Optional[str] = typer.Option(None, "--embedder", help="Map unreadable replies to the nearest option by text embedding, e.g. minilm (offline) or st:BAAI/bge-m3 (what the paper used)."),
    margin: float = typer.Option(0.0, "--margin", min=0.0, max=2.0, help="With --embedder: required cosine gap between best and second option."),
    judge_fallback: Optional[str] = typer.Option(None, "--judge-fallback", help="ChatModel that maps unreadable replies (may answer none)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the results as JSON here."),
    name: Optional[str] = typer.Option(None, "--name", help="Run name in the JSON and in reports."),
    partial: bool = typer.Option(False, "--partial", help="The run covered part of the benchmark on purpose (--limit/--task): do not report the rest as missing."),
    failed: str = typer.Option("wrong", "--failed", help="Items the run could not answer: 'wrong' (count as wrong answers, the default) or 'exclude' (leave out of the accuracies). Either way they are listed and the exit code is 3."),
    tasks_any: bool = TasksAnyOption,
) -> None:
    """Per-task accuracy, the weighted (leaderboard) and unweighted (paper) averages, unparsed rates.

    Example: videoespresso score runs/qwen2vl.jsonl --bench bench_hard.json --json runs/qwen2vl.score.json
    """
    from ..bench.score import score_file
    from ..errors import ConfigError
    from ..formats.jsonl import write_json_atomic
    from ..models.registry import load_model

    if legacy and (embedder or judge_fallback):
        raise ConfigError("--legacy reproduces score.py; it cannot be combined with --embedder or --judge-fallback")
    if failed not in ("wrong", "exclude"):
        raise ConfigError(f"--failed must be wrong or exclude, not {failed!r}")
    if legacy and failed == "exclude":
        raise ConfigError("--legacy counts failed items as wrong, as score.py does; --failed exclude cannot be combined with it")
    emb = load_model(embedder, kind="embedder") if embedder else None
    judge = load_model(judge_fallback, kind="chat") if judge_fallback else None
    report = score_file(
        predictions,
        bench,
        mode="legacy" if legacy else "default",
        failed=failed,  # type: ignore[arg-type]
        embedder=emb,
        judge=judge,
        embedding_margin=margin,
        partial=partial,
        name=name or predictions.stem,
        tasks_any=tasks_any,
    )
    _print_score(report)
    if json_out is not None:
        write_json_atomic(json_out, report.model_dump(mode="json"))
        console.print(f"results -> {json_out}")
    if report.problems or report.failures:
        raise typer.Exit(EXIT_PARTIAL)


def _print_score(report) -> None:
    from rich.table import Table

    from ..schema import find_task

    from ..bench.score import averages_labels, custom_tasks, partial_note

    score = report.score
    custom = custom_tasks(report)
    table = Table(title=f"{report.name} ({report.mode} extraction)")
    for col in ("task", "n", "correct", "unparsed", "failed", "accuracy", "95% CI"):
        table.add_column(col, justify="left" if col == "task" else "right")
    for t in score.per_task:
        info = find_task(t.task)
        ci = "-" if t.ci95 is None else f"{t.ci95[0]:.1f}-{t.ci95[1]:.1f}"
        table.add_row(info.leaderboard_name if info else t.task, str(t.n), str(t.correct), str(t.unparsed), str(t.failed), f"{t.accuracy:.1f}", ci)
    ci_w = "-" if score.ci95_weighted is None else f"{score.ci95_weighted[0]:.1f}-{score.ci95_weighted[1]:.1f}"
    ci_u = "-" if score.ci95_unweighted is None else f"{score.ci95_unweighted[0]:.1f}-{score.ci95_unweighted[1]:.1f}"
    weighted_label, unweighted_label = averages_labels(report)
    table.add_section()
    table.add_row(weighted_label, str(score.n), str(sum(t.correct for t in score.per_task)), str(score.unparsed), str(score.failed), f"{score.overall_weighted:.1f}", ci_w)
    table.add_row(unweighted_label, str(len(score.per_task)), "", "", "", f"{score.overall_unweighted:.1f}", ci_u)
    console.print(table)
    console.print(f"95% CI: {score.interval_method}", highlight=False)
    for line in report.protocols:
        console.print(f"run protocol: {line}", highlight=False, markup=False)
    note = partial_note(report)
    if note:  # task names are the file's text: never Rich markup
        err_console.print(note, style="yellow", markup=False, highlight=False)
    if not custom and report.protocols and not all(p.startswith("official") for p in report.protocols):
        console.print("the leaderboard ran the official protocol (eval --protocol official); runs under other "
                      "protocols are not directly comparable with it", highlight=False)
    if score.rule_counts:
        console.print("extraction rules: " + ", ".join(f"{k} {v}" for k, v in score.rule_counts.items()), highlight=False)
    if report.failures:
        how = "counted as wrong answers" if report.failed_rule == "wrong" else "left out of the accuracies"
        reasons = Counter(f["reason"].split(":", 1)[0] for f in report.failures)
        err_console.print(
            f"[yellow]{len(report.failures)} items failed (the run could not answer them; {how}, see --failed):[/] "
            + ", ".join(f"{k} {v}" for k, v in reasons.most_common()), highlight=False,
        )
        from ..errors import printable

        for f in report.failures[:20]:
            err_console.print(f"  item {printable(f['id'])}: {printable(f['reason'])}", highlight=False, markup=False)
        if len(report.failures) > 20:
            err_console.print(f"  ... and {len(report.failures) - 20} more (see --json)")
    counted = [p for p in report.problems if p.kind.startswith("legacy_")]
    if counted:
        kinds = Counter(p.kind for p in counted)
        err_console.print(f"[yellow]{len(counted)} elements scored as score.py scores them, which our own scoring would "
                          "leave out or read otherwise:[/] " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())),
                          highlight=False)
        for problem in counted[:20]:
            err_console.print(f"  {problem.message}", highlight=False, markup=False)
    if len(counted) < len(report.problems):
        shown = [p for p in report.problems if not p.kind.startswith("legacy_")]
        kinds = Counter(p.kind for p in shown)
        err_console.print(f"[yellow]{len(shown)} input problems (not scored):[/] "
                          + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())), highlight=False)
        for problem in shown[:20]:
            err_console.print(f"  {problem.message}", highlight=False, markup=False)
        if len(shown) > 20:
            err_console.print(f"  ... and {len(shown) - 20} more (see --json)")


# --------------------------------------------------------------------------- judge


@app.command("judge")
def judge_command(
    predictions: Path = typer.Argument(..., help="Predictions JSONL or official-format JSON with open-ended answers."),
    judge: Optional[str] = typer.Option(None, "--judge", "-j", help="ChatModel spec of the judge; default: the profile's judge."),
    bench: Optional[Path] = typer.Option(None, "--bench", "-b", help="Benchmark file (questions and reference answers)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Judgements JSONL (appended to; a rerun resumes). Default: PRED.judge.jsonl"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the summary as JSON here."),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    max_new_tokens: int = typer.Option(96, "--max-new-tokens", min=1),
    constrained: bool = typer.Option(True, "--constrained/--no-constrained", help="Ask the backend for schema-constrained JSON."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Judge response cache (SQLite)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start over: remove the judgements (and manifest) already at --out."),
    profile: Optional[str] = ProfileOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Open-ended scores from an LLM judge: Logic, Factuality, Description Accuracy, Conciseness, overall (x10).

    A rerun resumes only with the judge and settings recorded in OUT.manifest.json.

    Example: videoespresso judge runs/open.jsonl --bench bench_hard.json --judge openai:gpt-4o --json runs/open.judge.json
    """
    from rich.table import Table

    from ..bench.judge import (
        CRITERIA, CRITERIA_LABELS, judge_answers, load_judge_inputs, open_judgements, read_judgements, summarize,
    )
    from ..formats.jsonl import write_json_atomic
    from ..formats.bench import bench_fingerprint
    from ..models.registry import load_model
    from ..schema import GenerationSettings

    cfg = effective_config(profile, config)
    spec = judge or cfg.models.judge
    requests, skipped = load_judge_inputs(predictions, bench)
    out = out or predictions.with_name(predictions.stem + ".judge.jsonl")
    settings = {"judge": spec, "model_options": cfg.model_options(spec), "max_new_tokens": max_new_tokens,
                "constrained": constrained, "bench_sha256": bench_fingerprint(bench) if bench is not None else None}
    # The lock comes first: until it is held, nothing at --out (another run's) is touched.
    with open_judgements(out, kind="judge", settings=settings, overwrite=overwrite) as journal:
        previous = {j.id: j for j in read_judgements(journal.path)}
        todo = [r for r in requests if r.id not in previous]
        note_random_weights({"judge": spec})
        # A rerun with nothing left to judge never loads the judge.
        model = load_model(spec, kind="chat", cache=cache, **cfg.model_options(spec)) if todo else None
        with _progress() as progress:
            bar = progress.add_task(f"judge {spec}", total=len(requests), completed=len(requests) - len(todo))

            def done(j) -> None:
                journal.append(j.model_dump(mode="json"))
                progress.advance(bar)

            new = judge_answers(
                todo, model, settings=GenerationSettings(max_new_tokens=max_new_tokens),
                batch_size=batch_size, constrained=constrained, on_done=done,
            )
    wanted = {r.id for r in requests}
    judgements = [j for j in previous.values() if j.id in wanted] + new
    summary = summarize(judgements, spec)
    table = Table(title=f"judge {spec}: {summary.judged}/{summary.n} graded (x10)")
    for c in CRITERIA:
        table.add_column(CRITERIA_LABELS[c], justify="right")
    table.add_row(*[f"{summary.means[c]:.2f}" if c in summary.means else "-" for c in CRITERIA])
    console.print(table)
    if summary.failed:
        err_console.print(f"[yellow]{summary.failed} replies could not be parsed after one retry:[/] "
                          + ", ".join(f"{k} {v}" for k, v in summary.failure_reasons.items()), highlight=False)
    for message in skipped[:20]:
        err_console.print(f"  skipped: {message}", highlight=False, markup=False)
    if json_out is not None:
        write_json_atomic(json_out, {**summary.model_dump(mode="json"), "skipped": skipped})
        console.print(f"summary -> {json_out}")
    if summary.failed or skipped:
        raise typer.Exit(EXIT_PARTIAL)


# --------------------------------------------------------------------------- report


@app.command("report")
def report_command(
    runs: list[Path] = typer.Argument(..., help="Score JSON files (score --json) or prediction files."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for report.md, report.html and the figures."),
    bench: Optional[Path] = typer.Option(None, "--bench", "-b", help="Benchmark file, for prediction files given as runs."),
    leaderboard: Optional[list[str]] = typer.Option(None, "--leaderboard", "-l", help="Published rows to show (name substring); repeatable. Default: all."),
    title: str = typer.Option("VideoEspresso benchmark report", "--title"),
    tasks_any: bool = TasksAnyOption,
) -> None:
    """Markdown and self-contained HTML report: per-task table next to the published leaderboard, plots.

    Example: videoespresso report runs/qwen2vl.score.json runs/llava.score.json --out report/ -l LLaVA-Video -l LongVA
    """
    from ..bench.report import load_run, write_report

    loaded = [load_run(r, bench, tasks_any=tasks_any) for r in runs]
    files = write_report(loaded, out, leaderboard=leaderboard, title=title)
    console.print(f"report -> {files.markdown} and {files.html}")
    partial = [r for r in loaded if r.failures or r.problems]
    for r in partial:
        err_console.print(
            f"[yellow]{r.name}: {len(r.failures)} failed items, {len(r.problems)} input problems (listed in the report)[/]",
            highlight=False,
        )
    if partial:
        raise typer.Exit(EXIT_PARTIAL)
