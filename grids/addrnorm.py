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
_NUM_SUFFIX = r"(?=号|栋|幢|座|楼|单元|村民小组|村民组|小组|组|社|队|室|层|户|米|公里|门|排|#)"
_CN_NUM_RE = re.compile(rf"[{_CN_NUM}]+{_NUM_SUFFIX}")

_BUILDING_RE = re.compile(r"(\d+)(?:号楼|号栋|号幢|栋楼|栋|幢|座|#楼|#)")

# 村民小组 in every spelling people use: 3组, 第三组, 第三村民小组, 三社, 三队, 3小组 → "3组".
# (社 not before 区: "一社区" is a community; 队 not in 大队.)
_GROUP_RE = re.compile(r"第?(\d+)(?:村民小组|村民组|小组|小队|组|社(?!区)|队)")

# Endings of 自然村 / 屯 names across China (north-east 屯/窝堡, north 庄/营/坨/堡, 江南 浜/埭/兜/港/桥,
# south-west 寨/坝/坪 ...); used to classify names in imports and unknown spans in queries.
HAMLET_SUFFIXES = ("窝堡", "甸子", "家子", "屯", "庄", "营", "坨", "堡", "浜", "埭", "兜", "港", "桥", "湾", "寨",
                   "坝", "坪", "岗", "沟", "铺", "店", "洼", "圩", "垸", "冲", "塘", "岭", "台", "口")

# Rural landmarks operators add ("新发村村委会", "三组卫生室旁边"): recognised, located by the rest.
LANDMARK_WORDS = (
    "村民委员会", "村委会", "村部", "大队部", "党群服务中心", "卫生室", "卫生所", "卫生院", "小学", "中学", "学校",
    "幼儿园", "村小", "文化广场", "文化大院", "敬老院", "养老院", "供销社", "小卖部", "超市", "商店", "粮库",
    "村口", "屯口", "路口", "桥头", "车站", "加油站", "派出所", "水库", "广场",
)
_LANDMARK_RE = re.compile("|".join(sorted(LANDMARK_WORDS, key=len, reverse=True)))

# What the end of an unknown span says it names (a village we do not know, a road that does not exist ...).
_PLACE_SUFFIXES = (
    ("village", ("村", "社区", "嘎查")),
    ("township", ("镇", "乡", "街道", "苏木")),
    ("county", ("县", "区", "旗", "市")),
    ("road", ("路", "街", "大街", "大道", "巷", "胡同", "道")),
    ("compound", ("小区", "花园", "家园", "苑", "嘉园", "名居", "新城", "公寓", "大厦", "园", "城")),
    ("hamlet", HAMLET_SUFFIXES),
)

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
    s = _GROUP_RE.sub(r"\1组", s)
    return s


def group_number(text: str) -> str | None:
    """The 村民小组 number of a component value ('三组', '3', '第三村民小组', '三社' → '3'), else None."""
    s = normalize_text(str(text or ""))
    if s.isdigit():
        return str(int(s))
    m = re.fullmatch(r"(\d+)组", s)
    return str(int(m.group(1))) if m else None


def is_hamlet_name(name: str) -> bool:
    """True when a name ends like a 自然村 / 屯 (王家屯, 李庄, 张家堡, 沈家浜 ...)."""
    return len(name) >= 2 and name.endswith(HAMLET_SUFFIXES)


def strip_landmarks(text: str) -> tuple[str, list[str]]:
    """Remove rural landmark words (村委会, 小学, 卫生室 ...); return the rest and what was removed."""
    removed: list[str] = []

    def _drop(match: re.Match) -> str:
        removed.append(match.group(0))
        return " "

    return _LANDMARK_RE.sub(_drop, text), removed


def starts_with_landmark(text: str, pos: int) -> bool:
    """True when a landmark word starts at text[pos]."""
    return _LANDMARK_RE.match(text, pos) is not None


def place_kind(span: str) -> str | None:
    """The kind of place an unknown span names by its ending (village, road, hamlet ...), else None."""
    if len(span) < 2:
        return None
    for kind, suffixes in _PLACE_SUFFIXES:
        for suf in suffixes:
            if span.endswith(suf) and len(span) > len(suf):
                return kind
    return None


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


def village_stems(name: str) -> list[str]:
    """A village's name as callers shorten it: 新发村 → 新发, 站前社区 → 站前 (at least 2 characters)."""
    base = normalize_text(name)
    for suffix in ("村民委员会", "居民委员会", "社区", "村"):
        if base.endswith(suffix) and len(base) - len(suffix) >= 2:
            return [base[: -len(suffix)]]
    return []


def township_stems(name: str) -> list[str]:
    """A township's name as callers shorten it: 孤家子镇 → 孤家子, 叶赫满族镇 → 叶赫 (at least 2 characters)."""
    base = normalize_text(name)
    for suffix in ("满族镇", "满族乡", "蒙古族乡", "街道", "镇", "乡"):
        if base.endswith(suffix) and len(base) - len(suffix) >= 2:
            return [base[: -len(suffix)]]
    return []


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
