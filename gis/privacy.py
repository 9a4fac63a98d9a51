"""Masking of personal data for display: one implementation for every place that shows a name, a phone
number or an ID number to someone who may not see it in full."""

from __future__ import annotations


def mask_name(name: str | None) -> str | None:
    """张三丰 → 张**."""
    if not name:
        return name
    return name[0] + "*" * max(1, len(name) - 1)


def mask_phone(phone: str | None) -> str:
    """13912345678 → 139****5678; short numbers → ****; nothing → ""."""
    p = (phone or "").strip()
    if not p:
        return ""
    if len(p) < 7:
        return "****"
    return p[:3] + "****" + p[-4:]


def mask_id_no(id_no: str | None) -> str | None:
    """220302199001011234 → 2203**********1234."""
    if not id_no:
        return id_no
    s = str(id_no)
    return s[:4] + "*" * max(0, len(s) - 8) + s[-4:] if len(s) > 8 else "*" * len(s)
