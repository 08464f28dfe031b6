"""musicjudge.evaluation: judge generators side by side (``musicjudge eval``).

    from musicjudge.evaluation import evaluate
    result = evaluate({"base": "clips/base", "new": "clips/new"}, "runs/eval",
                      prompts="prompts.jsonl", reference="real_music/")
    result.report  # runs/eval/report.html

See docs/eval.md."""

from musicjudge.evaluation.runner import METRICS, EvalResult, ProfileSettings, evaluate

__all__ = ["METRICS", "EvalResult", "ProfileSettings", "evaluate"]
