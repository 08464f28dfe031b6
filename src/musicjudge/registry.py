"""Everything a user can name on the command line or in Python, in one table: music LMs,
reward models and judges (each kind's registry lives next to its loader; see
:mod:`musicjudge.specs` for the grammar)."""

from __future__ import annotations


def describe() -> list[dict[str, str]]:
    """Rows ``{kind, name, usage, summary, aliases}`` of every registered name and installed
    entry point (``musicjudge bench list`` prints them)."""
    from musicjudge.lm.loader import available_music_lms
    from musicjudge.pseudolabel.factory import available_judges
    from musicjudge.reward.registry import available_reward_models

    return [*available_music_lms(), *available_reward_models(), *available_judges()]


def format_table(rows: list[dict[str, str]]) -> str:
    """The rows as an aligned plain-text table (kind, usage, summary)."""
    width_kind = max((len(r["kind"]) for r in rows), default=4)
    width_usage = max((len(r["usage"]) for r in rows), default=5)
    lines = []
    for r in rows:
        alias = f" (also: {r['aliases']})" if r.get("aliases") else ""
        lines.append(f"{r['kind']:<{width_kind}}  {r['usage']:<{width_usage}}  {r['summary']}{alias}")
    return "\n".join(lines)
