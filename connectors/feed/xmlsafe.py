"""Hostile XML refused before anything reads it: defusedxml, and the declared encoding decoded by Python.

expat reads UTF-8, UTF-16 and Latin-1 only; Japanese feeds still declare Shift_JIS or EUC-JP, so the bytes are
decoded here with the declared codec and handed to the parser as text.
"""

from __future__ import annotations

import codecs
import re
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import fromstring

from gateway.intake import Refusal

_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"'][^>]*\?>")


class XmlRefused(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.detail)
        self.refusal = refusal


def parse_xml(data: bytes, allow_internal_entities: bool = False) -> Element:
    """The document's root. Raises XmlRefused with the reason (DTD entities, external references, bad XML)."""
    text = _decode(data)
    try:
        # No DTD at all by default: nothing to expand and nothing to fetch. `allow_internal_entities` lets a
        # DTD with internal entities through (expat bounds their expansion); external ones stay refused.
        strict = not allow_internal_entities
        return fromstring(text, forbid_dtd=strict, forbid_entities=strict, forbid_external=True)
    except EntitiesForbidden:
        raise XmlRefused(
            Refusal("xml:entities", "the feed declares XML entities (refused: entity expansion)")
        ) from None
    except ExternalReferenceForbidden:
        raise XmlRefused(
            Refusal("xml:external-reference", "the feed refers to external entities or a DTD to fetch")
        ) from None
    except DTDForbidden:
        raise XmlRefused(Refusal("xml:dtd", "the feed carries a DTD (refused: entities and DTD fetches)")) from None
    except DefusedXmlException as exc:
        raise XmlRefused(Refusal("xml:refused", f"hostile XML: {type(exc).__name__}")) from None
    except ParseError as exc:
        raise XmlRefused(Refusal("feed:unparseable", f"not well-formed XML: {exc}")) from None


def _decode(data: bytes) -> str:
    declared = _DECLARATION.match(data)
    encoding = declared.group(1).decode("ascii") if declared else "utf-8"
    if data.startswith(codecs.BOM_UTF8):
        encoding, data = "utf-8", data[len(codecs.BOM_UTF8) :]
    try:
        text = data.decode(encoding)
    except LookupError:
        raise XmlRefused(Refusal("feed:unknown-encoding", f"unknown encoding {encoding!r}")) from None
    except UnicodeDecodeError as exc:
        raise XmlRefused(Refusal("feed:undecodable", f"not valid {encoding}: byte {exc.start}")) from None
    # The parser gets text: its declaration must no longer name a byte encoding.
    return re.sub(r"^\s*<\?xml[^>]*\?>", '<?xml version="1.0"?>', text, count=1)
