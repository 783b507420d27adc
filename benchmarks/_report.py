"""Shared helper for benchmark scripts: write JSON results and a README section.

Example::

    from _report import write_results
    write_results("trial_overhead", data, table_markdown)
"""
from __future__ import annotations

import json
import platform
import re
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def write_results(name: str, data: dict, table: str) -> Path:
    """Writes ``results/<name>.json`` and replaces the ``<name>`` section of README.md."""
    out = HERE / "results" / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    data = dict(data)
    data.setdefault("machine", {"python": platform.python_version(), "cpu": platform.machine(),
                                "when": time.strftime("%Y-%m-%d %H:%M")})
    out.write_text(json.dumps(data, indent=1, default=str))
    readme = HERE / "README.md"
    text = readme.read_text()
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{table.strip()}\n{end}"
    if start in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda m: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    readme.write_text(text)
    return out
