"""nlpbook's messages reach a script, a notebook or the CLI by default, once, and can be silenced."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import logging, nlpbook
log = logging.getLogger("nlpbook.corpus")
log.info("info by default")
log.warning("a warning")
nlpbook.set_verbosity("warning")
log.info("hidden info")
log.warning("still warned")
nlpbook.set_verbosity("error")
log.warning("hidden warning")
nlpbook.set_verbosity("info")
logging.basicConfig(format="USER %(levelname)s %(name)s %(message)s")  # the user's own configuration
log.warning("printed once, the user's way")
"""


def run(script: str, **env: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ, **env}, check=True
    )
    assert result.stdout == ""  # messages go to stderr, never into a program's output
    return result.stderr.splitlines()


def test_messages_reach_stderr_by_default_and_step_aside_for_the_users_logging() -> None:
    assert run(SCRIPT) == [
        "nlpbook: info by default",
        "nlpbook: warning: a warning",
        "nlpbook: warning: still warned",
        "USER WARNING nlpbook.corpus printed once, the user's way",
    ]


def test_the_environment_sets_the_verbosity() -> None:
    script = "import logging, nlpbook\nlog = logging.getLogger('nlpbook')\nlog.info('hi')\nlog.warning('w')"
    assert run(script, NLPBOOK_VERBOSITY="warning") == ["nlpbook: warning: w"]
