"""Geocoder tests on a small hand-made 四平 gazetteer (no database).

The gazetteer holds the traps the hotline produces: the same road with neighbouring door numbers,
'3号楼' next to '13号楼', a compound name in two townships of one county (锦绣小区) and in two
counties (阳光小区), rural groups '三组' in two villages, road aliases and old names.
"""

from __future__ import annotations

import math

import pytest

from gis.errors import BadInput
from grids.addrnorm import chinese_to_int, normalize_text, strip_filler
from grids.geocode import CONFIDENT, Gazetteer, geocode, reverse_geocode

CITY, TX, TD, LS, YT, SL = "220300", "220302", "220303", "220322", "220323", "220382"
RENXING, YINGXIONG, PINGDONG = "220302001", "220302002", "220303001"
LISHU_TOWN, YITONG_TOWN, ZHENGJIATUN = "220322100", "220323100", "220382001"
C_RENXING, C_YINGXIONG, C_PINGDONG = "220302001001", "220302002001", "220303001001"
V_BALIMIAO, V_SHILIPU = "220322100201", "220322100202"
C_YITONG, C_LIAOHE = "220323100001", "220382001001"

REGIONS = [
    {"code": CITY, "level": "city", "name": "四平市", "short_name": "", "parent_code": "220000"},
    {"code": TX, "level": "county", "name": "铁西区", "short_name": "", "parent_code": CITY},
    {"code": TD, "level": "county", "name": "铁东区", "short_name": "", "parent_code": CITY},
    {"code": LS, "level": "county", "name": "梨树县", "short_name": "", "parent_code": CITY},
    {"code": YT, "level": "county", "name": "伊通满族自治县", "short_name": "伊通县", "parent_code": CITY},
    {"code": SL, "level": "county", "name": "双辽市", "short_name": "", "parent_code": CITY},
    {"code": RENXING, "level": "township", "name": "仁兴街道", "short_name": "", "parent_code": TX},
    {"code": YINGXIONG, "level": "township", "name": "英雄街道", "short_name": "", "parent_code": TX},
    {"code": PINGDONG, "level": "township", "name": "平东街道", "short_name": "", "parent_code": TD},
    {"code": LISHU_TOWN, "level": "township", "name": "梨树镇", "short_name": "", "parent_code": LS},
    {"code": YITONG_TOWN, "level": "township", "name": "伊通镇", "short_name": "", "parent_code": YT},
    {"code": ZHENGJIATUN, "level": "township", "name": "郑家屯街道", "short_name": "", "parent_code": SL},
    {"code": C_RENXING, "level": "village", "name": "仁兴社区", "short_name": "", "parent_code": RENXING},
    {"code": C_YINGXIONG, "level": "village", "name": "英雄社区", "short_name": "", "parent_code": YINGXIONG},
    {"code": C_PINGDONG, "level": "village", "name": "平东社区", "short_name": "", "parent_code": PINGDONG},
    {"code": V_BALIMIAO, "level": "village", "name": "八里庙村", "short_name": "", "parent_code": LISHU_TOWN},
    {"code": V_SHILIPU, "level": "village", "name": "十里堡村", "short_name": "", "parent_code": LISHU_TOWN},
    {"code": C_YITONG, "level": "village", "name": "伊通社区", "short_name": "", "parent_code": YITONG_TOWN},
    {"code": C_LIAOHE, "level": "village", "name": "辽河社区", "short_name": "", "parent_code": ZHENGJIATUN},
]

ROADS = [
    {"name": "英雄大街", "county_code": TX, "aliases": ["英雄街"], "old_names": ["胜利大街"]},
    {"name": "仁兴路", "county_code": TX, "aliases": [], "old_names": []},
    {"name": "北河路", "county_code": TX, "aliases": [], "old_names": []},
    {"name": "中央东路", "county_code": TD, "aliases": [], "old_names": ["东风路"]},
    {"name": "伊通大街", "county_code": YT, "aliases": [], "old_names": []},
    {"name": "辽河路", "county_code": SL, "aliases": [], "old_names": []},
]

