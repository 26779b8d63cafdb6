"""polymodal: index, search and understand text, images, audio and video together, offline on a CPU."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Collection", "Settings", "__version__"]

if TYPE_CHECKING:
    from polymodal.collection import Collection
    from polymodal.config import Settings


def __getattr__(name: str) -> Any:
    # Lazy: `import polymodal` stays instant; models and numpy load only when used.
    if name == "Collection":
        from polymodal.collection import Collection

        return Collection
    if name == "Settings":
        from polymodal.config import Settings

        return Settings
    raise AttributeError(name)
