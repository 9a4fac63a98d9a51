"""Address text normalisation for the hotline geocoder (pure functions, no state).

Operators type what callers say: full-width digits, Chinese numerals, 栋/幢/#/号楼 variants, filler
words ("附近", "对面", "往东50米"), spaces and punctuation. Everything here maps such text onto one
canonical form that the gazetteer names are normalised to as well, so exact dictionary lookups work.
"""

from __future__ import annotations

import re
import unicodedata

# Characters dropped everywhere: whitespace and punctuation (ASCII and CJK). "#" and "-" are kept
# because they carry building / room numbers ("3#楼", "3-2-301").
_DROP_RE = re.compile(r"[\s,.;:!?'\"()\[\]{}<>/\\|_~`@$%^&*+=，。；：！？、“”‘’（）【】《》〈〉「」『』·…—]+")

_CN_DIGITS = {"零": 0, "〇": 0, "○": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5,
              "六": 6, "七": 7, "八": 8, "九": 9}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}
_CN_NUM = "零〇○一二三四五六七八九两十百千"

# Chinese numerals are converted only when followed by a counting suffix, so names such as
# 七马路, 八里庙村 or 五一小区 stay untouched.
_NUM_SUFFIX = r"(?=号|栋|幢|座|楼|单元|组|社|队|室|层|户|米|公里|门|排|#)"
_CN_NUM_RE = re.compile(rf"[{_CN_NUM}]+{_NUM_SUFFIX}")

_BUILDING_RE = re.compile(r"(\d+)(?:号楼|号栋|号幢|栋楼|栋|幢|座|#楼|#)")

# Filler: words that carry no address information, and relative directions with distances.
FILLER_WORDS = (
    "附近", "门口", "对面", "旁边", "那边", "这边", "这里", "那里", "那儿", "这儿", "大概", "大约",
    "左右", "一带", "周边", "周围", "后面", "前面", "后边", "前边", "里面", "边上", "跟前", "好像",
    "应该是", "可能是", "就是", "那个", "这个", "位置", "地方", "住在", "位于", "我家", "家住",
)
_DIRECTION_RE = re.compile(r"(?:往|向|朝)?[东南西北]{1,2}(?:边|侧|面|方向)?(?:约|大概)?\d+(?:米|公里)(?:处|左右)?")
_FILLER_RE = re.compile("|".join(sorted(FILLER_WORDS, key=len, reverse=True)))

# Administrative suffixes that operators leave out ("双辽" for 双辽市, "伊通" for 伊通县).
COUNTY_SUFFIXES = ("满族自治县", "蒙古族自治县", "自治县", "县", "区", "市")


def chinese_to_int(text: str) -> int:
    """Convert a Chinese numeral ("一百零三", "十二", "一二三", "两") to an int."""
    if not text:
        raise ValueError("empty numeral")
    if not any(ch in _CN_UNITS for ch in text):
        value = 0
        for ch in text:
            value = value * 10 + _CN_DIGITS[ch]
        return value
    total, current = 0, 0
    for ch in text:
        if ch in _CN_DIGITS:
            current = _CN_DIGITS[ch]
        else:
            unit = _CN_UNITS[ch]
            total += (current or 1) * unit
            current = 0
    return total + current


def _replace_cn_numeral(match: re.Match) -> str:
    try:
        return str(chinese_to_int(match.group(0)))
    except (KeyError, ValueError):
        return match.group(0)


def normalize_text(text: str) -> str:
    """Canonical form of address text: NFKC, no spaces/punctuation, Arabic numerals, 'N号楼'."""
    s = unicodedata.normalize("NFKC", text or "").lower()
    s = _DROP_RE.sub("", s)
    s = _CN_NUM_RE.sub(_replace_cn_numeral, s)
    s = _BUILDING_RE.sub(r"\1号楼", s)
    return s


def strip_filler(text: str) -> tuple[str, list[str]]:
    """Remove filler words and relative directions; return the rest and what was removed."""
    removed: list[str] = []

    def _drop(match: re.Match) -> str:
        removed.append(match.group(0))
        return " "

    s = _DIRECTION_RE.sub(_drop, text)
    s = _FILLER_RE.sub(_drop, s)
    return s, removed


def name_variants(name: str, level: str) -> list[tuple[str, float]]:
    """Normalised spellings of a region name with a quality weight (1.0 for the full name)."""
    base = normalize_text(name)
    out = [(base, 1.0)]
    if level in ("county", "city"):
        for suffix in COUNTY_SUFFIXES:
            if base.endswith(suffix) and len(base) - len(suffix) >= 2:
                out.append((base[: -len(suffix)], 0.97))
                break
    return out


def compound_variants(name: str) -> list[tuple[str, float]]:
    """Normalised spellings of a compound (小区/屯/组) name: full, and without '小区'."""
    base = normalize_text(name)
    out = [(base, 1.0)]
    if base.endswith("小区") and len(base) >= 4:
        out.append((base[:-2], 0.95))
    return out


_DOOR_RE = re.compile(r"(\d+(?:-\d+)?)号?")
_BUILDING_NO_RE = re.compile(r"(\d+)(?:号楼|号|楼)?")


def door_number(text: str) -> str:
    """A door number as the geocoder parses it from a query: "709号" / "七百零九号" → "709", "12-3号" → "12-3";
    anything else normalised as text."""
    s = normalize_text(str(text or ""))
    m = _DOOR_RE.fullmatch(s)
    return m.group(1) if m else s


def building_number(text: str) -> str:
    """A building number as the geocoder parses it: "3幢" / "3栋" / "5号楼" / "5号" → "3" / "5"."""
    s = normalize_text(str(text or ""))
    m = _BUILDING_NO_RE.fullmatch(s)
    return m.group(1) if m else s