NAMES = {r["code"]: r["name"] for r in REGIONS}


def _addr(village, grid_seq, road="", door="", compound="", building="", unit="", dx=0.0):
    township, county = village[:9], village[:6]
    text = "吉林省四平市" + NAMES[county] + NAMES[township] + NAMES[village] + road
    text += f"{door}号" if door else ""
    text += compound + (f"{building}号楼" if building else "")
    seq = len(ADDRESSES) + 1
    lon = 124.35 + int(village[-3:]) * 0.001 + int(village[6:9]) * 0.01 + int(county[-2:]) * 0.1 + dx
    lat = 43.16 + seq * 0.0005
    ADDRESSES.append({
        "code": f"{village}{seq:04d}", "full_text": text, "county_code": county,
        "township_code": township, "village_code": village, "road": road, "door_no": door,
        "compound": compound, "building": building, "unit": unit,
        "grid_code": f"{village}{grid_seq:03d}", "lon": lon, "lat": lat,
    })


ADDRESSES: list[dict] = []
# 英雄大街 100–110 in 仁兴社区: two grids; 锦绣小区 buildings 1–4 and 13 at 英雄大街123号.
for d in range(100, 111):
    _addr(C_RENXING, 1 if d < 105 else 2, road="英雄大街", door=str(d))
for b in (1, 2, 3, 4, 13):
    _addr(C_RENXING, 2, road="英雄大街", door="123", compound="锦绣小区", building=str(b))
for d in (1, 2, 3, 5, 8):
    _addr(C_RENXING, 1, road="仁兴路", door=str(d))
# 锦绣小区 again in 英雄街道 (same county 铁西); 阳光小区 in 铁西 and 铁东.
for b in (1, 2, 3, 5):
    _addr(C_YINGXIONG, 1, road="北河路", door="66", compound="锦绣小区", building=str(b))
for b in (1, 2):
    _addr(C_YINGXIONG, 1, road="北河路", door="88", compound="阳光小区", building=str(b))
for b in (1, 2):
    _addr(C_PINGDONG, 1, road="中央东路", door="12", compound="阳光小区", building=str(b))
for d in (1, 2, 3, 12):
    _addr(C_PINGDONG, 1, road="中央东路", door=str(d + 100))
# Rural: 八里庙村 三组 / 四组, 十里堡村 三组.
for d in (1, 2, 3, 17):
    _addr(V_BALIMIAO, 1, compound="三组", door=str(d))
for d in (1, 2):
    _addr(V_BALIMIAO, 1, compound="四组", door=str(d))
for d in (1, 2, 3):
    _addr(V_SHILIPU, 1, compound="三组", door=str(d))
_addr(C_YITONG, 1, road="伊通大街", door="88")
_addr(C_YITONG, 1, road="伊通大街", door="90")
_addr(C_LIAOHE, 1, road="辽河路", door="5")
_addr(C_LIAOHE, 1, road="辽河路", door="7")


@pytest.fixture(scope="module")
def gaz():
    return Gazetteer.from_rows(REGIONS, ROADS, ADDRESSES)


def _find(**kw):
    if "door" in kw:
        kw["door_no"] = kw.pop("door")
    return next(a for a in ADDRESSES if all(a[k] == v for k, v in kw.items()))


def _assert_address(res, **kw):
    want = _find(**kw)
    assert res.status == "matched", res.to_dict()
    assert res.precision in ("building", "door"), res.to_dict()
    assert res.matched["code"] == want["code"], res.to_dict()
    assert res.grid_code == want["grid_code"]
    return res


# ---------------------------------------------------------------- normalisation
def test_chinese_numerals():
    assert chinese_to_int("一百零三") == 103
    assert chinese_to_int("十二") == 12
    assert chinese_to_int("二十") == 20
    assert chinese_to_int("一二三") == 123
    assert chinese_to_int("两") == 2


def test_normalize_text_variants():
    for text in ("3号楼", "三号楼", "３号楼", "3栋", "3幢", "3#楼", "3#", "叁号楼".replace("叁", "三")):
        assert normalize_text(text) == "3号楼", text
    assert normalize_text("英雄大街 一百零三号") == "英雄大街103号"
    assert normalize_text("七马路八里庙村") == "七马路八里庙村"   # names keep their numerals


