"""egmf.progress: a tqdm bar on a terminal, plain lines (no carriage returns) anywhere else."""

from __future__ import annotations

import io

from egmf.progress import LineProgress, progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_stream_gets_plain_lines_and_a_final_line_on_close():
    out = io.StringIO()
    bar = progress(total=5, desc="train", unit="step", stream=out, every=0.0)
    assert isinstance(bar, LineProgress)
    bar.update(2)
    bar.set_postfix(loss="0.912")
    bar.update(1)
    assert out.getvalue().splitlines() == ["train: 2/5 step [0m00s]", "train: 3/5 step [0m00s] loss=0.912"]
    bar.close()
    bar.close()  # closing twice writes the final line once
    lines = out.getvalue().splitlines()
    assert lines[-1] == "train: 3/5 step [0m00s] loss=0.912" and len(lines) == 3
    assert "\r" not in out.getvalue()


def test_lines_are_written_at_most_every_so_many_seconds():
    out = io.StringIO()
    bar = progress(total=1000, desc="x", stream=out, every=3600.0)
    for _ in range(1000):
        bar.update(1)
    assert out.getvalue() == "", "nothing before the interval has passed"
    bar.close()
    assert out.getvalue() == "x: 1000/1000 it [0m00s]\n"


def test_wrapping_an_iterable_counts_it_and_closes_at_the_end():
    out = io.StringIO()
    items = list(progress(range(4), desc="predict", unit="batch", initial=0, stream=out))
    assert items == [0, 1, 2, 3]
    assert out.getvalue() == "predict: 4/4 batch [0m00s]\n", "total taken from len(); one final line"


def test_an_unsized_iterable_shows_the_count_alone_and_initial_counts():
    out = io.StringIO()
    bar = progress((i for i in range(3)), desc="d", initial=10, stream=out)
    list(bar)
    assert out.getvalue() == "d: 13 it [0m00s]\n"


def test_disable_writes_nothing():
    out = io.StringIO()
    bar = progress(total=3, desc="train", stream=out, disable=True, every=0.0)
    bar.update(3)
    bar.close()
    assert out.getvalue() == ""


def test_a_terminal_gets_a_tqdm_bar():
    from tqdm.auto import tqdm

    out = Terminal()
    bar = progress(total=3, desc="train", stream=out)
    assert isinstance(bar, tqdm)
    bar.update(3)
    bar.close()
    assert "3/3" in out.getvalue()
