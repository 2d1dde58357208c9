"""The demo town's responsible units: county departments, offices, committees, companies.

Each county department answers for one or two communities (包保) and for the categories
whose functional unit it is; every community has its residents' committee; the two
sub-district offices answer for their communities (属地).
"""

from __future__ import annotations

import numpy as np

from gis.demo_town.data import POOLS


def build_units(
    rng: np.random.Generator, communities: list[dict], categories: list[dict]
) -> list[dict]:
    """Invent the responsible units: departments, sub-district offices, residents' committees.

    Parameters
    ----------
    rng : numpy.random.Generator
        The town's one generator (draws the 包保 communities of each department).
    communities : list of dict
        From ``build_partition`` (``name``, ``code``, ``subdistrict_code``).
    categories : list of dict
        From ``read_categories``: a department answers for the categories whose
        ``functional_unit`` it is.

    Returns
    -------
    list of dict
        Keys ``name, kind, contact, phone, communities, functional_categories``; kind is
        department, subdistrict, community or company.
    """

    def functional(unit: str) -> str:
        return ";".join(c["code"] for c in categories if c["functional_unit"] == unit)

    codes = [f"{c['subdistrict_code']}-{c['code']}" for c in communities]
    departments = POOLS["departments"]
    # 包保: each county department answers for one or two communities, round the list.
    order = list(codes)
    rng.shuffle(order)
    cycle = order * 3
    units, k = [], 0
    given = POOLS["given_names"]
    phone = iter(range(1, 200))

    def person(i: int) -> str:
        surnames = POOLS["surnames"]
        return surnames[(i * 7) % len(surnames)] + given[i % len(given)]

    for i, dept in enumerate(departments):
        n = 2 if i < len(codes) - len(departments) + 8 else 1
        mine = sorted(set(cycle[k : k + n]))
        k += n
        units.append(
            {
                "name": dept,
                "kind": "department",
                "contact": person(i),
                "phone": f"138000{next(phone):05d}",
                "communities": ";".join(mine),
                "functional_categories": functional(dept),
            }
        )
    for sub_code, office in (("001", "云岭镇人民政府"), ("002", "南溪街道办事处")):
        mine = [c for c in codes if c.startswith(sub_code)]
        units.append(
            {
                "name": office,
                "kind": "subdistrict",
                "contact": person(len(units)),
                "phone": f"138000{next(phone):05d}",
                "communities": ";".join(mine),
                "functional_categories": "",
            }
        )
    for com, code in zip(communities, codes, strict=True):
        units.append(
            {
                "name": f"{com['name']}居委会",
                "kind": "community",
                "contact": person(len(units)),
                "phone": f"138000{next(phone):05d}",
                "communities": code,
                "functional_categories": "",
            }
        )
    for company in POOLS["companies"]:
        if "communities_ending" in company:
            coms = [c for c in codes if c.endswith(tuple(company["communities_ending"]))]
        else:
            coms = [codes[i] for i in company["communities_at"]]
        units.append(
            {
                "name": company["name"],
                "kind": "company",
                "contact": person(len(units)),
                "phone": f"138000{next(phone):05d}",
                "communities": ";".join(coms),
                "functional_categories": company["functional_categories"],
            }
        )
    return units
