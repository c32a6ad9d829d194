"""One set of error rules: a CtglipError is the user's to fix (exit 2, one line), anything else is a bug (3)."""
from __future__ import annotations

import errno
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from ctglip_cli.common import fail_fast
from stages.common.errors import CtglipError, InputError, NoSpaceLeft, SetupError, is_no_space
from stages.common.ids import InvalidScanId
from stages.common.manifest import ManifestError
from stages.common.nifti import InputError as NiftiInputError
from stages.segment import WeightsMissing


def test_hierarchy_covers_the_stage_errors():
    assert NiftiInputError is InputError
    for error in (InvalidScanId, InputError):
        assert issubclass(error, InputError) and issubclass(error, ValueError)
    for error in (ManifestError, WeightsMissing, NoSpaceLeft):
        assert issubclass(error, SetupError) and not issubclass(error, (ValueError, OSError, RuntimeError))
    assert issubclass(SetupError, CtglipError) and issubclass(InputError, CtglipError)
    assert str(pickle.loads(pickle.dumps(NoSpaceLeft("no space left writing x")))) == "no space left writing x"


def test_user_errors_exit_2_with_one_line(capsys):
    for error in (SetupError("--workers must be at least 1"), InputError("/data/a.nii.gz: cannot read")):
        def fail(error=error):
            raise error
        with pytest.raises(typer.Exit) as stopped:
            fail_fast(fail)
        assert stopped.value.exit_code == 2
        err = capsys.readouterr().err
        assert str(error) in err and "Traceback" not in err


def test_any_other_exception_is_a_bug_with_traceback_and_exit_3(capsys):
    for fail in (lambda: {}["organ"], lambda: int("x"), lambda: [][0]):
        with pytest.raises(typer.Exit) as stopped:
            fail_fast(fail)
        assert stopped.value.exit_code == 3
        err = capsys.readouterr().err
        assert "Traceback" in err and "bug" in err


def test_typer_exits_pass_through_fail_fast():
    def leave():
        raise typer.Exit(1)
    with pytest.raises(typer.Exit) as stopped:
        fail_fast(leave)
    assert stopped.value.exit_code == 1


def test_no_space_is_recognised_in_every_writer_dialect():
    assert is_no_space(OSError(errno.ENOSPC, "No space left on device"))
    assert is_no_space(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert is_no_space(OSError("300000 requested and 131056 written"))  # np.save
    assert is_no_space(RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"))
    assert not is_no_space(OSError(errno.EACCES, "Permission denied"))
    assert not is_no_space(RuntimeError("CUDA out of memory"))


def test_the_console_script_sorts_errors_raised_outside_fail_fast():
    """The real entry point (not CliRunner): a bug exits 3 with its traceback, a user error 2 in one line."""
    script = ("import sys\nfrom ctglip_cli.main import app\nfrom stages.common.errors import SetupError\n"
              "@app.command('bug')\ndef bug():\n    {}['organ']\n"
              "@app.command('user')\ndef user():\n    raise SetupError('--x must be positive')\n"
              "app([sys.argv[1]])\n")
    root = Path(__file__).resolve().parents[1]
    runs = {name: subprocess.run([sys.executable, "-c", script, name], capture_output=True, text=True,
                                 cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
            for name in ("bug", "user")}
    assert runs["bug"].returncode == 3 and "Traceback" in runs["bug"].stderr and "KeyError" in runs["bug"].stderr
    assert runs["user"].returncode == 2 and "--x must be positive" in runs["user"].stderr
    assert "Traceback" not in runs["user"].stderr
