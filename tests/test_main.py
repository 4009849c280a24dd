"""python -m cdropout: the tour runs, each sub-command has --help, a mismatch fails."""

import json
import os
import subprocess
import sys

import pytest

from cdropout import __main__ as tour


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "cdropout", *args],
        cwd=os.path.dirname(__file__),  # the source folder would shadow the build
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_tour_runs_every_section():
    done = _run()
    assert done.returncode == 0, done.stderr
    for words in (
        "isa path",
        "19/19 byte-identical",
        "no rescaling",
        "(d)",
        "NumPy recipe",
    ):
        assert words in done.stdout, words


@pytest.mark.parametrize("command", ["tour", *tour.COMMANDS])
def test_every_sub_command_has_help(command):
    done = _run(command, "--help")
    assert done.returncode == 0 and "usage" in done.stdout


def test_a_failed_self_check_makes_the_exit_status_nonzero(monkeypatch):
    monkeypatch.setattr(tour.reference, "dropout", lambda x, *a, **k: x * 0 + 1)
    assert tour.main(["check"]) == 1


@pytest.mark.skipif(tour.BENCH is None, reason="an installed package: no checkout")
def test_bench_runs_the_suite_of_the_source_checkout():
    done = _run("bench", "--help")
    assert done.returncode == 0, done.stderr
    assert "--quick" in done.stdout  # bench/run.py's own options
    assert done.stdout.startswith("usage: python -m cdropout bench")


def test_bench_says_where_the_suite_is_when_it_is_missing(
    monkeypatch, tmp_path, capsys
):
    monkeypatch.setattr(tour, "BENCH", tmp_path / "run.py")
    assert tour.main(["bench", "--quick"]) == 1
    assert "ships with cdropout's source" in capsys.readouterr().out


def test_other_commands_refuse_unknown_arguments():
    done = _run("config", "--quick")
    assert done.returncode == 2 and "unrecognized arguments" in done.stderr


def test_version_names_the_package_and_its_version():
    import cdropout

    done = _run("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"cdropout {cdropout.__version__}"


def test_speed_takes_sizes_threads_dtype_and_gives_json(capsys):
    assert tour.main(["speed", "--sizes", "1e3", "2000", "--threads", "1", "2",
                      "--dtype", "float64", "--json"]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert result["meta"]["usable_cpus"] >= 1
    cells = {(r["layout"], r["size"], r["contender"]) for r in result["records"]}
    for layout in ("in place", "new output"):
        for size in (1000, 2000):
            assert {(layout, size, "floor"), (layout, size, "cdropout 1t"),
                    (layout, size, "cdropout 2t")} <= cells  # fmt: skip
    assert {r["dtype"] for r in result["records"]} == {"float64"}


@pytest.mark.parametrize(
    "args", [["--sizes", "0"], ["--sizes", "1.5"], ["--sizes", "x"],
             ["--threads", "0"], ["--dtype", "int8"]],
)  # fmt: skip
def test_speed_refuses_bad_options_by_name(args):
    done = _run("speed", *args)
    assert done.returncode == 2 and "usage" in done.stderr
