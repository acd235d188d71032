"""The synthetic generator: determinism, shapes and units, and planted truth found by SKDH."""

from __future__ import annotations

import hashlib
import importlib
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from wearflow.demo.cwa_writer import write_cwa
from wearflow.demo.synthetic import (
    DEFAULT_START_DATE,
    GroundTruth,
    Interval,
    generate_recording,
    write_study,
)
from wearflow.errors import ConfigError
from wearflow.readers.cwa import read_cwa
from wearflow.recording import Recording

BUILTIN_WRIST = Path(__file__).parents[1] / "src/wearflow/solutions/builtin/wrist.skdh"

# Short recordings keep the unit tests fast; the SKDH test uses the demo's defaults.
SHORT = {"days": 0.5, "sampling_rate_hz": 25.0}


def _mask(time_s: np.ndarray, intervals: tuple[Interval, ...]) -> np.ndarray:
    out = np.zeros(time_s.shape, dtype=bool)
    for a, b in intervals:
        out |= (time_s >= a) & (time_s < b)
    return out


def _overlap_s(a: Interval, b: Interval) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_the_same_bytes() -> None:
    rec1, truth1 = generate_recording(seed=7, **SHORT)
    rec2, truth2 = generate_recording(seed=7, **SHORT)
    assert rec1.time_s.tobytes() == rec2.time_s.tobytes()
    assert rec1.accel_g.tobytes() == rec2.accel_g.tobytes()
    assert rec1.temperature_c is not None and rec2.temperature_c is not None
    assert rec1.temperature_c.tobytes() == rec2.temperature_c.tobytes()
    assert truth1 == truth2
    assert truth1.to_json() == truth2.to_json()


def test_different_seed_differs() -> None:
    rec1, truth1 = generate_recording(seed=7, **SHORT)
    rec2, truth2 = generate_recording(seed=8, **SHORT)
    assert rec1.accel_g.shape == rec2.accel_g.shape
    assert not np.array_equal(rec1.accel_g, rec2.accel_g)
    assert truth1.non_wear != truth2.non_wear


def test_wrists_share_the_timeline_but_not_the_signal() -> None:
    left, truth_l = generate_recording(seed=3, side="left", **SHORT)
    right, truth_r = generate_recording(seed=3, side="right", **SHORT)
    assert (truth_l.non_wear, truth_l.sleep, truth_l.walking) == (
        truth_r.non_wear,
        truth_r.sleep,
        truth_r.walking,
    )
    assert truth_l.side == "left" and truth_r.side == "right"
    assert not np.array_equal(left.accel_g, right.accel_g)


def test_a_longer_recording_extends_the_same_timeline() -> None:
    _, one = generate_recording(seed=5, days=1.0, sampling_rate_hz=12.5)
    _, two = generate_recording(seed=5, days=2.0, sampling_rate_hz=12.5)
    end = one.start_utc_s + one.duration_s
    for key in ("non_wear", "sleep", "walking"):
        clipped = [(a, min(b, end)) for a, b in getattr(two, key) if a < end]
        assert clipped == list(getattr(one, key)), key


# --------------------------------------------------------------------------- shapes and units


def test_shapes_units_and_default_start() -> None:
    rec, truth = generate_recording(seed=1, **SHORT)
    n = int(0.5 * 86400 * 25)
    assert isinstance(rec, Recording)
    assert rec.validate("synthetic://1") is rec
    assert rec.accel_g.shape == (n, 3) and rec.accel_g.dtype == np.float64
    assert rec.time_s.shape == (n,) and rec.time_s.dtype == np.float64
    assert rec.temperature_c is not None and rec.temperature_c.shape == (n,)
    assert np.allclose(np.diff(rec.time_s), 1 / 25.0)
    assert rec.time_s[0] == datetime(2026, 3, 2, 8, 0, tzinfo=UTC).timestamp()
    assert truth.start_utc_s == rec.time_s[0]
    assert truth.duration_s == pytest.approx(n / 25.0)
    assert truth.sampling_rate_hz == 25.0 and truth.time_zone == "UTC"
    # gravity: about 1 g at rest; temperature: between room and skin
    assert np.median(np.linalg.norm(rec.accel_g, axis=1)) == pytest.approx(1.0, abs=0.03)
    assert rec.temperature_c.min() > 18.0 and rec.temperature_c.max() < 37.0


def test_planted_states_look_like_what_they_are() -> None:
    rec, truth = generate_recording(seed=2, days=1.5, sampling_rate_hz=25.0)
    assert rec.temperature_c is not None
    t = rec.time_s
    enmo = np.maximum(np.linalg.norm(rec.accel_g, axis=1) - 1.0, 0.0)
    assert truth.non_wear and truth.sleep and truth.walking
    for a, b in truth.non_wear:  # still on a table, cooling toward room temperature
        inside = (t >= a + 1800) & (t < b)
        assert rec.accel_g[inside].std(axis=0).max() < 0.005
        assert rec.temperature_c[inside].mean() < 27.0
    walking = _mask(t, truth.walking)
    assert 0.15 < enmo[walking].mean() < 0.35
    asleep = _mask(t, truth.sleep)
    assert enmo[asleep].mean() < 0.02
    assert rec.temperature_c[asleep].mean() > 32.5


