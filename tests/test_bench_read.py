"""The read benchmark's command line refuses what it cannot measure, in one line, before it
touches a database."""

from __future__ import annotations

import pytest

from bench import read


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rounds", "0"], "--rounds must be at least 1, not 0"),
        (["--workers", "0"], "--workers must be at least 1, not 0"),
    ],
)
def test_a_count_below_one_is_refused_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        read.main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
