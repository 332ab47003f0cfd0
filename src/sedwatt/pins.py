"""Exact-version checks for the libraries whose private internals sedwatt reads.

A private name (a CodeCarbon tracker's hardware list, a PSDSEval helper) can change meaning in any release without a
deprecation; a renamed attribute read with a default, or a helper with new arguments, would not fail
but shift a figure. Each such library has one adapter module, the only place touching its private
names, and that adapter refuses any version but the one it was checked against (``require_exact``)
or, for an optional fast path with a public fallback, takes the fallback (``matches``).
"""

from __future__ import annotations

from importlib import metadata

from sedwatt.errors import SedwattError


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution`` (its pip name), or None when it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def matches(distribution: str, required: str) -> bool:
    return installed_version(distribution) == required


def require_exact(distribution: str, required: str) -> None:
    """Raise a one-line ``SedwattError`` unless exactly ``required`` of ``distribution`` is installed."""
    installed = installed_version(distribution)
    if installed == required:
        return
    found = f"{distribution} {installed} is installed" if installed else f"{distribution} is not installed"
    raise SedwattError(
        f"{found} but sedwatt reads its private internals and was checked against exactly {required}: "
        f"pip install {distribution}=={required}"
    )
