"""A missing optional dependency (extra) is a ConfigError naming the extra, not a traceback.

Each test hides one module (``sys.modules[name] = None`` makes importing it fail
as if it were not installed) and checks that the feature needing it says which
extra to install.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

import wearflow.executors
from wearflow import load_study
from wearflow.cli import app
from wearflow.errors import ConfigError
from wearflow.executors import TaskEvent, make_executor
from wearflow.extras import require, require_state_driver
from wearflow.storage import Store
from wearflow.task import TaskSpec
from wearflow.watch import watch_study

runner = CliRunner()

STUDY = """\
study: EXTRAS
input: raw/
output: results/
files:
  sensor: ["{participant}_{side}.csv"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
"""


def _hide(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)


def _study(root: Path, extra: str = "") -> Path:
    (root / "raw").mkdir(parents=True)
    (root / "study.yaml").write_text(STUDY + extra, encoding="utf-8")
    return root


class _ClosedExecutor:
    """Runs nothing; records that the watcher closed it."""

    closed = False

    def run(self, tasks: Sequence[TaskSpec], run_id: str, stop: threading.Event | None = None,
            claim: Callable[[TaskSpec], bool] | None = None) -> Iterator[TaskEvent]:
        return iter(())

    def close(self) -> None:
        self.closed = True


def test_require_returns_the_module_when_installed() -> None:
    assert require("json", "none", "this test") is sys.modules["json"]


def test_require_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, "distributed")
    with pytest.raises(ConfigError) as info:
        require("distributed", "dask", "the dask executor", subject="executor")
    assert info.value.message == ("the dask executor needs the optional dependency "
                                  "distributed: pip install 'wearflow[dask]'")
    assert info.value.subject == "executor"
    assert isinstance(info.value.__cause__, ImportError)


@pytest.mark.parametrize("name", ["dask", "dask://127.0.0.1:8786", "tcp://127.0.0.1:8786"])
def test_dask_executor_without_dask(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    _hide(monkeypatch, "distributed")
    with pytest.raises(ConfigError, match=r"pip install 'wearflow\[dask\]'") as info:
        make_executor(name, 1)
    assert "dask executor" in info.value.message
    with pytest.raises(ConfigError, match=r"wearflow\[dask\]"):
        _ = wearflow.executors.DaskExecutor


@pytest.mark.parametrize("where", ["option", "study"])
def test_cli_run_with_dask_executor_without_dask(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, where: str
) -> None:
    _hide(monkeypatch, "distributed")
    root = _study(tmp_path / "s", "executor: dask\n" if where == "study" else "")
    args = ["run", str(root)] + (["--executor", "dask"] if where == "option" else [])
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    (line,) = result.stderr.splitlines()
    assert "pip install 'wearflow[dask]'" in line
    assert not (root / "results").exists()  # refused before anything ran


@pytest.mark.parametrize("location", ["s3://bucket/raw", "s3a://bucket/raw"])
def test_s3_location_without_s3fs(monkeypatch: pytest.MonkeyPatch, location: str) -> None:
    _hide(monkeypatch, "s3fs")
    with pytest.raises(ConfigError, match=r"pip install 'wearflow\[s3\]'") as info:
        Store(location)
    assert "s3fs" in info.value.message
    assert info.value.subject == location


def test_local_storage_needs_no_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _hide(monkeypatch, "s3fs")
    Store(str(tmp_path)).check_reachable()


def test_postgres_state_url_without_psycopg(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, "psycopg")
    url = "postgresql+psycopg://wearflow:s3cret@127.0.0.1:5432/study"
    with pytest.raises(ConfigError, match=r"pip install 'wearflow\[postgres\]'") as info:
        require_state_driver(url)
    assert "psycopg" in info.value.message
    assert info.value.subject == "postgresql+psycopg://wearflow:***@127.0.0.1:5432/study"
    assert "s3cret" not in str(info.value)


def test_opening_a_postgres_state_without_psycopg(monkeypatch: pytest.MonkeyPatch) -> None:
    """The state opens its engine through the check: the error names the extra."""
    from wearflow.state import State

    _hide(monkeypatch, "psycopg")
    with pytest.raises(ConfigError, match=r"pip install 'wearflow\[postgres\]'"):
        State("postgresql+psycopg://wearflow:s3cret@127.0.0.1:5432/study")


def test_state_urls_that_need_no_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _hide(monkeypatch, "psycopg")
    require_state_driver(f"sqlite:///{tmp_path / 'state.db'}")
    require_state_driver("sqlite://")


def test_postgres_state_url_with_psycopg_installed() -> None:
    require_state_driver("postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def test_watch_local_folder_without_watchdog(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _hide(monkeypatch, "watchdog")
    study = load_study(_study(tmp_path / "s"))
    executor = _ClosedExecutor()
    with pytest.raises(ConfigError, match=r"pip install 'wearflow\[watch\]'") as info:
        watch_study(study, executor=executor, install_signal_handlers=False)
    assert "watchdog" in info.value.message
    assert executor.closed


def test_sqs_notifications_without_boto3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _hide(monkeypatch, "boto3")
    queue = "http://127.0.0.1:9/000000000000/wearflow"
    study = load_study(_study(tmp_path / "s", f"notifications:\n  sqs_queue_url: {queue}\n"))
    executor = _ClosedExecutor()
    with pytest.raises(ConfigError, match=r"pip install 'wearflow\[s3\]'") as info:
        watch_study(study, executor=executor, install_signal_handlers=False)
    assert "SQS notifications" in info.value.message and "boto3" in info.value.message
    assert info.value.subject == queue
    assert executor.closed


def test_cli_watch_without_watchdog(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _hide(monkeypatch, "watchdog")
    root = _study(tmp_path / "s")
    saved = {n: signal.getsignal(n) for n in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = runner.invoke(app, ["watch", str(root), "--executor", "inline"])
    finally:  # the watcher installed its own handlers in this process
        for number, handler in saved.items():
            signal.signal(number, handler)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    (line,) = result.stderr.splitlines()
    assert "pip install 'wearflow[watch]'" in line
