"""The key reference of ``docs/studies.md``, generated from the key tables."""
from __future__ import annotations

from .analysis_keys import _ANALYSES, _ANALYSIS_KIND
from .keys import _CASE_KEYS, _KIND_DOC, _KINDS, _PLAIN, _SWEEP_KEYS


def reference_markdown() -> str:
    """The key reference tables of docs/studies.md, generated from the schema."""
    lines = []

    def table(title, rows):
        lines.extend([f"#### {title}", "", "| key | type | default | meaning |",
                      "| --- | --- | --- | --- |"])
        for key, spec in rows:
            lines.append(f"| `{key}` | {spec.type} | {spec.default} | {spec.doc} |")
        lines.append("")

    table("[study]", [(f"study.{k}", v) for k, v in _PLAIN["study"].items()])
    for sec in ("landscape", "noise"):
        table(f"[{sec}]", [(f"{sec}.kind", _KIND_DOC[sec])])
        for kind, spec in _KINDS[sec].items():
            table(f'[{sec}] kind = "{kind}"', [(f"{sec}.{k}", v) for k, v in spec.items()])
    for sec in ("mesh", "solver"):
        table(f"[{sec}]", [(f"{sec}.{k}", v) for k, v in _PLAIN[sec].items()])
    table("[[case]] (plus dotted overrides such as `noise.delta_s = 0.009`)",
          [(f"case.{k}", v) for k, v in _CASE_KEYS.items()])
    table("[sweep]", [(f"sweep.{k}", v) for k, v in _SWEEP_KEYS.items()])
    for sec in ("output", "execution", "time"):
        table(f"[{sec}]", [(f"{sec}.{k}", v) for k, v in _PLAIN[sec].items()])
    table("[analysis]", [("analysis.kind", _ANALYSIS_KIND)])
    for kind, spec in _ANALYSES.items():
        table(f'[analysis] kind = "{kind}"', [(f"analysis.{k}", v) for k, v in spec.items()])
    return "\n".join(lines).rstrip() + "\n"

