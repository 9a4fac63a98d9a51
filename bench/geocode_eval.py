"""Evaluate the hotline geocoder on noisy queries generated from the demo city.

Usage: python -m bench.geocode_eval --n 2000 --seed 1 [--json out.json] [--city-seed 2203]

Three suites: urban (and the demo city's older rural rows) with the operator noises of NOISES; rural
(villagers' addresses: 组 in every spelling, 自然村, 村 omitted, typos, landmarks, 曾用名, several at
once); unmatchable (villages, roads, groups and hamlets that do not exist, a village named with the
wrong township: no grid is right). A query is "matchable" when the components it states fit one grid.
Prints per suite and noise the share of right grids, confident answers and confident wrong ones, a
reliability table per confidence bucket, the threshold chosen on one half (>= 99.5% right) and the
precision on the held-out half, and queries/s. Nothing runs on import.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict

NOISES = ("clean", "drop_admin", "short_names", "numerals", "building_word", "filler", "typo",
          "alias", "missing_door", "ambiguous_compound")
FILLERS = ("附近", "门口", "对面", "旁边", "那边", "这里", "大概", "往东50米", "往北一百米", "后面")
BUILDING_WORDS = ("栋", "幢", "#楼", "号栋", "#")
_CN = "零一二三四五六七八九"


def _cn_number(n: int, rng: random.Random) -> str:
    """A spoken Chinese numeral for n (either positional '一二三' or '一百二十三' style)."""
    if n < 10:
        return _CN[n]
    if rng.random() < 0.3 or n >= 1000:
        return "".join(_CN[int(d)] for d in str(n))
    out, s = "", str(n)
    units = {3: ("百", "十", ""), 2: ("十", "")}[len(s)]
    zero = False
    for d, u in zip(s, units, strict=True):
        d = int(d)
        if d == 0:
            zero = True
            continue
        if zero and out:
            out += "零"
        zero = False
        out += ("" if (d == 1 and u == "十" and not out) else _CN[d]) + u
    return out


def _fullwidth(s: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in s)


class QueryMaker:
    """Writes noisy operator queries for addresses of one city."""

    def __init__(self, city, rng: random.Random):
        self.rng = rng
        self.regions = {r["code"]: r for r in city.regions}
        self.roads = {(r["county_code"], r["name"]): r for r in city.roads}
        self.chars = sorted({ch for a in city.addresses[:5000] for ch in (a["road"] + a["compound"])})
        self.compound_places = defaultdict(set)
        for a in city.addresses:
            if a["compound"] and a["building"]:
                self.compound_places[a["compound"]].add(a["village_code"])

    def parts(self, a: dict) -> dict:
        """Ordered query parts of an address (strings)."""
        county, town, vil = (self.regions[a[k]] for k in ("county_code", "township_code", "village_code"))
        return {
            "province": "吉林省", "city": "四平市", "county": county["name"], "township": town["name"],
            "village": "" if a["road"] else (vil.get("short_name") or vil["name"]),
            "road": a["road"], "door": f"{a['door_no']}号" if a["door_no"] else "",
            "compound": a["compound"], "building": f"{a['building']}号楼" if a["building"] else "",
            "unit": f"{a['unit']}单元" if a["unit"] else "",
        }

    def make(self, a: dict, noise: str) -> str | None:
        """One query for address a with the given noise, or None when it does not apply."""
        rng, p = self.rng, self.parts(a)
        if noise != "clean" and noise != "ambiguous_compound" and rng.random() < 0.7:
            p["province"] = p["city"] = ""     # operators rarely say the province
        if noise == "drop_admin":
            p["province"] = p["city"] = ""
            if rng.random() < 0.5:
                p["county"] = ""
        elif noise == "short_names":
            county = self.regions[a["county_code"]]
            short = county.get("short_name") or county["name"]
            p["county"] = rng.choice([short, short[:-1] if len(short) > 2 else short])
        elif noise == "numerals":
            conv = _fullwidth if rng.random() < 0.4 else (lambda s: _cn_number(int(s), rng))
            if a["door_no"].isdigit():
                p["door"] = conv(a["door_no"]) + "号"
            if a["building"].isdigit():
                p["building"] = conv(a["building"]) + "号楼"
        elif noise == "building_word":
            if not a["building"]:
                return None
            p["building"] = a["building"] + rng.choice(BUILDING_WORDS)
        elif noise == "filler":
            f = rng.choice(FILLERS)
            return self.join(p) + f if rng.random() < 0.7 else "大概在" + self.join(p) + f
        elif noise == "typo":
            field = "road" if a["road"] and (not a["compound"] or rng.random() < 0.5) else "compound"
            name = p[field]
            if len(name) < 3:
                return None
            i = rng.randrange(len(name) - 1)          # keep the suffix (路/街/小区/屯)
            if rng.random() < 0.5:
                p[field] = name[:i] + name[i + 1:]
            else:
                p[field] = name[:i] + rng.choice(self.chars) + name[i + 1:]
        elif noise == "alias":
            road = self.roads.get((a["county_code"], a["road"]))
            names = list(road.get("aliases") or ()) + list(road.get("old_names") or ()) if road else []
            if not names:
                return None
            p["road"] = rng.choice(names)
        elif noise == "missing_door":
            if not a["door_no"]:
                return None
            p["door"] = ""
        elif noise == "ambiguous_compound":
            if not a["building"] or len(self.compound_places[a["compound"]]) < 2:
                return None
            return p["county"] * (rng.random() < 0.5) + p["compound"] + p["building"]
        return self.join(p)

    @staticmethod
    def join(p: dict) -> str:
        """Concatenate the parts as an operator would type them."""
        return "".join(p[k] for k in ("province", "city", "county", "township", "village", "road", "door",
                                      "compound", "building", "unit"))


RURAL_NOISES = ("rural_clean", "group_digit", "group_word", "village_dropped", "hamlet_door", "hamlet_group",
                "village_typo", "no_door", "landmark", "old_name", "drop_admin", "combo")
UNMATCHABLE = ("unknown_village", "unknown_road", "unknown_group", "unknown_hamlet", "village_elsewhere")
GROUP_DIGIT = ("{n}组", "第{c}组", "第{n}组", "{c}组")
GROUP_WORD = ("第{c}村民小组", "{c}村民小组", "{c}社", "{n}社", "{c}队", "第{c}小组", "第{n}村民小组")
LANDMARKS = ("村委会旁边", "卫生室后面", "小学对面", "村部附近", "村口")
INVENTED = ("金龙", "玉泉", "凤鸣", "鹿鸣", "白鹤", "龙泉", "望海", "翠屏", "碧水", "松涛", "云峰", "紫荆", "瑞雪",
            "丹凤", "彩虹", "锦江", "银杏", "明月", "清泉", "秋实", "春雨", "海棠", "丁香", "蓝天", "雁鸣", "鹤岗")
BUCKETS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0001)


class RuralQueryMaker:
    """Writes villagers' addresses (村 + 组 + 门牌, 自然村, 村 omitted …) and queries for places that do not exist."""

    def __init__(self, city, gaz, rng: random.Random):
        from grids.addrnorm import group_number, normalize_text, village_stems

        self.rng, self.gaz, self.norm = rng, gaz, normalize_text
        self.regions = {r["code"]: r for r in city.regions}
        self.rural = [a for a in city.addresses if a.get("village_group")]
        self.stems = village_stems
        # grids of what a query states, to tell matchable queries (one grid fits) from under-determined ones
        self.grids: dict[tuple, set] = defaultdict(set)
        for a in city.addresses:
            if a["road"]:
                continue
            v, t, g = a["village_code"], a["township_code"], a["grid_code"]
            n = a.get("village_group") or group_number(a["compound"])
            h = a.get("natural_village") or ("" if n else a["compound"])
            d = a["door_no"]
            for key in (("vnd", v, n, d), ("vn", v, n), ("vhd", v, h, d), ("thd", t, h, d), ("vhnd", v, h, n, d)):
                self.grids[key].add(g)
        self.max_group = defaultdict(int)
        for key in self.grids:
            if key[0] == "vn" and key[2]:
                self.max_group[key[1]] = max(self.max_group[key[1]], int(key[2]))
        self.villages_by_short = defaultdict(set)
        for r in city.regions:
            if r["level"] == "village":
                self.villages_by_short[r.get("short_name") or r["name"]].add(r["parent_code"])
        self.chars = sorted({ch for r in city.regions if r["level"] == "village" for ch in r["short_name"]})

    def unknown(self, suffix: str) -> str:
        """A name with the suffix that the gazetteer does not know (nor any spelling of it)."""
        for _ in range(100):
            name = self.rng.choice(INVENTED) + suffix
            t = self.norm(name)
            if t not in self.gaz.lexicon and t[: -len(suffix)] not in self.gaz.lexicon:
                return name
        raise RuntimeError("no unknown name left")

    def make(self, a: dict, noise: str) -> tuple[str, tuple | None] | None:
        """(query, stated key) for rural address a, or None when the noise does not apply; key None = unmatchable."""
        rng = self.rng
        vil, town, county = (self.regions[a[k]] for k in ("village_code", "township_code", "county_code"))
        n = int(a["village_group"])
        c = _CN[n] if n < 10 else str(n)
        p = {"province": "吉林省", "city": "四平市", "county": county["name"], "township": town["name"],
             "village": vil["short_name"], "hamlet": "", "group": f"{c}组", "door": f"{a['door_no']}号", "tail": ""}
        if rng.random() < 0.7:
            p["province"] = p["city"] = ""
        if rng.random() < 0.4:
            p["county"] = ""
        key = ("vnd", a["village_code"], a["village_group"], a["door_no"])
        if noise == "group_digit":
            p["group"] = rng.choice(GROUP_DIGIT).format(n=n, c=c)
        elif noise == "group_word":
            p["group"] = rng.choice(GROUP_WORD).format(n=n, c=c)
        elif noise == "village_dropped":
            stems = self.stems(vil["short_name"])
            if not stems:
                return None
            p["village"] = stems[0]
        elif noise == "hamlet_door":
            p["village"] = p["village"] if rng.random() < 0.5 else ""
            p["hamlet"], p["group"] = a["natural_village"], ""
            key = ("vhd", a["village_code"], a["natural_village"], a["door_no"]) if p["village"] else \
                ("thd", a["township_code"], a["natural_village"], a["door_no"])
        elif noise == "hamlet_group":
            p["hamlet"] = a["natural_village"]
            key = ("vhnd", a["village_code"], a["natural_village"], a["village_group"], a["door_no"])
        elif noise == "village_typo":
            name = vil["short_name"]
            if len(name) < 3:
                return None
            i = rng.randrange(len(name) - 1)             # keep the 村
            p["village"] = name[:i] + rng.choice(self.chars) + name[i + 1:] if rng.random() < 0.7 else \
                name[:i] + name[i + 1:]
        elif noise == "no_door":
            p["door"] = ""
            key = ("vn", a["village_code"], a["village_group"])
        elif noise == "landmark":
            p["tail"] = rng.choice(LANDMARKS)
        elif noise == "old_name":
            if vil.get("aliases"):
                p["village"] = vil["aliases"][0]
            elif town.get("aliases"):
                p["township"] = town["aliases"][0]
            else:
                return None
        elif noise == "drop_admin":
            p["county"] = ""
            p["township"] = ""
        elif noise == "combo":
            p["group"] = rng.choice(GROUP_WORD).format(n=n, c=c)
            stems = self.stems(vil["short_name"])
            if stems and rng.random() < 0.5:
                p["village"] = stems[0]
            if rng.random() < 0.5:
                p["hamlet"] = a["natural_village"]
                key = ("vhnd", a["village_code"], a["natural_village"], a["village_group"], a["door_no"])
            p["tail"] = rng.choice(FILLERS + LANDMARKS)
        # names that do not exist, or contradict each other: no grid is right
        elif noise == "unknown_village":
            p["village"], key = self.unknown("村"), None
        elif noise == "unknown_road":
            p["village"], p["group"], key = "", self.unknown(rng.choice(("路", "大街"))), None
        elif noise == "unknown_group":
            p["group"], key = f"{_cn_number(self.max_group[a['village_code']] + 2, rng)}组", None
        elif noise == "unknown_hamlet":
            p["hamlet"], p["group"], key = self.unknown(rng.choice(("屯", "庄", "堡"))), "", None
        elif noise == "village_elsewhere":
            other = [t for t in self.regions.values() if t["level"] == "township" and t["parent_code"] == county["code"]
                     and t["code"] != town["code"] and t["code"] not in self.villages_by_short[vil["short_name"]]]
            if not other:
                return None
            p["township"], key = rng.choice(other)["name"], None
        text = "".join(p[k] for k in ("province", "city", "county", "township", "village", "hamlet", "group", "door",
                                      "tail"))
        return text, key


