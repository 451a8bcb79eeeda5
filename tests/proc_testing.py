"""Subprocesses of tests: no wall-clock limit of their own, and none left behind.

A slow machine must not fail a test that would pass (pytest-timeout, pytest.ini, is the one
generous safety net), and a test that stops early, for any reason, kills the whole process
group it started (a recipe's tools and their workers), not just the shell at its top.
"""
import os
import signal
import subprocess


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    """subprocess.run(cmd, capture_output=True, text=True, **kwargs) in a session of its own."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kwargs)
    try:
        out, err = proc.communicate()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # what is left of the group, if anything
        except ProcessLookupError:
            pass
        proc.wait()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
