"""SAMESTYLE_PROGRESS: a bar on a terminal, plain lines for a background job's log, or
nothing; a bad value is refused with the fix."""

import subprocess
import sys

import pytest

from samestyle import bars, config, output
from samestyle.errors import ConfigError


@pytest.fixture(autouse=True)
def _restore_mode():
    yield
    output.set_progress("auto")


def test_lines_mode_writes_one_line_per_refresh(monkeypatch, capsys):
    monkeypatch.setattr(bars, "LINE_INTERVAL_S", 0.0)
    output.set_progress("lines")
    assert output.progress_enabled()
    bar = bars.progress_bar(total=3, desc="work", unit="step")
    for _ in range(3):
        bar.update(1)
    bar.close()
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "\r" not in err and len(lines) >= 2, err
    assert all(line.startswith("work:") for line in lines)
    assert "3/3" in lines[-1]


def test_off_and_a_caller_switch_draw_nothing(capsys):
    output.set_progress("off")
    assert not output.progress_enabled()
    with bars.progress_bar(total=2, desc="quiet") as bar:
        bar.update(2)
    output.set_progress("bar")
    with bars.progress_bar(total=2, desc="quiet too", enabled=False) as bar:
        bar.update(2)
    assert capsys.readouterr().err == ""


def test_auto_draws_only_on_a_terminal(capsys):
    output.set_progress("auto")
    assert output.progress_mode() == "off"  # pytest's captured stderr is no terminal
    with pytest.raises(ValueError, match="use one of auto, bar, lines, off"):
        output.set_progress("verbose")


def test_a_bad_value_is_refused_with_the_fix():
    assert config.from_env({"SAMESTYLE_PROGRESS": "lines"}).progress == "lines"
    with pytest.raises(ConfigError) as err:
        config.from_env({"SAMESTYLE_PROGRESS": "loud"})
    assert "SAMESTYLE_PROGRESS is [loud]" in str(err.value) and "auto, bar, lines, off" in str(err.value.fix)


def test_the_cli_sets_the_mode_from_the_environment(tmp_path):
    """Through a real `samestyle` process: the env var reaches samestyle.output."""
    code = ("import sys; sys.argv = ['samestyle', 'collections', '--help']\n"
            "from samestyle.cli.main import cli\n"
            "from samestyle import output\n"
            "try:\n    cli.main(standalone_mode=False)\n"
            "finally:\n    print('MODE', output.progress_mode(), file=sys.stderr)\n")
    env = {"SAMESTYLE_PROGRESS": "lines", "SAMESTYLE_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert "MODE lines" in r.stderr, r.stderr
