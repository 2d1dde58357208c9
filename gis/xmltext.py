"""The one cleaner for text written into XML (KML, GPX, Open311 XML).

XML 1.0 forbids most C0 control characters, lone surrogates and U+FFFE/U+FFFF; one of
them in a stored description makes the whole document malformed (or fails to encode).
Old rows may hold such text, so every XML writer passes its text through ``xml_text``
on the way out, whatever was cleaned on the way in.
"""

from __future__ import annotations

import re

# Characters XML 1.0 refuses, plus C1 controls (allowed but never meant as text).
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def xml_text(value: object) -> str | None:
    """Return ``value`` as text an XML 1.0 document may carry; ``None`` stays ``None``.

    Parameters
    ----------
    value : object
        Anything; non-strings are converted with ``str``.

    Returns
    -------
    str or None
        The text without the characters XML 1.0 forbids (and without C1 controls).
    """
    if value is None:
        return None
    return _XML_ILLEGAL.sub("", str(value))


__all__ = ["xml_text"]
