from __future__ import annotations

import os
import signal
import time

import pytest

from qflow.runtime.interrupt import Terminated, describe, exit_code, sigterm_as_interrupt


def test_sigterm_raises_terminated_inside_the_block_only():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated) as info, sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # interrupted by the handler
    assert isinstance(info.value, KeyboardInterrupt)  # everything that cleans up after Ctrl-C
    assert exit_code(info.value) == 143 and describe(info.value) == "terminated by SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before


def test_ctrl_c_keeps_its_code_and_words():
    assert exit_code(KeyboardInterrupt()) == 130 and describe(KeyboardInterrupt()) == "interrupted"
