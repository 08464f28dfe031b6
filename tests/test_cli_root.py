import subprocess
import sys

from musicjudge import __version__


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "musicjudge", *args], capture_output=True, text=True)


def test_version():
    r = run_cli("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"musicjudge {__version__}"


def test_help_lists_commands():
    r = run_cli("--help")
    assert r.returncode == 0
    assert "Usage" in r.stdout
