"""Writing a matplotlib figure as PNG to any fsspec URI (reports, sweep charts)."""

from __future__ import annotations

import io


def save_png(fig, fs, uri: str, dpi: int = 100) -> None:
    """Lay out ``fig``, write it to ``uri`` on filesystem ``fs`` (local or s3://), close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    with fs.open(uri, "wb") as f:
        f.write(buf.getvalue())
