"""The one progress-bar helper: every long loop of the package shows its bar through it."""

from __future__ import annotations

from tqdm.auto import tqdm


def progress_bar(
    iterable=None,
    *,
    desc: str,
    unit: str,
    progress: bool | None = None,
    total: int | None = None,
    initial: int = 0,
    leave: bool = True,
    min_items: int = 0,
):
    """A tqdm bar over ``iterable`` (or a manual one of ``total`` items).

    ``progress``: True shows it, False hides it, None shows it only on a terminal (tqdm's
    ``disable=None``). Loops of fewer than ``min_items`` items never show one.
    """
    n = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
    hidden = progress is False or (n is not None and n < min_items)
    return tqdm(
        iterable,
        desc=desc,
        unit=unit,
        total=total,
        initial=initial,
        leave=leave,
        disable=True if hidden else (None if progress is None else False),
    )


def progress_write(message: str) -> None:
    """Prints a line without breaking the progress bars on screen."""
    tqdm.write(message)