def _make_queries(city, gaz, n: int, seed: int) -> list[tuple[str, str, str, dict, str | None, bool]]:
    """(suite, noise, query, address, truth grid or None, matchable) — urban, rural and unmatchable."""
    rng = random.Random(seed)
    urban_maker, rural_maker = QueryMaker(city, rng), RuralQueryMaker(city, gaz, rng)
    classic = [a for a in city.addresses if not a.get("village_group")]
    out = []
    i = 0
    while len(out) < n:
        i += 1
        a = classic[rng.randrange(len(classic))]
        noise = NOISES[i % len(NOISES)]
        q = urban_maker.make(a, noise)
        if q is not None:
            out.append(("urban" if a["road"] else "legacy_rural", noise, q, a, a["grid_code"], True))
    for suite, noises, count in (("rural", RURAL_NOISES, n), ("unmatchable", UNMATCHABLE, n // 4)):
        got = 0
        while got < count:
            i += 1
            a = rural_maker.rural[rng.randrange(len(rural_maker.rural))]
            noise = noises[i % len(noises)]
            made = rural_maker.make(a, noise)
            if made is None:
                continue
            q, key = made
            if key is None:
                out.append((suite, noise, q, a, None, False))
            else:
                out.append((suite, noise, q, a, a["grid_code"], len(rural_maker.grids.get(key, ())) == 1))
            got += 1
    return out


def _stats(rows) -> dict:
    s = defaultdict(int)
    for _, _, _, _, truth, matchable, r in rows:
        s["n"] += 1
        s["matchable"] += matchable
        conf = r.grid_code is not None and r.confident
        right = r.grid_code is not None and r.grid_code == truth
        s["right"] += right
        s["right_matchable"] += right and matchable
        s["grid_answered"] += r.grid_code is not None
        s["confident"] += conf
        s["confident_wrong"] += conf and not right
    n = s["n"] or 1
    return {
        "n": s["n"], "matchable": s["matchable"],
        "accuracy": round(s["right"] / n, 4),
        "accuracy_matchable": round(s["right_matchable"] / s["matchable"], 4) if s["matchable"] else None,
        "grid_answered": round(s["grid_answered"] / n, 4),
        "confident_rate": round(s["confident"] / n, 4),
        "confident_precision": round(1 - s["confident_wrong"] / s["confident"], 4) if s["confident"] else None,
        "confident_wrong": s["confident_wrong"],
    }


def reliability(rows) -> list[dict]:
    """Per confidence bucket: answers with a grid, and the share whose grid is right."""
    out = []
    for lo, hi in zip(BUCKETS, BUCKETS[1:], strict=False):
        got = [(r.grid_code == truth) for *_, truth, _, r in rows
               if r.grid_code is not None and r.status == "matched" and lo <= r.confidence < hi]
        out.append({"bucket": f"{lo:.2f}–{min(hi, 1.0):.2f}", "n": len(got),
                    "right": round(sum(got) / len(got), 4) if got else None})
    return out


def choose_threshold(rows, target: float = 0.995) -> float:
    """Lowest threshold t such that grid answers at every cut >= t are >= target right (on these rows)."""
    answers = sorted(((r.confidence, r.grid_code == truth) for *_, truth, _, r in rows
                      if r.grid_code is not None and r.status == "matched"), reverse=True)
    best, right, k = 1.0, 0, 0
    i = 0
    while i < len(answers):
        cut = answers[i][0]
        while i < len(answers) and answers[i][0] == cut:
            right += answers[i][1]
            k += 1
            i += 1
        if right / k < target:
            break
        best = cut
    return round(best, 3)


def evaluate(gaz, city, n: int, seed: int) -> dict:
    """Generate n urban + n rural + n/4 unmatchable noisy queries, geocode them and return the metrics."""
    from grids.geocode import CONFIDENT, geocode

    queries = _make_queries(city, gaz, n, seed)
    results = [geocode(gaz, q) for _, _, q, _, _, _ in queries]
    # speed of a warm gazetteer (a server keeps it): a second, timed pass over the same queries
    t0, c0 = time.perf_counter(), time.process_time()
    for _, _, q, _, _, _ in queries:
        geocode(gaz, q)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    rows = [(*qq, r) for qq, r in zip(queries, results, strict=True)]
    out = {"n": len(rows), "seed": seed, "queries_per_s": round(len(rows) / elapsed, 1),
           "queries_per_cpu_s": round(len(rows) / cpu, 1), "confident_threshold": CONFIDENT, "suites": {},
           "by_noise": {}}
    for suite in ("urban", "legacy_rural", "rural", "unmatchable"):
        out["suites"][suite] = _stats([r for r in rows if r[0] == suite])
        out["by_noise"][suite] = {noise: _stats([r for r in rows if r[0] == suite and r[1] == noise])
                                  for noise in dict.fromkeys(r[1] for r in rows if r[0] == suite)}
    out["all"] = _stats(rows)
    out["reliability"] = reliability(rows)
    calib, held = rows[0::2], rows[1::2]
    chosen = choose_threshold(calib)
    held_conf = [r for r in held if r[-1].grid_code is not None and r[-1].confident]
    out["calibration"] = {
        "chosen_on_half_a": chosen, "threshold_in_code": CONFIDENT,
        "held_out_precision_at_threshold": round(sum(r[-1].grid_code == r[4] for r in held_conf) / len(held_conf), 4)
        if held_conf else None,
        "held_out_confident": len(held_conf),
    }
    out["wrong_confident"] = [{"suite": s, "noise": nz, "query": q, "truth": a["full_text"], "truth_grid": t,
                               "answer": r.to_dict()}
                              for s, nz, q, a, t, _, r in rows if r.grid_code is not None and r.confident
                              and r.grid_code != t][:50]
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--city-seed", type=int, default=2203)
    ap.add_argument("--json", default=None, help="write the metrics (and wrong confident answers) here")
    args = ap.parse_args(argv)

    from fixtures.city import build_city
    from grids.geocode import Gazetteer

    t0 = time.perf_counter()
    city = build_city(seed=args.city_seed)
    t1 = time.perf_counter()
    gaz = Gazetteer.from_rows(city.regions, city.roads, city.addresses)
    t2 = time.perf_counter()
    res = evaluate(gaz, city, args.n, args.seed)
    res["city_build_s"] = round(t1 - t0, 2)
    res["gazetteer_build_s"] = round(t2 - t1, 2)
    res["addresses"] = len(city.addresses)
    print(f"addresses {len(city.addresses)}, gazetteer built in {res['gazetteer_build_s']} s")
    print(f"queries {res['n']} (seed {args.seed}): {res['queries_per_s']} queries/s wall, "
          f"{res['queries_per_cpu_s']} per CPU-second")
    print(f"{'suite':14s} {'n':>5s} {'match':>5s} {'right':>6s} {'right/m':>7s} {'grid':>6s} {'conf':>6s} "
          f"{'conf.prec':>9s} {'conf.wrong':>10s}")
    for suite, st in [*res["suites"].items(), ("all", res["all"])]:
        am = "-" if st["accuracy_matchable"] is None else f"{st['accuracy_matchable']:.3f}"
        cp = "-" if st["confident_precision"] is None else f"{st['confident_precision']:.4f}"
        print(f"{suite:14s} {st['n']:5d} {st['matchable']:5d} {st['accuracy']:6.3f} {am:>7s} "
              f"{st['grid_answered']:6.3f} {st['confident_rate']:6.3f} {cp:>9s} {st['confident_wrong']:10d}")
    for suite, noises in res["by_noise"].items():
        print(f"-- {suite}")
        for noise, st in noises.items():
            am = "-" if st["accuracy_matchable"] is None else f"{st['accuracy_matchable']:.3f}"
            print(f"   {noise:18s} {st['n']:5d} {st['matchable']:5d} {st['accuracy']:6.3f} {am:>7s} "
                  f"{st['grid_answered']:6.3f} {st['confident_rate']:6.3f} {st['confident_wrong']:4d}")
    print("reliability (answers with a grid): confidence bucket, n, share right")
    for b in res["reliability"]:
        print(f"   {b['bucket']}  {b['n']:6d}  {'-' if b['right'] is None else format(b['right'], '.4f')}")
    cal = res["calibration"]
    print(f"threshold chosen on half A (>= 99.5% right): {cal['chosen_on_half_a']}; in code {cal['threshold_in_code']};"
          f" held-out half B precision at it: {cal['held_out_precision_at_threshold']} "
          f"({cal['held_out_confident']} confident)")
    print(f"wrong confident answers: {len(res['wrong_confident'])}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(res, f, ensure_ascii=False, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
