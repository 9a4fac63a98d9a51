"""Tiny, named test geographies built from squares (MapIt style), loadable with grids.store.load_city.

`tiny_city()` — one county (990101) of two townships, each one village; village 990101001001 has two
grids sharing an edge at lon = X0 + 0.01, the other village one grid:

    lat Y0+0.01 +-----------+-----------+-----------------------+
                | grid ..001 | grid ..002 |   grid 990101002001001 |
                |  社区      |  社区      |   乡村                  |
    lat Y0      +-----------+-----------+-----------------------+
               X0        X0+0.01     X0+0.02                  X0+0.04
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shapely.geometry import MultiPolygon, Point, box

X0, Y0 = 124.30, 43.10


def sq(x0, y0, x1, y1) -> MultiPolygon:
    """A MultiPolygon square in degrees offset from (X0, Y0)."""
    return MultiPolygon([box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)])


@dataclass
class TinyCity:
    regions: list = field(default_factory=list)
    grids: list = field(default_factory=list)
    staff_roles: list = field(default_factory=list)
    staff: list = field(default_factory=list)
    centers: list = field(default_factory=list)
    departments: list = field(default_factory=list)
    roads: list = field(default_factory=list)
    addresses: list = field(default_factory=list)
    categories: list = field(default_factory=list)

    def summary(self) -> dict:
        return {k: len(v) for k, v in self.__dict__.items()}


def tiny_city() -> TinyCity:
    """The three-grid test city described in the module docstring."""
    c = TinyCity()
    c.regions = [
        dict(code="990100", level="city", name="测试市", short_name="测试市", parent_code=None, kind="市",
             urban=True, geom=sq(0, 0, 0.04, 0.01)),
        dict(code="990101", level="county", name="甲区", short_name="甲区", parent_code="990100", kind="区",
             urban=True, geom=sq(0, 0, 0.04, 0.01)),
        dict(code="990101001", level="township", name="东风街道", short_name="东风街道", parent_code="990101",
             kind="街道", urban=True, geom=sq(0, 0, 0.02, 0.01)),
        dict(code="990101002", level="township", name="新河镇", short_name="新河镇", parent_code="990101",
             kind="镇", urban=False, geom=sq(0.02, 0, 0.04, 0.01)),
        dict(code="990101001001", level="village", name="向阳社区", short_name="向阳社区", parent_code="990101001",
             kind="社区", urban=True, geom=sq(0, 0, 0.02, 0.01)),
        dict(code="990101002001", level="village", name="柳树村", short_name="柳树村", parent_code="990101002",
             kind="村", urban=False, geom=sq(0.02, 0, 0.04, 0.01)),
    ]
    c.grids = [
        dict(code="990101001001001", name="向阳社区第1网格", grid_type="社区", village_code="990101001001",
             geom=sq(0, 0, 0.01, 0.01)),
        dict(code="990101001001002", name="向阳社区第2网格", grid_type="社区", village_code="990101001001",
             geom=sq(0.01, 0, 0.02, 0.01)),
        dict(code="990101002001001", name="柳树村第1网格", grid_type="乡村", village_code="990101002001",
             geom=sq(0.02, 0, 0.04, 0.01)),
    ]
    c.staff_roles = [
        dict(role="grid_officer", label="网格员", applies_to="all", is_officer=True, sort=0),
        dict(role="grid_chief", label="网格长", applies_to="all", is_officer=False, sort=1),
        dict(role="police_chief", label="网格警长", applies_to="社区", is_officer=False, sort=2),
        dict(role="building_chief", label="楼栋长", applies_to="社区", is_officer=False, sort=3),
        dict(role="villager_rep", label="村民代表", applies_to="乡村", is_officer=False, sort=4),
    ]
    names = iter(["张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "赵敏", "黄强", "周婷", "吴刚", "郑丽", "孙浩"])
    for g in c.grids:
        roles = ["grid_officer", "grid_chief"] + (["police_chief", "building_chief"] if g["grid_type"] == "社区"
                                                  else ["villager_rep"])
        for r in roles:
            c.staff.append(dict(code=f"{g['code']}-{r}", name=next(names), phone="13900000000", role=r,
                                grid_code=g["code"]))
    for r in c.regions:
        rep = r["geom"].representative_point()
        c.centers.append(dict(code="ZZ" + r["code"], name=r["name"] + "综治中心", level=r["level"],
                              region_code=r["code"], phone="", geom=rep))
    c.departments = [
        dict(code="990101-ZJ", name="甲区住房和城乡建设局", kind="住建", level="county", region_code="990101"),
        dict(code="990101-GD", name="国网甲区供电公司", kind="供电", level="county", region_code="990101"),
        dict(code="990100-ZJ", name="测试市住房和城乡建设局", kind="住建", level="city", region_code="990100"),
    ]
    c.roads = [dict(name="人民大街", county_code="990101", aliases=["人民街"], old_names=["斯大林大街"], geom=None)]
    c.addresses = [
        dict(code="99010100100100001", full_text="测试市甲区东风街道人民大街1号向阳小区1号楼", county_code="990101",
             township_code="990101001", village_code="990101001001", road="人民大街", door_no="1",
             compound="向阳小区", building="1", unit="", grid_code="990101001001001",
             geom=Point(X0 + 0.005, Y0 + 0.005)),
        dict(code="99010100100100002", full_text="测试市甲区东风街道人民大街3号向阳小区2号楼", county_code="990101",
             township_code="990101001", village_code="990101001001", road="人民大街", door_no="3",
             compound="向阳小区", building="2", unit="", grid_code="990101001001002",
             geom=Point(X0 + 0.015, Y0 + 0.005)),
        dict(code="99010100200100001", full_text="测试市甲区新河镇柳树村一组5号", county_code="990101",
             township_code="990101002", village_code="990101002001", road="", door_no="5", compound="一组",
             building="", unit="", grid_code="990101002001001", geom=Point(X0 + 0.03, Y0 + 0.005)),
    ]
    c.categories = [
        dict(code="CJ", name="城乡建设", parent_code=None, dept_kind="住建", min_level="village"),
        dict(code="CJ01", name="物业管理", parent_code="CJ", dept_kind="住建", min_level="village"),
        dict(code="GD", name="供水供电", parent_code=None, dept_kind="供电", min_level="township"),
        dict(code="GD01", name="电压不稳定", parent_code="GD", dept_kind="供电", min_level="township"),
    ]
    return c


def get_user_by_username(db, username: str):
    """The app user of that name (as cases.auth.get_user gives it)."""
    from cases.auth import get_user

    return get_user(db, db.fetchone("SELECT id FROM app_user WHERE username = %s", (username,))["id"])
