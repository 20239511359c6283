"""lmms-eval integration: the ``videoespresso`` benchmark task and the ``videoespresso`` model.

* the **model** is registered through lmms-eval's ``lmms_eval.models`` entry point (see
  :func:`manifests`), so after ``pip install videoespresso lmms-eval``::

      lmms-eval --model videoespresso --model_args spec=hf:Qwen/Qwen2-VL-2B-Instruct,selector=caption-llm \\
          --tasks videomme

  wraps any of our VisionLanguageModel specs plus a frame selector around any lmms-eval video task;
* the **task** is written by ``videoespresso lmms-eval task OUT/ --bench bench_hard.json
  --video-root videos/`` (the benchmark as JSONL, the task YAML and its ``utils.py``) and used with
  ``lmms-eval --include_path OUT/ --tasks videoespresso``: the official prompt, our answer
  extraction in ``process_results``, overall (sample-weighted), task mean and per-task accuracy,
  standard errors clustered by video.

Nothing here imports lmms-eval at package import time except :func:`manifests` (called by
lmms-eval itself) and the model module.
"""

from __future__ import annotations

MODEL_NAME = "videoespresso"


def manifests():
    """The ``lmms_eval.models`` entry point: our model's manifest."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return [ModelManifest(model_id=MODEL_NAME, simple_class_path="videoespresso.integrations.lmms_eval.model.VideoEspressoLMM")]