def test_strip_filler():
    rest, removed = strip_filler("英雄大街123号对面往东50米附近")
    assert rest.replace(" ", "") == "英雄大街123号"
    assert "对面" in removed and "附近" in removed


# ---------------------------------------------------------------- exact and complete
def test_full_address_matches_building(gaz):
    res = geocode(gaz, "吉林省四平市铁西区仁兴街道英雄大街123号锦绣小区3号楼")
    _assert_address(res, village_code=C_RENXING, compound="锦绣小区", building="3")
    assert res.precision == "building"
    assert res.confidence >= CONFIDENT
    assert res.explanation


def test_missing_province_and_city(gaz):
    res = geocode(gaz, "铁西区英雄大街103号")
    _assert_address(res, road="英雄大街", door="103")
    assert res.precision == "door" and res.confidence >= CONFIDENT


def test_neighbouring_door_numbers_do_not_mix(gaz):
    for d in ("104", "105"):
        res = geocode(gaz, f"英雄大街{d}号")
        _assert_address(res, road="英雄大街", door=d)


# ---------------------------------------------------------------- operator variants
def test_short_county_names(gaz):
    _assert_address(geocode(gaz, "伊通县伊通大街88号"), road="伊通大街", door="88")
    _assert_address(geocode(gaz, "伊通伊通大街90号"), road="伊通大街", door="90")
    _assert_address(geocode(gaz, "双辽辽河路5号"), road="辽河路", door="5")
    res = geocode(gaz, "双辽")
    assert res.precision == "county" and res.matched["code"] == SL


@pytest.mark.parametrize("text", ["英雄大街一百零三号", "英雄大街１０３号", "英雄大街103号", "英雄大街 103 号"])
def test_numeral_variants(gaz, text):
    _assert_address(geocode(gaz, text), road="英雄大街", door="103")


@pytest.mark.parametrize("word", ["3号楼", "三号楼", "３号楼", "3栋", "3幢", "3#楼", "3号栋"])
def test_building_word_variants(gaz, word):
    res = geocode(gaz, f"仁兴街道锦绣小区{word}")
    _assert_address(res, village_code=C_RENXING, compound="锦绣小区", building="3")


def test_3_vs_13_building(gaz):
    res3 = geocode(gaz, "仁兴街道锦绣小区3号楼")
    res13 = geocode(gaz, "仁兴街道锦绣小区13号楼")
    _assert_address(res3, village_code=C_RENXING, compound="锦绣小区", building="3")
    _assert_address(res13, village_code=C_RENXING, compound="锦绣小区", building="13")


def test_unit_is_parsed(gaz):
    res = geocode(gaz, "仁兴街道锦绣小区3栋2单元")
    _assert_address(res, village_code=C_RENXING, compound="锦绣小区", building="3")
    assert any("unit: 2" in e for e in res.explanation)


@pytest.mark.parametrize("filler", ["附近", "门口", "对面", "旁边", "那边", "这里", "大概", "往东50米", "往东五十米"])
def test_filler_is_ignored(gaz, filler):
    res = geocode(gaz, f"英雄大街108号{filler}")
    _assert_address(res, road="英雄大街", door="108")
    assert res.confidence >= CONFIDENT


def test_filler_in_front(gaz):
    _assert_address(geocode(gaz, "大概在英雄大街108号那边"), road="英雄大街", door="108")


def test_typo_in_road_name(gaz):
    res = geocode(gaz, "铁西区英熊大街102号")
    _assert_address(res, road="英雄大街", door="102")
    assert any("corrected" in e for e in res.explanation)


def test_missing_character_in_road_name(gaz):
    res = geocode(gaz, "中央路101号")   # 中央东路
    _assert_address(res, road="中央东路", door="101")


def test_typo_in_compound_name(gaz):
    res = geocode(gaz, "仁兴街道锦秀小区13号楼")
    _assert_address(res, village_code=C_RENXING, compound="锦绣小区", building="13")