def test_time_zone_shapes_the_local_day() -> None:
    zone = "America/New_York"
    rec, truth = generate_recording(seed=4, days=2.0, sampling_rate_hz=6.25, time_zone=zone)
    tz = ZoneInfo(zone)
    start = datetime.fromtimestamp(rec.time_s[0], tz)
    assert (start.date(), start.hour, start.minute) == (DEFAULT_START_DATE, 8, 0)
    for a, b in truth.sleep:
        onset = datetime.fromtimestamp(a, tz)
        wake = datetime.fromtimestamp(b, tz)
        assert onset.hour in (22, 23) and wake.hour in (6, 7)


def test_explicit_start() -> None:
    start = datetime(2025, 7, 1, 6, 30, tzinfo=UTC)
    rec, truth = generate_recording(seed=1, days=0.1, sampling_rate_hz=12.5, start_utc=start)
    assert rec.time_s[0] == start.timestamp() == truth.start_utc_s


@pytest.mark.parametrize(
    "kwargs",
    [
        {"time_zone": "Mars/Olympus_Mons"},
        {"start_utc": datetime(2026, 3, 2, 8, 0)},  # naive
        {"days": 0.0},
        {"sampling_rate_hz": -1.0},
        {"side": "ankle"},
    ],
)
def test_bad_arguments_raise_config_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        generate_recording(seed=1, **kwargs)  # type: ignore[arg-type]


def test_ground_truth_json_round_trip() -> None:
    _, truth = generate_recording(seed=9, days=1.0, sampling_rate_hz=6.25)
    assert GroundTruth.from_json(truth.to_json()) == truth
    with pytest.raises(ConfigError):
        GroundTruth.from_json('{"format": "something else"}')
    with pytest.raises(ConfigError):
        GroundTruth.from_json("not json")


# --------------------------------------------------------------------------- writing


def test_write_study_layout_and_determinism(tmp_path: Path) -> None:
    kwargs = {"participants": 2, "days": 0.2, "sampling_rate_hz": 25.0, "seed": 3}
    written = write_study(tmp_path / "a", **kwargs)  # type: ignore[arg-type]
    again = write_study(tmp_path / "b", **kwargs)  # type: ignore[arg-type]
    names = [p.name for p in written]
    assert names == ["P001_L.cwa", "P001_R.cwa", "P002_L.cwa", "P002_R.cwa"]
    assert all(p.parent == tmp_path / "a" / "raw" for p in written)
    truth_files = sorted(p.name for p in (tmp_path / "a" / "truth").iterdir())
    assert truth_files == [n.replace(".cwa", ".truth.json") for n in names]

    def digest(p: Path) -> str:
        return hashlib.sha256(p.read_bytes()).hexdigest()

    assert [digest(p) for p in written] == [digest(p) for p in again]

    rec = read_cwa(written[0].read_bytes(), str(written[0]))
    truth = GroundTruth.from_json((tmp_path / "a" / "truth" / "P001_L.truth.json").read_text())
    assert rec.n_samples == round(truth.duration_s * truth.sampling_rate_hz)
    assert rec.time_s[0] == pytest.approx(truth.start_utc_s, abs=1e-3)
    assert truth.seed == 3001 and truth.side == "left"


def test_write_study_with_second_visits(tmp_path: Path) -> None:
    kwargs = {"participants": 2, "days": 0.2, "sampling_rate_hz": 25.0, "seed": 3}
    written = write_study(tmp_path / "a", **kwargs, second_visit_participants=1)  # type: ignore[arg-type]
    again = write_study(tmp_path / "b", **kwargs, second_visit_participants=1)  # type: ignore[arg-type]
    plain = write_study(tmp_path / "c", **kwargs)  # type: ignore[arg-type]
    names = [p.name for p in written]
    assert names == ["P001_V1_L.cwa", "P001_V1_R.cwa", "P001_V2_L.cwa", "P001_V2_R.cwa",
                     "P002_V1_L.cwa", "P002_V1_R.cwa"]
    truth_files = sorted(p.name for p in (tmp_path / "a" / "truth").iterdir())
    assert truth_files == [n.replace(".cwa", ".truth.json") for n in names]

    def digest(p: Path) -> str:
        return hashlib.sha256(p.read_bytes()).hexdigest()

    assert [digest(p) for p in written] == [digest(p) for p in again]
    # a first visit is the recording the study without visits has; a second one differs
    by_name = {p.name: digest(p) for p in written}
    for p in plain:
        assert by_name[p.name.replace("_", "_V1_")] == digest(p)
    assert by_name["P001_V2_L.cwa"] != by_name["P001_V1_L.cwa"]

    def truth(name: str) -> GroundTruth:
        return GroundTruth.from_json((tmp_path / "a" / "truth" / name).read_text())

    v1, v2 = truth("P001_V1_L.truth.json"), truth("P001_V2_L.truth.json")
    assert v2.start_utc_s - v1.start_utc_s == 28 * 86400
    assert (v1.seed, v2.seed) == (3001, 503001)
    with pytest.raises(ConfigError, match="second_visit_participants"):
        write_study(tmp_path / "d", participants=1, days=0.01, second_visit_participants=2)


