"""Building blocks of the notebooks' ipywidgets players: audio and figures are widget values, never captured output.

The players (pair player, A/B listening widget, feature explorer) show audio as ``ipywidgets.Audio`` and figures as
``ipywidgets.Image``, and they update by setting those values. They never print or ``display`` into an
``ipywidgets.Output`` while a cell runs. A headless client (nbclient, which papermill runs) mimics the Output
widget, so it sends every output captured there back to the kernel as a ``comm_msg``. It sends these on the shell
socket while it is still awaiting the cell's ``execute_reply`` on that same socket. With pyzmq's asyncio sockets the
reply can then sit in the socket unseen, and the run waits forever. Notebooks 01 and 04 hung this way with
``interactive=True``. Widget values travel as kernel→frontend state updates, which a client never echoes.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch

from mal.audio import wav_bytes


def audio_player(label: str, wav: np.ndarray | torch.Tensor, sample_rate: int) -> widgets.VBox:
    """A bold label above an audio player of ``wav`` (mono, any shape with one channel), played at its stored level."""
    player = widgets.Audio(value=wav_bytes(wav, sample_rate), format="wav", autoplay=False, loop=False)
    return widgets.VBox([widgets.HTML(f"<b>{escape(label)}</b>"), player])


def figure_png(fig: plt.Figure, dpi: int = 90) -> bytes:
    """The figure as PNG bytes (for an ``ipywidgets.Image``); the figure is closed, so it is not drawn twice."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def facts_html(facts: Mapping[str, Any]) -> str:
    """``name: value`` pairs as one HTML line; ``None`` values are left out."""
    return " · ".join(f"{escape(str(k))}: <b>{escape(str(v))}</b>" for k, v in facts.items() if v is not None)


def refill(dropdown: widgets.Dropdown, options: Sequence[Any], on_value: Callable[..., None]) -> None:
    """Give ``dropdown`` new ``options``, select the first, and call ``on_value`` (its value observer) once.

    The first new option can have the value of the one shown before (item 0 of another split, a file of the same
    name in another dataset), and then no change event would redraw; so the observer is detached while refilling.
    """
    dropdown.unobserve(on_value, names="value")
    dropdown.options = options
    dropdown.index = 0 if dropdown.options else None
    dropdown.observe(on_value, names="value")
    on_value()