def test_road_alias_and_old_name(gaz):
    _assert_address(geocode(gaz, "英雄街106号"), road="英雄大街", door="106")
    _assert_address(geocode(gaz, "胜利大街106号"), road="英雄大街", door="106")
    _assert_address(geocode(gaz, "东风路102号"), road="中央东路", door="102")


def test_spaces_and_punctuation(gaz):
    _assert_address(geocode(gaz, " 铁西区，英雄大街 - 107号。"), road="英雄大街", door="107")


def test_rural_group_address(gaz):
    res = geocode(gaz, "梨树县梨树镇八里庙村三组17号")
    _assert_address(res, village_code=V_BALIMIAO, compound="三组", door="17")


# ---------------------------------------------------------------- partial answers
def test_missing_door_number_stops_at_group(gaz):
    res = geocode(gaz, "八里庙村四组")
    assert res.status == "matched" and res.precision == "group"
    assert res.grid_code == f"{V_BALIMIAO}001"


def test_unknown_door_stops_at_road(gaz):
    res = geocode(gaz, "英雄大街999号")
    assert res.status == "matched" and res.precision == "road"
    assert res.grid_code is None             # the road crosses two grids
    assert res.matched["village_code"] == C_RENXING
    assert res.confidence < CONFIDENT        # the door the caller gave does not exist


def test_region_only(gaz):
    res = geocode(gaz, "四平市铁西区仁兴街道")
    assert res.precision == "township" and res.matched["code"] == RENXING
    assert res.grid_code is None


# ---------------------------------------------------------------- ambiguity and abstention
def test_compound_in_two_townships_of_one_county(gaz):
    res = geocode(gaz, "锦绣小区3号楼")
    assert res.status == "ambiguous"
    assert res.precision == "county" and res.matched["code"] == TX
    assert res.grid_code is None and res.confidence < CONFIDENT
    assert len(res.candidates) >= 1


def test_compound_in_two_counties(gaz):
    res = geocode(gaz, "阳光小区1号楼")
    assert res.status == "ambiguous"
    assert res.precision is None and res.matched is None
    assert res.confidence < CONFIDENT


def test_township_resolves_the_ambiguity(gaz):
    res = geocode(gaz, "英雄街道锦绣小区3号楼")
    _assert_address(res, village_code=C_YINGXIONG, compound="锦绣小区", building="3")
    res = geocode(gaz, "铁东阳光小区2号楼")
    _assert_address(res, village_code=C_PINGDONG, compound="阳光小区", building="2")


def test_rural_group_in_two_villages(gaz):
    res = geocode(gaz, "三组2号")
    assert res.status == "ambiguous" and res.grid_code is None
    assert res.precision == "township" and res.matched["code"] == LISHU_TOWN


def test_nonsense_is_not_found(gaz):
    res = geocode(gaz, "我也不知道在哪")
    assert res.status == "not_found" and res.matched is None and res.confidence == 0.0
    assert res.explanation


def test_result_to_dict(gaz):
    d = geocode(gaz, "英雄大街103号").to_dict()
    assert set(d) >= {"query", "normalized", "status", "precision", "confidence", "matched",
                      "candidates", "explanation", "grid_code"}


def test_bad_input(gaz):
    with pytest.raises(BadInput):
        geocode(gaz, None)


# ---------------------------------------------------------------- reverse geocoding
def test_reverse_geocode_nearest(gaz):
    a = _find(road="英雄大街", door="106")
    res = reverse_geocode(gaz, a["lon"] + 0.0001, a["lat"])
    assert res is not None and res.address["code"] == a["code"]
    expected = 0.0001 * 111320 * math.cos(math.radians(a["lat"]))
    assert abs(res.distance_m - expected) < 0.5


def test_reverse_geocode_too_far(gaz):
    assert reverse_geocode(gaz, 125.5, 44.0, max_distance_m=200) is None


def test_reverse_geocode_bad_input(gaz):
    with pytest.raises(BadInput):
        reverse_geocode(gaz, 200.0, 43.0)
