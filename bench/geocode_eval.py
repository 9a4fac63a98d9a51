"""Evaluate the hotline geocoder on noisy queries generated from the demo city.

Usage: python -m bench.geocode_eval --n 2000 --seed 1 [--json out.json] [--city-seed 2203]

Each query is written from one standard address (the truth is its grid) with one kind of operator
noise. Prints accuracy, precision of confident answers at grid level, abstention, a per-noise
breakdown and queries/s. Nothing runs on import.
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


def evaluate(gaz, city, n: int, seed: int) -> dict:
    """Generate n noisy queries, geocode them and return the metrics."""
    from grids.geocode import CONFIDENT, geocode

    rng = random.Random(seed)
    maker = QueryMaker(city, rng)
    queries = []
    while len(queries) < n:
        a = city.addresses[rng.randrange(len(city.addresses))]
        noise = NOISES[len(queries) % len(NOISES)]
        q = maker.make(a, noise)
        if q is not None:
            queries.append((noise, q, a))
    stats = defaultdict(lambda: defaultdict(int))
    wrong_confident = []
    t0 = time.perf_counter()
    results = [geocode(gaz, q) for _, q, _ in queries]
    elapsed = time.perf_counter() - t0
    for (noise, q, a), r in zip(queries, results, strict=True):
        for key in (noise, "all"):
            s = stats[key]
            s["n"] += 1
            s[r.status] += 1
            if r.grid_code is None:
                s["abstain"] += 1
            else:
                s["answered"] += 1
                s["correct"] += r.grid_code == a["grid_code"]
            if r.grid_code is not None and r.confidence >= CONFIDENT and r.status == "matched":
                s["confident"] += 1
                s["confident_correct"] += r.grid_code == a["grid_code"]
                if key == "all" and r.grid_code != a["grid_code"]:
                    wrong_confident.append({"noise": noise, "query": q, "truth": a["full_text"],
                                            "truth_grid": a["grid_code"], "answer": r.to_dict()})
    out = {"n": n, "seed": seed, "queries_per_s": round(n / elapsed, 1), "confident_threshold": CONFIDENT,
           "by_noise": {}}
    for key, s in stats.items():
        out["by_noise"][key] = {
            "n": s["n"],
            "accuracy": round(s["correct"] / s["n"], 4),
            "confident_precision": round(s["confident_correct"] / s["confident"], 4) if s["confident"] else None,
            "confident_rate": round(s["confident"] / s["n"], 4),
            "answered_precision": round(s["correct"] / s["answered"], 4) if s["answered"] else None,
            "abstention": round(s["abstain"] / s["n"], 4),
            "ambiguous": round(s["ambiguous"] / s["n"], 4),
            "not_found": round(s["not_found"] / s["n"], 4),
        }
    out["all"] = out["by_noise"].pop("all")
    out["wrong_confident"] = wrong_confident[:50]
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
    a = res["all"]
    print(f"addresses {len(city.addresses)}, gazetteer built in {res['gazetteer_build_s']} s")
    print(f"queries {args.n} (seed {args.seed}): {res['queries_per_s']} queries/s")
    print(f"accuracy (right grid / all)            {a['accuracy']:.3f}")
    print(f"precision of confident answers (>= {res['confident_threshold']}) "
          f"{a['confident_precision']}  ({a['confident_rate']:.1%} of queries confident)")
    print(f"abstention (no grid)                   {a['abstention']:.3f}")
    print(f"{'noise':20s} {'n':>5s} {'acc':>6s} {'conf.prec':>9s} {'conf.rate':>9s} {'abstain':>8s} {'ambig':>6s}")
    for noise, s in res["by_noise"].items():
        cp = "-" if s["confident_precision"] is None else f"{s['confident_precision']:.3f}"
        print(f"{noise:20s} {s['n']:5d} {s['accuracy']:6.3f} {cp:>9s} {s['confident_rate']:9.3f} "
              f"{s['abstention']:8.3f} {s['ambiguous']:6.3f}")
    print(f"wrong confident answers: {len(res['wrong_confident'])}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(res, f, ensure_ascii=False, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
