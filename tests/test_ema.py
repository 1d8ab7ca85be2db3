"""The EMA warm-up shared by ALAD, BiGAN / CE-BiGAN and the EBGAN family (issue 16, item 5)."""

from __future__ import annotations

import pytest

from anogen.nets import ema_decay_at


def test_ema_warm_up_schedule():
    assert ema_decay_at(0.999, 0) == pytest.approx(0.1)  # the first update mostly replaces the initialisation
    assert ema_decay_at(0.999, 10) == pytest.approx(11 / 20)
    assert ema_decay_at(0.999, 350) == pytest.approx(351 / 360)
    assert ema_decay_at(0.999, 10**6) == 0.999  # capped at the configured decay
    assert ema_decay_at(0.5, 100) == 0.5
    # what is left of the initial weights after n updates: prod of the decays; without warm-up 0.999^350 ~ 0.70
    left, n = 1.0, 350
    for t in range(n):
        left *= ema_decay_at(0.999, t)
    assert left < 0.01 and 0.999**n > 0.69