def test_write_study_rejects_a_rate_the_device_cannot_record(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"P001_L\.cwa"):
        write_study(tmp_path, participants=1, days=0.01, sampling_rate_hz=30.0)


def test_write_study_rejects_no_participants(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        write_study(tmp_path, participants=0)


# --------------------------------------------------------------------------- SKDH finds the truth

NON_WEAR_TOLERANCE_MIN = 30.0
SLEEP_TOLERANCE_MIN = 60.0


def _load_builtin_wrist() -> Any:
    """The builtin wrist solution as a plain ``skdh.Pipeline``."""
    import skdh

    text = BUILTIN_WRIST.read_text(encoding="utf-8")
    # SKDH finds steps of other packages by attribute, so their modules must be imported
    module = ""
    for line in text.splitlines():
        key, _, value = line.strip().lstrip("- ").partition(": ")
        if key == "module":
            module = value
        elif key == "package" and value != "skdh":
            importlib.import_module(f"{value}.{module}")
    pipeline = skdh.Pipeline()
    pipeline.load(file=str(BUILTIN_WRIST), process_raise=True)
    return pipeline


def _non_wear_from_wear(wear: np.ndarray, time_s: np.ndarray) -> list[Interval]:
    out: list[Interval] = []
    previous = 0
    for a, b in np.asarray(wear, dtype=np.int64):
        if a > previous:
            out.append((float(time_s[previous]), float(time_s[a])))
        previous = int(b)
    if previous < time_s.size - 1:
        out.append((float(time_s[previous]), float(time_s[-1])))
    return out


@pytest.mark.filterwarnings("ignore::UserWarning:skdh")
def test_skdh_finds_the_planted_truth() -> None:
    """The demo's ground-truth test: a 2-day 50 Hz wrist, through .cwa and the builtin solution."""
    generated, truth = generate_recording(seed=1001, side="left")
    buffer = io.BytesIO()
    write_cwa(
        buffer,
        generated.time_s,
        generated.accel_g,
        generated.temperature_c,
        generated.sampling_rate_hz,
        serial=1,
    )
    rec = read_cwa(buffer.getvalue(), "memory://P001_L.cwa")
    del generated, buffer
    res = _load_builtin_wrist().run(
        time=rec.time_s,
        accel=rec.accel_g,
        temperature=rec.temperature_c,
        fs=rec.sampling_rate_hz,
        tz_name=truth.time_zone,
    )

    # (a) non-wear: every planted interval is found, and the total per day agrees
    found = _non_wear_from_wear(res["DETACH"]["wear"], rec.time_s)
    for planted in truth.non_wear:
        assert any(_overlap_s(planted, f) > 0.5 * (planted[1] - planted[0]) for f in found)
    start = truth.start_utc_s
    for day in range(2):
        window = (start + day * 86400.0, start + (day + 1) * 86400.0)
        planted_min = sum(_overlap_s(window, iv) for iv in truth.non_wear) / 60.0
        found_min = sum(_overlap_s(window, iv) for iv in found) / 60.0
        assert abs(found_min - planted_min) <= NON_WEAR_TOLERANCE_MIN, (day, planted_min, found_min)

    # (b) sleep: each planted night is a detected TSO of about the same length
    sleep = res["Sleep"]
    nights = [
        (float(s), float(s) + 60.0 * float(d), float(tst))
        for s, d, tst in zip(
            sleep["TSO Start Timestamp"],
            sleep["TSO Duration"],
            sleep["total sleep time"],
            strict=True,
        )
        if np.isfinite(s)
    ]
    assert len(truth.sleep) == 2
    for planted in truth.sleep:
        matches = [n for n in nights if _overlap_s(planted, (n[0], n[1])) > 0]
        assert len(matches) == 1, (planted, nights)
        tso_start, tso_end, tst_min = matches[0]
        planted_min = (planted[1] - planted[0]) / 60.0
        assert abs(tso_start - planted[0]) / 60.0 <= SLEEP_TOLERANCE_MIN
        assert abs((tso_end - tso_start) / 60.0 - planted_min) <= SLEEP_TOLERANCE_MIN
        assert abs(tst_min - planted_min) <= SLEEP_TOLERANCE_MIN

    # (c) activity: MVPA on every analysed day that has walking
    act = res["ActivityLevelClassification"]
    mvpa = np.asarray(act["wake MVPA 5s epoch [min]"], dtype=float)
    analysed = np.flatnonzero(np.isfinite(mvpa))
    assert analysed.size >= 2
    assert np.all(mvpa[analysed] > 0.0)
