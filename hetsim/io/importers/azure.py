"""Azure LLM inference trace 2023 (Splitwise, ISCA'24): CSV ``TIMESTAMP,ContextTokens,GeneratedTokens``.

Each request becomes a one-step session; ``arrival_s`` is seconds after the first timestamp.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from hetsim.errors import WorkloadError
from hetsim.io.importers._records import SKIP_HINT
from hetsim.workload.trace import NodeType, TraceMeta, TraceStep
from hetsim.workload.validate import MAX_TOKENS

FORMAT = "azure-2023"
HEADER = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
SOURCE = (
    "Azure LLM inference trace 2023, https://github.com/Azure/AzurePublicDataset; Patel et al., "
    "'Splitwise: Efficient generative LLM inference using phase splitting', ISCA 2024"
)
_EXPECTED = (
    f"TIMESTAMP (YYYY-MM-DD HH:MM:SS[.fffffff]),ContextTokens (integer 0..{MAX_TOKENS}),"
    f"GeneratedTokens (integer 0..{MAX_TOKENS})"
)


def azure_steps(arrival_s: np.ndarray, context_tokens: np.ndarray, generated_tokens: np.ndarray) -> list[TraceStep]:
    """One single-LLM-step session per request (pure)."""
    return [
        TraceStep(
            session_id=f"req-{i}", step_id=0, arrival_s=float(t), node="llm", node_type=NodeType.LLM,
            input_tokens=int(c), output_tokens=int(g),
        )
        for i, (t, c, g) in enumerate(
            zip(arrival_s.tolist(), context_tokens.tolist(), generated_tokens.tolist(), strict=True)
        )
    ]


def read(path: Path, skip_bad: bool = False) -> tuple[list[TraceStep], TraceMeta]:
    """Read an Azure 2023 CSV file.

    Raises:
        WorkloadError: unreadable file, wrong header, or a malformed row (unless ``skip_bad``),
            naming the file and line number.
    """
    line_numbers, rows, wrong_width = _rows(path)
    frame = pd.DataFrame(rows, columns=list(HEADER), dtype=object)
    times = pd.to_datetime(frame["TIMESTAMP"], format="ISO8601", errors="coerce", utc=True)  # a zone given is honoured
    context = pd.to_numeric(frame["ContextTokens"], errors="coerce")
    generated = pd.to_numeric(frame["GeneratedTokens"], errors="coerce")
    bad = (times.isna() | ~_count_ok(context) | ~_count_ok(generated)).to_numpy()
    if (bad.any() or wrong_width) and not skip_bad:
        _raise_first_bad(path, [line_numbers[i] for i in np.flatnonzero(bad)], wrong_width)
    keep = ~bad
    if not keep.any():
        raise WorkloadError(f"{path}: no valid request rows (expected {_EXPECTED})")
    stamps = times[keep].dt.tz_convert(None).to_numpy(dtype="datetime64[ns]").astype(np.int64)
    arrival = (stamps - stamps.min()) / 1e9
    steps = azure_steps(arrival, context[keep].to_numpy(np.int64), generated[keep].to_numpy(np.int64))
    skipped = int(bad.sum()) + len(wrong_width)
    meta = TraceMeta(
        source=SOURCE, format=FORMAT, license="CC-BY-4.0", skipped_lines=skipped, extra={"file": path.name}
    )
    return steps, meta


def _count_ok(values: pd.Series) -> pd.Series:
    """Token counts: whole numbers 0..MAX_TOKENS (past it, a count would wrap in int64)."""
    return values.notna() & (values >= 0) & (values <= MAX_TOKENS) & (values == values.round())


def _raise_first_bad(path: Path, bad_values: list[int], wrong_width: list[int]) -> None:
    line = min(bad_values[:1] + wrong_width[:1])
    what = "3 fields" if line in wrong_width else "values"
    raise WorkloadError(f"{path}: line {line}: expected {what}: {_EXPECTED} {SKIP_HINT}")


def _rows(path: Path) -> tuple[list[int], list[list[str]], list[int]]:
    """Rows of three fields with their line numbers, and the line numbers of rows of another width."""
    try:
        content = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorkloadError(f"{path}: cannot read file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise WorkloadError(f"{path}: not UTF-8 text ({exc.reason}); expected a CSV file") from None
    reader = csv.reader(io.StringIO(content))
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != HEADER:
        raise WorkloadError(f"{path}: line 1: expected the header {','.join(HEADER)}, got {header!r:.80}")
    numbers: list[int] = []
    rows: list[list[str]] = []
    wrong_width: list[int] = []
    for row in reader:
        if not row:
            continue
        if len(row) != len(HEADER):
            wrong_width.append(reader.line_num)
            continue
        numbers.append(reader.line_num)
        rows.append(row)
    return numbers, rows, wrong_width
