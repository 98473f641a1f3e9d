"""Defang every URL, domain, e-mail address and IP in text meant for people, so nobody clicks one."""

from __future__ import annotations

import re

# A scheme, or a dotted name ending in letters (a domain), or a dotted quad: the forms that mail clients link.
_SCHEME = re.compile(r"\b(h)(tt)(ps?|p)(://)", re.IGNORECASE)
_OTHER_SCHEMES = re.compile(r"\b(ftp|sftp|ws|wss)://", re.IGNORECASE)
_IPV4 = re.compile(r"\b(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\b")
_DOTTED = re.compile(r"(?<=[\w-])\.(?=[\w-]*[A-Za-z][\w-]*\b)")
_AT = re.compile(r"(?<=\w)@(?=[\w-]+\[\.\])")


def defang(text: str) -> str:
    text = _SCHEME.sub(lambda m: f"{m.group(1)}xx{m.group(3)}{m.group(4)}", text)
    text = _OTHER_SCHEMES.sub(lambda m: f"{m.group(1)[0]}x{m.group(1)[1:]}://", text)
    text = _IPV4.sub(r"\1[.]\2[.]\3[.]\4", text)
    text = _DOTTED.sub("[.]", text)
    return _AT.sub("[@]", text)
