"""A file's QC figures and flags in words a data manager reads."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

_FIXED = {
    "dst_change_not_applied": "the device clock crossed a daylight-saving change that was "
                              "not applied",
    "recordings_combined": "recordings of this wrist were combined",
}
_COUNTED = {
    "segments": "the device restarted: {n} recording segments",
    "gaps_not_listed": "{n} more gaps not listed",
    "non_finite_samples_dropped": "{n} samples without a finite value dropped",
    "trimmed_samples": "{n} samples with non-increasing time trimmed",
    "corrupt_blocks_skipped": "{n} corrupt data blocks skipped",
    "corrupt_pages_skipped": "{n} corrupt pages skipped",
    "erased_blocks_skipped": "{n} erased blocks skipped",
    "incomplete_pages_dropped": "{n} incomplete pages dropped",
    "pages_missing": "{n} pages missing",
    "idle_sleep_mode_samples": "{n} samples in the device's idle sleep mode",
    "rows_with_missing_values_dropped": "{n} rows with missing values dropped",
    "partial_block_bytes_dropped": "{n} bytes of a partial block dropped",
    "format_changed_blocks_skipped": "{n} blocks of another format skipped",
    "recordings_combined": "{n} recordings of this wrist combined in time order",
}


def flag_words(flag: str) -> str:
    """One flag as a sentence (an unknown flag is shown as it is)."""
    if flag in _FIXED:
        return _FIXED[flag]
    name, sep, value = flag.partition("=")
    if sep and name == "gap_s":
        return f"a gap of {duration(float(value))} in the recording"
    if sep and name in _COUNTED:
        return _COUNTED[name].format(n=value)
    kind, _, rest = flag.partition(":")
    if kind == "skipped":
        step, _, why = rest.partition(":")
        return f"step {step} skipped: {why}"
    if kind == "substituted":
        step, _, why = rest.partition(":")
        return f"step {step} replaced: {why}"
    if kind == "warning":
        step, _, why = rest.partition(":")
        return f"warning from {step}: {why}"
    if kind == "never_worn":
        return "the device never moved: no wear at all"
    if kind == "outside_study_window":
        return f"recorded partly outside the study window ({rest})"
    if kind in {"gap_between_recordings_s", "overlap_trimmed_s"}:
        return flag.replace("_", " ")
    m = re.match(r"header_tz=(.*)", flag)
    if m:
        return f"the file's header gives a time zone offset of {m.group(1)}"
    return flag


def qc_sentences(qc: Mapping[str, Any]) -> list[str]:
    """The QC figures a reviewer checks first: calibration, clipping, rate, restarts."""
    out: list[str] = []
    before, after = qc.get("calibration_error_before_g"), qc.get("calibration_error_after_g")
    if before is not None:
        text = f"calibration error {before * 1000:.1f} mg"
        if after is not None:
            text += f" before, {after * 1000:.1f} mg after auto-calibration"
        out.append(text + (" (above 10 mg: check the device)" if (after or before) > 0.01
                           else ""))
    else:
        out.append("calibration error not measured (no still period)")
    clipped = float(qc.get("clipped_fraction") or 0.0)
    out.append(f"{clipped * 100:.3f}% of samples at the sensor's range limit"
               if clipped > 0 else "no clipping")
    drift = qc.get("rate_drift_pct")
    if drift is not None and abs(float(drift)) >= 1.0:
        out.append(f"sampling rate off by {float(drift):+.2f}% from the declared rate")
    if not qc.get("has_temperature", True):
        out.append("no temperature channel: wear detected from acceleration only")
    return out


def file_problems(flags: Sequence[str]) -> list[str]:
    """Every flag of a file in words, gaps and restarts first."""
    order = sorted(flags, key=lambda f: (not f.startswith(("gap", "segments")), f))
    return [flag_words(f) for f in order]


def duration(seconds: float) -> str:
    """Seconds in the unit that reads best (s, min, h), one decimal."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"
