"""A deterministic, SYNTHETIC county seat in a mountain valley of south-west China.

The demo town (云岭县县城, in 云岭镇) lies in a valley that runs south-west to north-east
along a meandering river (南溪河). Everything is built in a *valley frame* ``(s, n)``:
``s`` runs along the curving valley axis and ``n`` across it (positive on the north-west
bank). Streets are drawn in that frame, so they follow the valley and the contour lines
of its slopes as real hillside towns do, and are then mapped to metres in the local UTM
zone and finally to WGS-84.

Nothing here is real: the county, its streets, units and problems are invented. Every
random choice comes from one seeded generator, so the same call gives the same output.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import cn2an
import geopandas as gpd
import networkx as nx
import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import LineString, MultiLineString, Point, Polygon
from shapely.ops import linemerge, split, substring, unary_union

from gis.crs import utm_crs_for, wgs84_to_gcj02

SEED = 532599
COUNTY_NAME = "云岭县"
SEAT_NAME = "云岭镇"
PROVINCE = "云南省"
PREFECTURE = "红河州"
RIVER_NAME = "南溪河"
CENTER_LON, CENTER_LAT = 103.4215, 22.8638
HALF_LENGTH = 4500.0  # half the valley length covered by the town, metres
VALLEY_ANGLE = math.radians(35.0)  # the valley axis runs from south-west to north-east
DOOR_SPACING = 15.0  # metres of frontage per door plate on each side of a street
POI_TYPES = (
    "农贸市场",
    "学校",
    "医院",
    "诊所",
    "餐饮",
    "宾馆",
    "公厕",
    "垃圾中转站",
    "垃圾收集点",
    "建筑工地",
    "车站",
    "口岸",
    "居民小区",
    "城中村",
    "公共场所",
    "机关单位",
    "公园广场",
)
SOURCES = ("州级交叉检查", "省级暗访", "国家评估", "县级督查", "自查", "群众投诉/12345")
WORKBOOK_HEADERS = (
    "序号",
    "问题描述",
    "问题地点",
    "问题类别",
    "责任单位",
    "发现时间",
    "整改时限",
    "经度",
    "纬度",
    "备注",
)
WORKBOOK_ROWS = 126

# --------------------------------------------------------------------------------------
# Category table of the national sanitary county standard (国家卫生县城标准)
# code, name, deadline (working days), points, functional unit
# --------------------------------------------------------------------------------------
_UNIT_ZJ = "县住房和城乡建设局"
_UNIT_ZF = "县综合行政执法局"
_UNIT_SJ = "县市场监督管理局"
_UNIT_WJ = "县卫生健康局"
_UNIT_JY = "县教育体育局"
_UNIT_JT = "县交通运输局"
_UNIT_HB = "州生态环境局云岭分局"
_UNIT_GA = "县公安局"
_UNIT_SW = "县水务局"
_UNIT_SWJ = "县商务局"
_UNIT_WL = "县文化和旅游局"
_UNIT_ZR = "县自然资源局"

CATEGORIES: tuple[tuple[str, str, int, float, str], ...] = (
    ("01", "爱国卫生组织管理", 10, 1.0, ""),
    ("0101", "组织管理", 10, 1.0, ""),
    ("0102", "档案资料", 10, 0.5, ""),
    ("0103", "爱国卫生月活动", 10, 0.5, ""),
    ("02", "健康教育和健康促进", 7, 1.0, ""),
    ("0201", "健康教育阵地", 7, 0.5, _UNIT_WJ),
    ("0202", "控烟", 5, 1.0, _UNIT_WJ),
    ("0203", "健康素养促进", 10, 0.5, _UNIT_WJ),
    ("03", "市容环境卫生", 5, 1.0, ""),
    ("0301", "主次干道", 3, 1.0, ""),
    ("0302", "背街小巷", 5, 1.0, ""),
    ("0303", "乱贴乱画", 3, 0.5, _UNIT_ZF),
    ("0304", "占道经营", 3, 1.0, _UNIT_ZF),
    ("0305", "公厕", 3, 1.0, ""),
    ("0306", "垃圾收运", 3, 1.0, ""),
    ("0307", "建筑工地", 7, 1.5, _UNIT_ZJ),
    ("0308", "居民小区", 7, 1.0, ""),
    ("0309", "城中村", 10, 1.5, ""),
    ("0310", "集贸市场周边", 5, 1.0, ""),
    ("0311", "车站及周边", 5, 1.0, _UNIT_JT),
    ("0312", "河道沟渠", 7, 1.0, _UNIT_SW),
    ("0313", "户外广告和门头招牌", 7, 0.5, _UNIT_ZF),
    ("04", "生态环境", 10, 1.0, ""),
    ("0401", "大气污染防治", 7, 1.5, _UNIT_HB),
    ("0402", "水环境", 10, 1.5, _UNIT_HB),
    ("0403", "噪声污染", 5, 0.5, _UNIT_HB),
    ("0404", "医疗废物处置", 3, 2.0, _UNIT_WJ),
    ("05", "重点场所卫生", 5, 1.0, ""),
    ("0501", "农贸市场", 5, 2.0, _UNIT_SJ),
    ("0502", "公共场所", 5, 1.0, _UNIT_WJ),
    ("0503", "学校", 5, 1.5, _UNIT_JY),
    ("0504", "医院", 5, 1.5, _UNIT_WJ),
    ("0505", "宾馆酒店", 5, 1.0, _UNIT_WL),
    ("06", "食品和生活饮用水安全", 5, 1.0, ""),
    ("0601", '小餐饮"三小"', 5, 1.5, _UNIT_SJ),
    ("0602", "食品摊贩", 3, 1.0, _UNIT_SJ),
    ("0603", "生活饮用水", 7, 2.0, _UNIT_SW),
    ("0604", "食品生产经营", 7, 1.5, _UNIT_SJ),
    ("07", "疾病防控与医疗卫生服务", 10, 1.0, ""),
    ("0701", "传染病防控", 7, 2.0, _UNIT_WJ),
    ("0702", "预防接种", 10, 1.0, _UNIT_WJ),
    ("0703", "慢性病管理", 15, 0.5, _UNIT_WJ),
    ("0704", "医疗机构感染控制", 7, 1.5, _UNIT_WJ),
    ("08", "病媒生物预防控制", 5, 1.0, ""),
    ("0801", "鼠", 5, 1.0, ""),
    ("0802", "蚊", 5, 1.0, ""),
    ("0803", "蝇", 5, 1.0, ""),
    ("0804", "蟑螂", 5, 1.0, ""),
    ("0805", "病媒防制设施", 7, 0.5, ""),
)

# How inspectors describe problems of each category, and where they find them:
# (descriptions, address forms with their POI types).
_PROBLEMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "0301": (
        (
            "路面有积存垃圾、烟头",
            "人行道地砖破损松动未修复",
            "绿化带内有白色垃圾",
            "果皮箱满溢，周边有散落垃圾",
        ),
        ("intersection", "house_number", "segment"),
    ),
    "0302": (
        (
            "巷道内有积存垃圾、杂物乱堆乱放",
            "路面坑洼积水，排水沟堵塞",
            "背街小巷内有卫生死角",
            "墙角堆放建筑垃圾",
        ),
        ("segment", "road"),
    ),
    "0303": (("墙面有小广告乱贴乱画", "电杆上有小广告未清理"), ("house_number", "intersection")),
    "0304": (("商户占道经营、店外经营", "水果摊占用人行道经营"), ("house_number", "intersection")),
    "0305": (
        ("公厕内有异味，便池有积粪", "公厕无洗手液、无纸篓", "公厕保洁记录未及时填写"),
        ("poi:公厕",),
    ),
    "0306": (
        ("垃圾收集点垃圾满溢，周边有散落垃圾", "垃圾桶破损、无盖", "垃圾未做到日产日清"),
        ("poi:垃圾收集点", "poi:垃圾中转站"),
    ),
    "0307": (("工地出入口未设置车辆冲洗设施", "工地裸土未覆盖", "工地围挡破损"), ("poi:建筑工地",)),
    "0308": (("小区楼道堆放杂物", "小区绿化带内有垃圾", "小区内有积水容器"), ("poi:居民小区",)),
    "0309": (("村内生活垃圾随意倾倒", "房前屋后杂物乱堆", "禽畜散养，有粪便"), ("poi:城中村",)),
    "0310": (("市场周边占道摆摊，地面脏乱",), ("poi:农贸市场",)),
    "0311": (("候车室地面有烟头、痰迹", "车站公厕卫生差"), ("poi:车站",)),
    "0312": (("河道内有漂浮垃圾", "排水沟内有淤泥、垃圾"), ("segment",)),
    "0313": (("门头招牌破损、字体残缺", "违规设置落地广告牌"), ("house_number",)),
    "0401": (("餐饮油烟直排，未安装油烟净化设施",), ("poi:餐饮",)),
    "0501": (
        (
            "市场内地面湿滑有积水、垃圾",
            "活禽宰杀区未实行隔离",
            "水产区排水不畅，有异味",
            "市场内未设置公示栏",
        ),
        ("poi:农贸市场",),
    ),
    "0502": (
        ("网吧内有人吸烟，未张贴禁烟标识", "理发店无消毒设施，未公示卫生许可证", "KTV包间内有烟头"),
        ("poi:公共场所",),
    ),
    "0503": (("学校食堂防蝇设施不全", "学校厕所卫生差，有异味", "校园内有烟头"), ("poi:学校",)),
    "0504": (
        ("医疗废物暂存间未上锁", "住院部楼梯间有烟头", "院内垃圾桶未分类"),
        ("poi:医院", "poi:诊所"),
    ),
    "0505": (("宾馆客房用品未按规定消毒更换", "宾馆未公示卫生许可证"), ("poi:宾馆",)),
    "0601": (
        (
            "餐馆后厨未设置防蝇设施",
            "从业人员无有效健康证明",
            "后厨生熟未分开",
            "餐具消毒柜未正常使用",
        ),
        ("poi:餐饮", "house_number"),
    ),
    "0602": (("流动摊贩无证经营，食品无遮盖", "路边烧烤摊无防尘设施"), ("intersection",)),
    "0603": (("二次供水设施未定期清洗消毒",), ("poi:居民小区",)),
    "0801": (("后厨鼠迹明显，未设置防鼠设施", "发现鼠洞未堵塞"), ("poi:餐饮", "poi:农贸市场")),
    "0802": (("积水容器内有蚊幼", "绿化带废弃轮胎积水"), ("poi:居民小区", "poi:城中村")),
    "0803": (("垃圾收集点周边有蝇类孳生", "餐馆外有苍蝇聚集"), ("poi:垃圾收集点", "poi:餐饮")),
    "0804": (("后厨发现蟑螂活体", "仓库内有蟑螂卵鞘"), ("poi:餐饮", "poi:宾馆")),
    "0805": (
        ("防鼠板高度不够", "灭蝇灯未通电", "下水道口未安装防鼠网"),
        ("poi:餐饮", "poi:农贸市场", "poi:宾馆"),
    ),
    "0202": (("机关单位楼道有烟头", "无烟单位未设置禁烟标识"), ("poi:机关单位",)),
    "0201": (("健康教育宣传栏内容未更新", "健康教育宣传栏破损"), ("poi:居民小区", "poi:公园广场")),
}
_UNPLACEABLE = (
    ("0102", "健康教育档案资料不全", "县城区域内"),
    ("0301", "县城区域内多处有小广告、积存垃圾", "县城区域内多处"),
    ("0101", "创卫档案资料未按要求分类归档", ""),
    ("0703", "慢性病管理台账记录不完整", "相关单位"),
    ("0102", "病媒生物防制工作记录不全", ""),
)
_HISTORY_NOTES = {
    "dispatch": "已派遣至责任单位",
    "start": "已安排人员整改",
    "submit": "已整改完毕，附整改前后照片",
    "verify_ok": "经核查已整改到位，予以销号",
    "verify_fail": "复查仍有问题，整改不到位",
    "reject": "经核实不属于创卫问题，不予立案",
}

# --------------------------------------------------------------------------------------
# Name pools (invented, in the style of Yunnan county towns)
# --------------------------------------------------------------------------------------
_LANE_WORDS = [
    "营盘",
    "打铁",
    "花椒",
    "三道",
    "箭道",
    "文庙",
    "城隍",
    "鼓楼",
    "书院",
    "盐井",
    "染布",
    "米市",
    "柴市",
    "油榨",
    "竹园",
    "桃园",
    "石榴",
    "杨柳",
    "关帝",
    "龙泉",
    "凤鸣",
    "朝阳",
    "向阳",
    "太平",
    "永安",
    "福德",
    "金鸡",
    "青龙",
    "白塔",
    "玉屏",
    "翠湖",
    "豆腐",
    "磨坊",
    "铁匠",
    "马帮",
    "驿站",
    "茶马",
    "银匠",
    "木匠",
    "瓦窑",
    "砖瓦",
    "石板",
    "水井",
    "双井",
    "大井",
    "小井",
    "龙井",
    "清水",
    "温泉",
    "梨园",
    "李子",
    "核桃",
    "板栗",
    "芭蕉",
    "木棉",
    "凤凰",
    "榕树",
    "大榕",
    "菩提",
    "观音",
    "土主",
    "财神",
    "火神",
    "龙王",
    "老街",
    "旧街",
    "后街",
    "前街",
    "横街",
    "直街",
    "上街",
    "下街",
    "东门",
    "南门",
    "西门",
    "北门",
    "小东",
    "小西",
    "马市",
    "牛市",
    "猪市",
    "草市",
    "鸡街",
    "鱼市",
    "谷市",
    "糖房",
    "酒坊",
    "酱园",
    "粉坊",
    "纸坊",
    "香铺",
    "药铺",
    "当铺",
    "钱庄",
    "学堂",
    "考棚",
    "校场",
    "仓库",
    "官仓",
    "粮仓",
    "税所",
    "邮亭",
    "电报",
    "水碾",
    "水磨",
    "油坊",
    "花街",
    "灯笼",
    "锣鼓",
    "鞭炮",
    "刺绣",
    "银器",
    "斗笠",
    "蓑衣",
    "棕编",
    "竹编",
    "篾匠",
    "箍桶",
    "弹棉",
    "裁缝",
    "剃头",
    "茶铺",
    "烟铺",
    "酸菜",
    "腊肉",
    "火腿",
    "饵块",
    "米线",
    "卷粉",
    "糍粑",
    "红糖",
    "蜂蜜",
    "三七",
    "草果",
    "八角",
    "砂仁",
    "杜仲",
    "天麻",
    "松林",
    "杉木",
    "竹林",
    "芦苇",
    "荷花",
    "海棠",
    "山茶",
    "杜鹃",
    "兰花",
    "菊花",
    "桂花",
    "月季",
    "石门",
    "石桥",
    "铁桥",
    "木桥",
    "廊桥",
    "渡口",
    "码头",
    "河湾",
    "沙滩",
    "坝子",
    "田坝",
    "冲头",
    "箐口",
    "山脚",
    "半坡",
    "岩脚",
    "岩头",
    "大石",
    "小石",
    "红土",
    "黄土",
    "白土",
    "黑龙",
    "金马",
    "碧鸡",
    "五福",
    "六合",
    "七星",
    "八角亭",
    "九龙",
]
_NAME_ROUNDS = ("上", "下", "新", "后")
_LANE_SUFFIXES = ("巷", "巷", "巷", "街", "坡", "巷", "路", "巷")
_COMMUNITIES_LEFT = ("西门社区", "文庙社区", "鼓楼社区", "人民社区", "东风社区", "北山社区")
_COMMUNITIES_RIGHT = ("口岸社区", "南溪社区", "团结社区", "振兴社区")
_SURNAMES = "张王李赵刘陈杨黄周吴徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾肖田董潘袁蔡蒋余于杜叶程魏苏吕丁沈任姚卢"
_FOODS = (
    "米线",
    "过桥米线",
    "小锅米线",
    "豆花米线",
    "烧烤",
    "饵块",
    "卷粉",
    "凉粉",
    "面馆",
    "牛肉馆",
    "羊肉馆",
    "火锅",
    "砂锅",
    "包子铺",
    "饺子馆",
    "烧豆腐",
    "傣味",
    "彝家菜",
    "农家菜",
    "烤鸭",
    "炒饭",
    "豆浆油条",
    "汤锅",
    "烤鱼",
    "冰粉",
    "米粉",
    "酸汤鱼",
    "烧饵块",
)
_FOOD_PATTERNS = ("{s}记{f}", "老{s}{f}", "{s}家{f}", "{s}姐{f}", "{s}嬢嬢{f}", "阿{s}{f}")
_HOTEL_WORDS = (
    "南溪",
    "云岭",
    "金马",
    "锦华",
    "顺发",
    "滇南",
    "红河",
    "边城",
    "山水",
    "怡景",
    "和谐",
    "如家",
    "兴隆",
    "鸿运",
    "佳园",
    "丽景",
    "凤凰",
    "银河",
    "祥和",
    "星辰",
)
_HOTEL_KINDS = ("宾馆", "酒店", "客栈", "招待所", "快捷酒店")
_PUBLIC_PLACES = (
    "网吧",
    "KTV",
    "理发店",
    "美容美发",
    "足浴店",
    "浴室",
    "歌舞厅",
    "台球室",
    "游泳馆",
    "健身房",
    "影城",
    "茶室",
)
_ESTATES = (
    "阳光小区",
    "金色家园",
    "南溪花园",
    "锦绣小区",
    "翠湖小区",
    "龙泉小区",
    "幸福家园",
    "怡景苑",
    "滨江花园",
    "教师小区",
    "供电小区",
    "粮食局宿舍",
    "桃源小区",
    "金鸡小区",
    "和谐家园",
    "凤凰城",
    "东城小区",
    "西城小区",
    "碧水小区",
    "山水华庭",
    "城投小区",
    "新城小区",
    "康乐小区",
    "兴隆小区",
    "吉祥小区",
    "玉屏小区",
    "同心小区",
    "安居小区",
    "春晖小区",
    "南山小区",
)
_VILLAGES = ("下寨村", "上寨村", "大寨村", "小河边村", "新寨村", "坝心村", "箐口村", "岩脚村")
# The county departments (县直部门) that answer for communities (包保) and have offices.
_DEPARTMENTS = (
    _UNIT_ZJ,
    _UNIT_ZF,
    _UNIT_SJ,
    _UNIT_WJ,
    _UNIT_JY,
    _UNIT_JT,
    _UNIT_HB,
    _UNIT_GA,
    _UNIT_SW,
    _UNIT_SWJ,
    _UNIT_WL,
    _UNIT_ZR,
)
_OFFICES = (
    "云岭县人民政府",
    "县人民代表大会常务委员会",
    *_DEPARTMENTS,
    "县疾病预防控制中心",
    "县人民法院",
    "县税务局",
    "县供电局",
    "云岭镇人民政府",
    "南溪街道办事处",
)
_SCHOOLS = (
    "云岭县第一中学",
    "云岭县第二中学",
    "云岭县民族中学",
    "云岭县实验小学",
    "城关小学",
    "南溪小学",
    "北山小学",
    "云岭县第一幼儿园",
    "南溪幼儿园",
    "云岭县职业高级中学",
)
_HOSPITALS = ("云岭县人民医院", "云岭县中医医院", "云岭县妇幼保健院")
_PARKS = (
    "人民广场",
    "南溪河湿地公园",
    "文化广场",
    "北山公园",
    "民族团结广场",
    "滨河公园",
    "口岸广场",
    "龙泉公园",
)
_MARKETS = (
    ("城西农贸市场", "L", -2900.0),
    ("老街农贸市场", "L", -700.0),
    ("南溪农贸市场", "R", 300.0),
    ("城东农贸市场", "L", 2900.0),
)
_STATIONS = (
    ("云岭县客运站", "R", -1200.0),
    ("城北公交总站", "L", 3600.0),
    ("城南客运站", "R", -3500.0),
)
_TYPOS = {
    "营盘": "营磐",
    "滨河": "宾河",
    "团结": "团洁",
    "建设": "建没",
    "解放": "介放",
    "文化": "文华",
    "振兴": "振新",
    "人民": "仁民",
}


@dataclass
class DemoTown:
    """Everything the demo county seat consists of (GeoDataFrames in EPSG:4326)."""

    county: dict
    boundary: gpd.GeoDataFrame
    river: gpd.GeoDataFrame
    roads: gpd.GeoDataFrame
    subdistricts: gpd.GeoDataFrame
    communities: gpd.GeoDataFrame
    pois: gpd.GeoDataFrame
    addresses: gpd.GeoDataFrame
    units: list[dict]
    categories: list[dict]
    workbook_title: str
    workbook_rows: list[dict]
    truth: list[dict]
    history: list[dict]
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------
# The valley frame
# --------------------------------------------------------------------------------------
class _Valley:
    """Map valley coordinates (s along the axis, n across it) to UTM metres."""

    def __init__(self, *, e0: float, n0: float) -> None:
        self.e0, self.n0 = e0, n0
        self.k1, self.k2 = 2 * math.pi / 9000.0, 2 * math.pi / 3300.0

    def to_xy(self, s, n) -> np.ndarray:
        s = np.asarray(s, dtype=float)
        n = np.asarray(n, dtype=float)
        k1, k2 = self.k1, self.k2
        y = 420 * np.sin(k1 * s + 0.4) + 80 * np.sin(k2 * s + 1.3)
        dy = 420 * k1 * np.cos(k1 * s + 0.4) + 80 * k2 * np.cos(k2 * s + 1.3)
        norm = np.sqrt(1 + dy * dy)
        x0 = s - n * dy / norm
        y0 = y + n / norm
        c, si = math.cos(VALLEY_ANGLE), math.sin(VALLEY_ANGLE)
        return np.column_stack([x0 * c - y0 * si + self.e0, x0 * si + y0 * c + self.n0])

    def line(self, s, n) -> LineString:
        """Map a polyline given in the valley frame, densified so curves stay smooth."""
        s = np.asarray(s, dtype=float)
        n = np.asarray(n, dtype=float)
        ss, nn = [s[0]], [n[0]]
        for i in range(1, len(s)):
            steps = max(1, int(math.hypot(s[i] - s[i - 1], n[i] - n[i - 1]) // 25))
            t = np.arange(1, steps + 1) / steps
            ss.extend(s[i - 1] + (s[i] - s[i - 1]) * t)
            nn.extend(n[i - 1] + (n[i] - n[i - 1]) * t)
        return LineString(self.to_xy(ss, nn))

    def along(self, x: float, y: float) -> float:
        """Return a point's position along the valley direction (for west→east order)."""
        return (x - self.e0) * math.cos(VALLEY_ANGLE) + (y - self.n0) * math.sin(VALLEY_ANGLE)


def _wave(rng: np.random.Generator, *, amp: float, periods: tuple[float, ...]):
    """Return a smooth random function of s: a sum of sines with random phases."""
    phases = rng.uniform(0, 2 * math.pi, len(periods))
    weights = rng.uniform(0.6, 1.0, len(periods))

    def f(s):
        s = np.asarray(s, dtype=float)
        return sum(
            amp * w * np.sin(2 * math.pi * s / p + ph)
            for w, p, ph in zip(weights, periods, phases, strict=True)
        )

    return f


@dataclass
class _Source:
    """A drawn street before noding: its line, names along it and its attributes."""

    line: LineString
    names: list[tuple[float, str, str]]  # (end distance along line, name, highway)
    side: str
    s_mid: float
    oneway: str = "no"
    kind: str = "street"

    def name_at(self, distance: float) -> tuple[str, str]:
        for end, name, highway in self.names:
            if distance <= end:
                return name, highway
        return self.names[-1][1], self.names[-1][2]


class _NamePool:
    """Hand out unique, plausible lane names."""

    def __init__(self, rng: np.random.Generator) -> None:
        words = list(_LANE_WORDS)
        rng.shuffle(words)
        self.words = words
        self.rng = rng
        self.used: set[str] = set()
        self.round = 0

    def reserve(self, *names: str) -> None:
        self.used.update(names)

    def take(self, *, suffix: str | None = None) -> str:
        while True:
            if not self.words:
                self.refill()
            word = self.words.pop()
            name = word + (suffix or _LANE_SUFFIXES[int(self.rng.integers(len(_LANE_SUFFIXES)))])
            if name not in self.used:
                self.used.add(name)
                return name

    def refill(self) -> None:
        """Start a new round of names: 上/下/新/后 variants, as towns name later lanes."""
        self.round += 1
        if self.round > len(_NAME_ROUNDS):
            msg = "街巷名称池已用尽"
            raise RuntimeError(msg)
        mark = _NAME_ROUNDS[self.round - 1]
        words = [w + mark for w in _LANE_WORDS if len(w) == 2]
        self.rng.shuffle(words)
        self.words = words


# --------------------------------------------------------------------------------------
# Geometry: boundary, river, streets
# --------------------------------------------------------------------------------------
def _river_n(s):
    s = np.asarray(s, dtype=float)
    taper = 0.45 + 0.55 * np.clip(1 - (s / HALF_LENGTH) ** 6, 0, 1)
    return taper * (
        140 * np.sin(2 * math.pi * s / 1700 + 0.5) + 35 * np.sin(2 * math.pi * s / 640 + 2.0)
    )


def _half_widths(s):
    s = np.asarray(s, dtype=float)
    taper = np.sqrt(np.clip(1 - (np.abs(s) / HALF_LENGTH) ** 4, 0.05, 1))
    left = (
        1150
        + 170 * np.sin(2 * math.pi * s / 2600 + 0.7)
        + 110 * np.sin(2 * math.pi * s / 1100 + 2.1)
        + 480 * np.exp(-(((s - 1200) / 480) ** 2))
    ) * taper
    right = (
        1000
        + 190 * np.sin(2 * math.pi * s / 3100 + 1.9)
        + 90 * np.sin(2 * math.pi * s / 900 + 0.3)
        + 380 * np.exp(-(((s + 2300) / 430) ** 2))
    ) * taper
    return np.maximum(left, 260.0), np.maximum(right, 260.0)


def _build_boundary(valley: _Valley, rng: np.random.Generator) -> Polygon:
    s = np.linspace(-HALF_LENGTH, HALF_LENGTH, 241)
    left, right = _half_widths(s)
    left = left + rng.normal(0, 10, len(s))
    right = right + rng.normal(0, 10, len(s))
    ring = np.vstack([valley.to_xy(s, left), valley.to_xy(s[::-1], -right[::-1])])
    return shapely.make_valid(Polygon(ring)).buffer(0)


def _build_river(valley: _Valley) -> tuple[LineString, Polygon]:
    s = np.arange(-HALF_LENGTH - 400, HALF_LENGTH + 401, 20.0)
    center = valley.to_xy(s, _river_n(s))
    d = np.gradient(center, axis=0)
    d /= np.linalg.norm(d, axis=1)[:, None]
    normal = np.column_stack([-d[:, 1], d[:, 0]])
    width = 45 + 9 * np.sin(2 * math.pi * s / 1300 + 0.8)  # 36–54 m of water surface
    left = center + normal * (width / 2)[:, None]
    right = center - normal * (width / 2)[:, None]
    water = shapely.make_valid(Polygon(np.vstack([left, right[::-1]]))).buffer(0)
    return LineString(center), water


def _street_levels(rng: np.random.Generator) -> dict[str, list]:
    """Return the contour-following longitudinal streets: level → (n(s), sections)."""
    w = {
        k: _wave(rng, amp=amp, periods=per)
        for k, amp, per in (
            ("L1", 45, (1500, 700)),
            ("L2", 55, (1900, 800)),
            ("L3", 60, (2300, 900)),
            ("R1", 40, (1700, 650)),
            ("R2", 55, (2100, 850)),
            ("R3", 60, (2500, 950)),
        )
    }
    inf = float("inf")
    return {
        "L0": (
            lambda s: _river_n(s) + 80,
            [
                (-1000, "西河沿街", "tertiary"),
                (1800, "滨河路", "secondary"),
                (inf, "滨河东路", "tertiary"),
            ],
        ),
        "L1": (
            lambda s: 420 + w["L1"](s),
            [
                (-2200, "西门街", "tertiary"),
                (600, "人民路", "primary"),
                (2600, "人民东路", "primary"),
                (inf, "东风路", "secondary"),
            ],
        ),
        "L2": (
            lambda s: 740 + w["L2"](s),
            [
                (-1500, "文庙街", "tertiary"),
                (1500, "建设路", "secondary"),
                (inf, "新华路", "secondary"),
            ],
        ),
        "L3": (
            lambda s: 1030 + w["L3"](s),
            [(0, "环城北路", "tertiary"), (inf, "北山路", "tertiary")],
        ),
        "R0": (
            lambda s: _river_n(s) - 80,
            [(0, "滨江路", "tertiary"), (inf, "南滨路", "tertiary")],
        ),
        "R1": (
            lambda s: -420 + w["R1"](s),
            [(-1800, "口岸大道", "primary"), (inf, "南溪大道", "primary")],
        ),
        "R2": (
            lambda s: -720 + w["R2"](s),
            [(0, "团结路", "secondary"), (inf, "振兴路", "secondary")],
        ),
        "R3": (lambda s: -990 + w["R3"](s), [(inf, "南山路", "tertiary")]),
    }


_MAJOR_CROSS = (
    (-3300.0, "迎宾路", "secondary"),
    (-1900.0, "民族路", "secondary"),
    (-700.0, "解放路", "secondary"),
    (300.0, "文化路", "secondary"),
    (1300.0, "青年路", "tertiary"),
    (2500.0, "兴旺路", "tertiary"),
    (3600.0, "东环路", "tertiary"),
)
_DIVIDERS = {"L": (-1900.0, -700.0, 300.0, 1300.0, 2500.0), "R": (-1900.0, 300.0, 2500.0)}


def _cross_s(s0: float, tilt: float, wob, n):
    return s0 + tilt * np.asarray(n, dtype=float) + wob(n)


def _draw_streets(valley: _Valley, rng: np.random.Generator, pool: _NamePool):
    """Draw every street in the valley frame; return sources and the major cross lines."""
    levels = _street_levels(rng)
    sources: list[_Source] = []
    s_all = np.arange(-HALF_LENGTH - 200, HALF_LENGTH + 201, 20.0)
    level_lines = {}
    for key, (fn, sections) in levels.items():
        line = valley.line(s_all, fn(s_all))
        level_lines[key] = line
        names, start = [], -HALF_LENGTH - 200
        for end, name, highway in sections:
            d_end = line.length if end == float("inf") else _distance_at_s(valley, line, end, fn)
            names.append((d_end, name, highway))
            start = end
        del start
        sources.append(
            _Source(
                line=line,
                names=names,
                side=key[0],
                s_mid=0.0,
                oneway="yes" if key == "L1x" else "no",
                kind="level",
            )
        )
    pool.reserve(*(n for _, secs in levels.values() for _, n, _ in secs))
    pool.reserve(*(name for _, name, _ in _MAJOR_CROSS))

    tilt_wave = {side: _wave(rng, amp=0.07, periods=(4200.0,)) for side in "LR"}
    majors = {}
    for s0, name, highway in _MAJOR_CROSS:
        tilt = float(tilt_wave["L"](s0)) * 0.5
        wob = _wave(rng, amp=10, periods=(420.0, 230.0))
        n = np.arange(-1900.0, 2101.0, 50.0)
        line = valley.line(_cross_s(s0, tilt, wob, n), n)
        majors[s0] = line
        sources.append(
            _Source(
                line=line, names=[(line.length, name, highway)], side="B", s_mid=s0, kind="major"
            )
        )

    # A covered footbridge (风雨桥) in the old town joins the two river-side streets.
    n = np.array([-120.0, 0.0, 120.0]) + _river_n(-1250.0)
    line = valley.line(np.array([-1250.0, -1240.0, -1250.0]), n)
    sources.append(
        _Source(
            line=line,
            names=[(line.length, "风雨桥", "footway")],
            side="B",
            s_mid=-1250.0,
            kind="footbridge",
        )
    )

    major_s = np.array([m[0] for m in _MAJOR_CROSS])
    for side, sign in (("L", 1.0), ("R", -1.0)):
        keys = [f"{side}{i}" for i in range(4)]
        s = -HALF_LENGTH + 80.0
        minors = []
        while s < HALF_LENGTH - 60:
            old_town = side == "L" and -2300 < s < 900
            s += float(rng.uniform(95, 150) if old_town else rng.uniform(130, 250))
            if np.min(np.abs(major_s - s)) < 70:
                continue
            tilt = float(tilt_wave[side](s)) + float(rng.uniform(-0.03, 0.03))
            wob = _wave(rng, amp=float(rng.uniform(5, 14)), periods=(330.0, 170.0))
            first = 0 if rng.random() < 0.85 else 1
            last = int(rng.choice([1, 2, 3, 4], p=[0.22, 0.3, 0.23, 0.25]))
            if last <= first:
                last = first + 1
            fn0 = levels[keys[first]][0]
            n_start = float(fn0(s)) - sign * 6
            # Lanes reaching the top run on up the slope and are cut by the boundary.
            n_end = sign * 1900.0 if last == 4 else float(levels[keys[last]][0](s)) + sign * 6
            n = np.linspace(n_start, n_end, max(3, int(abs(n_end - n_start) // 45)))
            ss = _cross_s(s, tilt, wob, n - n_start)
            line = valley.line(ss, n)
            # One name per stretch between two contour streets, sometimes kept across.
            names = []
            name = pool.take()
            for lvl in range(first + 1, last + 1):
                if lvl < 4:
                    crossing = line.intersection(level_lines[keys[lvl]])
                    d_end = _first_distance(line, crossing)
                else:
                    d_end = line.length
                if lvl == 4:
                    highway = "steps" if rng.random() < 0.5 else "footway"
                    if names:
                        name = pool.take(suffix="坡")
                elif old_town:
                    highway = "living_street" if rng.random() < 0.6 else "residential"
                else:
                    highway = "residential"
                if d_end is None:
                    break
                names.append((d_end, name, highway))
                if rng.random() < 0.55 and lvl < 3:
                    name = pool.take()
            if not names:
                continue
            src = _Source(
                line=line,
                names=names,
                side=side,
                s_mid=s,
                kind="minor",
                oneway="yes" if old_town and rng.random() < 0.12 else "no",
            )
            sources.append(src)
            minors.append((s, tilt, wob, n_start, first, last))

        # Old-town alleys and service roads along the contours between two cross streets.
        for (s_a, t_a, w_a, n0_a, f_a, l_a), (s_b, t_b, w_b, n0_b, f_b, l_b) in zip(
            minors[:-1], minors[1:], strict=True
        ):
            if f_a > 0 or f_b > 0 or min(l_a, l_b) < 1:
                continue
            old_town = side == "L" and -2300 < s_a < 900
            if not old_town and rng.random() > 0.18:
                continue
            if old_town and rng.random() > 0.65:
                continue
            n_mid = (
                float(levels[keys[0]][0]((s_a + s_b) / 2))
                + float(levels[keys[1]][0]((s_a + s_b) / 2))
            ) / 2
            n_mid += float(rng.uniform(-25, 25))
            sa = float(_cross_s(s_a, t_a, w_a, n_mid - n0_a)) - 6
            sb = float(_cross_s(s_b, t_b, w_b, n_mid - n0_b)) + 6
            if sb - sa < 50:
                continue
            ss = np.linspace(sa, sb, 5)
            nn = n_mid + rng.normal(0, 6, 5)
            line = valley.line(ss, nn)
            highway = "living_street" if old_town else "service"
            name = pool.take(suffix="巷") if old_town else pool.take(suffix="路")
            sources.append(
                _Source(
                    line=line,
                    names=[(line.length, name, highway)],
                    side=side,
                    s_mid=(s_a + s_b) / 2,
                    kind="alley",
                    oneway="yes" if old_town and rng.random() < 0.3 else "no",
                )
            )
    return sources, majors, level_lines


def _first_distance(line: LineString, crossing) -> float | None:
    if crossing.is_empty:
        return None
    points = [g for g in getattr(crossing, "geoms", [crossing]) if g.geom_type == "Point"]
    if not points:
        return None
    return min(line.project(p) for p in points)


def _distance_at_s(valley: _Valley, line: LineString, s: float, fn) -> float:
    x, y = valley.to_xy([s], [float(fn(s))])[0]
    return line.project(Point(x, y))


def _node_streets(sources: list[_Source], *, boundary: Polygon, water: Polygon):
    """Clip, node and clean the drawn streets; return noded segments with attributes."""
    inner = boundary.buffer(-2.0)
    clipped = [src.line.intersection(inner) for src in sources]
    banks = water.boundary.intersection(boundary.buffer(50))
    noded = unary_union([g for g in clipped if not g.is_empty] + [banks])
    tree = shapely.STRtree([src.line for src in sources])
    segments = []
    for seg in getattr(noded, "geoms", [noded]):
        if seg.length < 0.05:
            continue
        mid = seg.interpolate(0.5, normalized=True)
        hits = tree.query(mid, predicate="dwithin", distance=0.01)
        if len(hits) == 0:
            continue  # a river bank
        idx = int(min(hits))
        segments.append((seg, idx))

    # Drop the overshoot stubs left past each junction, then keep one connected network.
    for _ in range(2):
        degree: dict[tuple, int] = {}
        for seg, _idx in segments:
            for c in (seg.coords[0], seg.coords[-1]):
                degree[c] = degree.get(c, 0) + 1
        segments = [
            (seg, idx)
            for seg, idx in segments
            if not (seg.length < 12 and (degree[seg.coords[0]] == 1 or degree[seg.coords[-1]] == 1))
        ]
    graph = nx.Graph()
    for i, (seg, _idx) in enumerate(segments):
        graph.add_edge(seg.coords[0], seg.coords[-1], key=i)
    main = max(nx.connected_components(graph), key=len)
    return [(seg, idx) for seg, idx in segments if seg.coords[0] in main], noded


# --------------------------------------------------------------------------------------
# Addresses (door plates)
# --------------------------------------------------------------------------------------
class _Streets:
    """Named streets: their reference lines (for numbering) and final geometry."""

    def __init__(self, roads_m: gpd.GeoDataFrame, refs: dict[str, LineString]) -> None:
        self.refs = refs
        self.geoms = {name: unary_union(list(g.geometry)) for name, g in roads_m.groupby("name")}
        self.highway = roads_m.groupby("name")["highway"].first().to_dict()
        self.tree = shapely.STRtree(list(roads_m.geometry))
        self.roads_m = roads_m

    def number_at(self, name: str, point: Point) -> int:
        """Return the door number of a point beside a street (odd left, even right)."""
        ref = self.refs[name]
        d = ref.project(point)
        index = int(d // DOOR_SPACING)
        a = ref.interpolate(max(0.0, d - 1))
        b = ref.interpolate(min(ref.length, d + 1))
        cross = (b.x - a.x) * (point.y - a.y) - (b.y - a.y) * (point.x - a.x)
        return 2 * index + 1 if cross > 0 else 2 * index + 2

    def plate_point(self, name: str, number: int, *, offset: float = 10.0) -> Point:
        ref = self.refs[name]
        index = (number - 1) // 2
        d = (index + 0.5) * DOOR_SPACING
        a = ref.interpolate(max(0.0, d - 1))
        b = ref.interpolate(min(ref.length, d + 1))
        dx, dy = b.x - a.x, b.y - a.y
        norm = math.hypot(dx, dy) or 1.0
        sign = 1.0 if number % 2 == 1 else -1.0
        mid = ref.interpolate(d)
        return Point(mid.x - sign * dy / norm * offset, mid.y + sign * dx / norm * offset)


def _clear_spot(
    point: Point, *, streets: _Streets, inner: Polygon, water_zone: Polygon, min_gap: float = 5.0
) -> bool:
    if not inner.contains(point) or water_zone.contains(point):
        return False
    near = streets.tree.query(point, predicate="dwithin", distance=min_gap)
    return len(near) == 0


def _build_addresses(streets: _Streets, *, inner: Polygon, water_zone: Polygon) -> list[dict]:
    rows = []
    plated = sorted(
        n for n, h in streets.highway.items() if h in ("primary", "secondary", "tertiary")
    )
    for name in plated:
        ref = streets.refs[name]
        built = streets.geoms[name]
        count = int(ref.length // DOOR_SPACING)
        for index in range(count):
            on_ref = ref.interpolate((index + 0.5) * DOOR_SPACING)
            if built.distance(on_ref) > 1.0:
                continue
            for number in (2 * index + 1, 2 * index + 2):
                p = streets.plate_point(name, number)
                if _clear_spot(p, streets=streets, inner=inner, water_zone=water_zone):
                    rows.append({"street": name, "number": number, "geometry": p})
    return rows


# --------------------------------------------------------------------------------------
# POIs
# --------------------------------------------------------------------------------------
def _poi_names(rng: np.random.Generator) -> list[tuple[str, str, dict]]:
    """Return (name, type, placement hints) for every POI."""
    out: list[tuple[str, str, dict]] = []
    for name, side, s in _MARKETS:
        out.append((name, "农贸市场", {"side": side, "s": s}))
    for name, side, s in _STATIONS:
        out.append((name, "车站", {"side": side, "s": s}))
    out.append(("云岭口岸", "口岸", {"side": "R", "s": -4250.0}))
    for i, name in enumerate(_SCHOOLS):
        out.append((name, "学校", {"side": "L" if i % 3 else "R"}))
    for name in _HOSPITALS:
        out.append((name, "医院", {"side": "L", "s": float(rng.uniform(-1500, 1500))}))
    clinics = [f"{c}诊所" for c in rng.choice(list(_SURNAMES), 12, replace=False)]
    clinics += [f"{c}社区卫生服务站" for c in ("西门", "鼓楼", "南溪", "振兴")]
    out += [(c, "诊所", {}) for c in clinics]
    used: set[str] = set()
    while len(used) < 160:
        pattern = _FOOD_PATTERNS[int(rng.integers(len(_FOOD_PATTERNS)))]
        name = pattern.format(
            s=_SURNAMES[int(rng.integers(len(_SURNAMES)))], f=_FOODS[int(rng.integers(len(_FOODS)))]
        )
        if name not in used:
            used.add(name)
            out.append((name, "餐饮", {"old_town": True}))
    hotels: set[str] = set()
    while len(hotels) < 22:
        name = (
            _HOTEL_WORDS[int(rng.integers(len(_HOTEL_WORDS)))]
            + _HOTEL_KINDS[int(rng.integers(len(_HOTEL_KINDS)))]
        )
        if name not in hotels:
            hotels.add(name)
            out.append((name, "宾馆", {}))
    out += [(f"第{cn2an.an2cn(i + 1)}公厕", "公厕", {}) for i in range(32)]
    for i, word in enumerate(("城北", "城南", "城东", "城西")):
        out.append(
            (
                f"{word}垃圾中转站",
                "垃圾中转站",
                {"side": "L" if i % 2 == 0 else "R", "s": (3400.0, -3400.0, 2000.0, -2600.0)[i]},
            )
        )
    out += [(f"{i + 1}号垃圾收集点", "垃圾收集点", {}) for i in range(34)]
    sites = (
        "南溪河综合治理项目",
        "城投安置房项目",
        "县医院住院楼项目",
        "北山片区棚改项目",
        "滨江花园二期项目",
        "第一中学教学楼项目",
        "口岸联检楼项目",
        "老街改造项目",
    )
    out += [(f"{s}工地", "建筑工地", {}) for s in sites]
    out += [(e, "居民小区", {}) for e in _ESTATES]
    out += [(v, "城中村", {"edge": True}) for v in _VILLAGES]
    places: set[str] = set()
    while len(places) < 52:
        name = (
            _HOTEL_WORDS[int(rng.integers(len(_HOTEL_WORDS)))]
            + _PUBLIC_PLACES[int(rng.integers(len(_PUBLIC_PLACES)))]
        )
        if name not in places:
            places.add(name)
            out.append((name, "公共场所", {"old_town": True}))
    out += [(o, "机关单位", {"side": "L", "s": float(rng.uniform(-2000, 1500))}) for o in _OFFICES]
    out += [(p, "公园广场", {}) for p in _PARKS]
    return out


def _place_pois(
    rng,
    streets: _Streets,
    roads_m: gpd.GeoDataFrame,
    *,
    inner,
    water_zone,
    valley: _Valley,
    sides: dict[str, Polygon],
) -> list[dict]:
    lengths = roads_m.geometry.length.to_numpy()
    highways = roads_m["highway"].to_numpy()
    weight = lengths * np.select(
        [
            np.isin(highways, ["primary", "secondary"]),
            highways == "tertiary",
            np.isin(highways, ["residential", "living_street"]),
        ],
        [3.0, 2.0, 1.0],
        0.0,
    )
    old_town = (roads_m["side"].eq("L") & roads_m["s_mid"].between(-2300, 900)).to_numpy()
    names = roads_m["name"].to_numpy()
    rows: list[dict] = []
    taken = shapely.STRtree([Point(0, 0)])
    placed: list[Point] = []
    seg_tree = shapely.STRtree(list(roads_m.geometry))
    for name, poi_type, hint in _poi_names(rng):
        w = weight.copy()
        if hint.get("old_town"):
            w = w * np.where(old_town, 4.0, 1.0)
        if hint.get("edge"):
            w = lengths * np.isin(highways, ["residential", "steps", "footway"])
        target = None
        if "s" in hint:
            n = 250.0 if hint["side"] == "L" else -300.0
            target = Point(valley.to_xy([hint["s"]], [n])[0])
        elif "side" in hint:
            w = w * np.where(roads_m["side"].eq(hint["side"]).to_numpy(), 1.0, 0.2)
        for _attempt in range(200):
            if target is not None:
                jitter = Point(
                    target.x + rng.normal(0, 40 + 10 * _attempt),
                    target.y + rng.normal(0, 40 + 10 * _attempt),
                )
                i = int(seg_tree.nearest(jitter))
            else:
                i = int(rng.choice(len(w), p=w / w.sum()))
            seg = roads_m.geometry.iloc[i]
            if highways[i] in ("steps", "footway") and not hint.get("edge"):
                continue
            d = float(rng.uniform(0.15, 0.85)) * seg.length
            a, b = seg.interpolate(max(0, d - 1)), seg.interpolate(min(seg.length, d + 1))
            dx, dy = b.x - a.x, b.y - a.y
            norm = math.hypot(dx, dy) or 1.0
            side = 1.0 if rng.random() < 0.5 else -1.0
            off = float(rng.uniform(9, 14))
            mid = seg.interpolate(d)
            p = Point(mid.x - side * dy / norm * off, mid.y + side * dx / norm * off)
            if not _clear_spot(p, streets=streets, inner=inner, water_zone=water_zone):
                continue
            if placed and taken.query(p, predicate="dwithin", distance=8).size:
                continue
            street = str(names[i])
            number = streets.number_at(street, p)
            rows.append(
                {
                    "name": name,
                    "type": poi_type,
                    "address": f"{street}{number}号",
                    "street": street,
                    "number": number,
                    "geometry": p,
                }
            )
            placed.append(p)
            taken = shapely.STRtree(placed)
            break
        else:
            msg = f"无法为 {name} 找到位置"
            raise RuntimeError(msg)
    del sides
    return rows


# --------------------------------------------------------------------------------------
# Sub-districts and communities
# --------------------------------------------------------------------------------------
def _build_partition(
    boundary: Polygon, river_line: LineString, majors: dict, valley: _Valley, county_code: str
):
    halves = [g for g in split(boundary, river_line).geoms]
    # The north-west bank (n > 0) holds the old town (云岭镇); the other bank is 南溪街道.
    probe = Point(valley.to_xy([0.0], [600.0])[0])
    left = next(h for h in halves if h.contains(probe))
    right = unary_union([h for h in halves if h is not left])
    subs = [("001", SEAT_NAME, left, "L"), ("002", "南溪街道", right, "R")]
    sub_rows, com_rows = [], []
    for code, name, poly, side in subs:
        pieces = [poly]
        for s0 in _DIVIDERS[side]:
            nxt = []
            for piece in pieces:
                nxt.extend(split(piece, majors[s0]).geoms)
            pieces = nxt
        pieces.sort(key=lambda g: valley.along(g.centroid.x, g.centroid.y))
        com_names = _COMMUNITIES_LEFT if side == "L" else _COMMUNITIES_RIGHT
        if len(pieces) != len(com_names):
            msg = f"社区划分数目不符: {name} 得到 {len(pieces)} 块"
            raise RuntimeError(msg)
        for i, (piece, cname) in enumerate(zip(pieces, com_names, strict=True), start=1):
            com_rows.append(
                {
                    "name": cname,
                    "code": f"{i:03d}",
                    "subdistrict_code": code,
                    "subdistrict": name,
                    "geometry": piece,
                }
            )
        sub_rows.append({"name": name, "code": code, "county_code": county_code, "geometry": poly})
    return sub_rows, com_rows


# --------------------------------------------------------------------------------------
# Units, categories
# --------------------------------------------------------------------------------------
def build_categories() -> list[dict]:
    """Return the national sanitary county category table as plain rows.

    Returns
    -------
    list of dict
        Keys ``code, name, level, parent, deadline_days, points, functional_unit``.
    """
    rows = []
    for code, name, days, points, unit in CATEGORIES:
        rows.append(
            {
                "code": code,
                "name": name,
                "level": 1 if len(code) == 2 else 2,
                "parent": "" if len(code) == 2 else code[:2],
                "deadline_days": days,
                "points": points,
                "functional_unit": unit,
            }
        )
    return rows


def _build_units(rng: np.random.Generator, communities: list[dict]) -> list[dict]:
    cats = build_categories()

    def functional(unit: str) -> str:
        return ";".join(c["code"] for c in cats if c["functional_unit"] == unit)

    codes = [f"{c['subdistrict_code']}-{c['code']}" for c in communities]
    departments = _DEPARTMENTS
    # 包保: each county department answers for one or two communities, round the list.
    order = list(codes)
    rng.shuffle(order)
    cycle = order * 3
    units, k = [], 0
    given = (
        "建国",
        "丽华",
        "志强",
        "云芳",
        "文斌",
        "海燕",
        "家福",
        "玉兰",
        "国华",
        "春梅",
        "明亮",
        "晓东",
        "学军",
        "秀英",
        "正荣",
        "红梅",
        "永刚",
        "丽萍",
        "德林",
        "绍华",
        "天明",
        "桂芬",
        "兴才",
        "琼仙",
        "万福",
        "惠芬",
        "光荣",
        "金凤",
        "应祥",
        "美仙",
    )
    phone = iter(range(1, 200))

    def person(i: int) -> str:
        return _SURNAMES[(i * 7) % len(_SURNAMES)] + given[i % len(given)]

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
    companies = (
        ("云岭县城乡环卫有限公司", [c for c in codes if c.endswith(("001", "003", "005"))], "0306"),
        ("云岭县供排水有限公司", [], "0603"),
        ("云岭物业服务有限公司", [codes[2], codes[7]], ""),
        ("云岭县公共交通有限公司", [], ""),
        ("云岭县城市建设投资有限公司", [codes[-1]], ""),
    )
    for name, coms, cats_ in companies:
        units.append(
            {
                "name": name,
                "kind": "company",
                "contact": person(len(units)),
                "phone": f"138000{next(phone):05d}",
                "communities": ";".join(coms),
                "functional_categories": cats_,
            }
        )
    return units


# --------------------------------------------------------------------------------------
# The cross-inspection workbook and the history
# --------------------------------------------------------------------------------------
def _fullwidth(text: str) -> str:
    return text.translate(str.maketrans("0123456789", "０１２３４５６７８９"))


def _corner(point: Point, direction: str, *, dist: float = 12.0) -> Point:
    vec = {"东北角": (1, 1), "西北角": (-1, 1), "东南角": (1, -1), "西南角": (-1, -1)}[direction]
    k = dist / math.sqrt(2)
    return Point(point.x + vec[0] * k, point.y + vec[1] * k)


class _Places:
    """Findable places of the town, with their addresses as inspectors write them."""

    def __init__(self, streets: _Streets, pois: list[dict], plates: list[dict]) -> None:
        self.streets = streets
        self.pois = pois
        self.plates = plates
        roads = streets.roads_m
        node_names: dict[tuple, set[str]] = {}
        degree: dict[tuple, int] = {}
        for seg, name in zip(roads.geometry, roads["name"], strict=True):
            for c in (seg.coords[0], seg.coords[-1]):
                node_names.setdefault(c, set()).add(name)
                degree[c] = degree.get(c, 0) + 1
        main = {n for n, h in streets.highway.items() if h in ("primary", "secondary", "tertiary")}
        self.intersections = sorted(
            (c, tuple(sorted(ns & main)))
            for c, ns in node_names.items()
            if len(ns & main) >= 2 and degree[c] >= 3  # a junction, not a change of name
        )
        self.segments = []
        self.short_roads = []
        for name, geom in sorted(streets.geoms.items()):
            if streets.highway[name] not in ("residential", "living_street", "service"):
                continue
            merged = linemerge(geom) if geom.geom_type == "MultiLineString" else geom
            if merged.geom_type != "LineString":
                continue
            ends = []
            for c in (merged.coords[0], merged.coords[-1]):
                others = sorted(node_names.get(c, set()) - {name})
                ends.append(others[0] if others else None)
            if ends[0] and ends[1] and ends[0] != ends[1] and merged.length > 60:
                self.segments.append((name, ends[0], ends[1], merged))
            if merged.length < 260:
                self.short_roads.append((name, merged))


def _make_problem(rng, form: str, places: _Places, poi_type: str | None):
    """Return (address text, truth point in metres, pieces for variants)."""
    if form == "poi":
        pool = [p for p in places.pois if p["type"] == poi_type]
        poi = pool[int(rng.integers(len(pool)))]
        if poi_type in ("农贸市场", "城中村", "医院", "学校") and rng.random() < 0.6:
            suffix = "内"
        elif poi_type == "居民小区":
            suffix = ("北门", "南门", "内", "东门")[int(rng.integers(4))]
        elif poi_type in ("公厕", "垃圾收集点", "垃圾中转站"):
            suffix = ""
        else:
            suffix = ("旁", "", "门口")[int(rng.integers(3))]
        return f"{poi['name']}{suffix}", poi["geometry"], {"kind": "poi", "poi": poi}
    if form == "house_number":
        plate = places.plates[int(rng.integers(len(places.plates)))]
        suffix = ("门前", "", "旁", "门口")[int(rng.integers(4))]
        return (
            f"{plate['street']}{plate['number']}号{suffix}",
            plate["geometry"],
            {
                "kind": "house_number",
                "street": plate["street"],
                "number": plate["number"],
                "suffix": suffix,
            },
        )
    if form == "intersection":
        coord, names = places.intersections[int(rng.integers(len(places.intersections)))]
        a, b = rng.permutation(list(names))[:2]
        corner = ("东北角", "西北角", "东南角", "西南角", "")[int(rng.integers(5))]
        point = _corner(Point(coord), corner) if corner else Point(coord)
        return (
            f"{a}与{b}交叉口{corner}",
            point,
            {"kind": "intersection", "a": a, "b": b, "corner": corner},
        )
    if form == "segment":
        name, a, b, line = places.segments[int(rng.integers(len(places.segments)))]
        return (
            f"{name}({a}至{b}段)",
            line.interpolate(0.5, normalized=True),
            {"kind": "segment", "name": name},
        )
    if form == "road":
        name, line = places.short_roads[int(rng.integers(len(places.short_roads)))]
        return name, line.interpolate(0.5, normalized=True), {"kind": "road", "name": name}
    msg = f"未知地址形式: {form}"
    raise ValueError(msg)


def _vary_address(text: str, info: dict, variant: str) -> str:
    """Write an address the sloppy ways real inspection sheets do."""
    if variant == "prefix":
        return f"{PROVINCE}{PREFECTURE}{COUNTY_NAME}{text}"
    if variant == "fullwidth" and info["kind"] == "house_number":
        return _fullwidth(text)
    if variant == "chinese" and info["kind"] == "house_number":
        cn = cn2an.an2cn(info["number"])
        return f"{info['street']}{cn}号{info['suffix']}"
    if variant == "nosuffix" and info["kind"] == "intersection":
        b = info["b"]
        if b.endswith(("路", "街")) and len(b) > 2:
            return text.replace(f"与{b}", f"与{b[:-1]}")
    if variant == "typo":
        for right, wrong in _TYPOS.items():
            if right in text:
                return text.replace(right, wrong, 1)
    return text


def _unit_for(rng, code: str, community: dict | None, units: list[dict]) -> str:
    functional = next((c[4] for c in CATEGORIES if c[0] == code), "")
    if functional and rng.random() < 0.7:
        return functional
    if community is not None:
        return f"{community['name']}居委会"
    return ""


def _build_workbook(rng, places: _Places, *, to_lonlat, locate_community, units):
    forms = (
        ["poi"] * 45
        + ["house_number"] * 34
        + ["intersection"] * 24
        + ["segment"] * 11
        + ["road"] * 8
    )
    cats_by_form: dict[str, list[str]] = {}
    for code, (_d, where) in _PROBLEMS.items():
        for w in where:
            cats_by_form.setdefault(w.split(":")[0], []).append(
                code + (":" + w.split(":")[1] if ":" in w else "")
            )
    plan = list(forms)
    rng.shuffle(plan)
    none_at = sorted(rng.choice(np.arange(5, WORKBOOK_ROWS), 4, replace=False).tolist())
    for i in none_at:
        plan.insert(int(i), "none")
    plan = plan[:WORKBOOK_ROWS]
    variants = (
        ["prefix"] * 9 + ["fullwidth"] * 4 + ["chinese"] * 4 + ["nosuffix"] * 4 + ["typo"] * 4
    )
    variant_rows = set(rng.choice(np.arange(WORKBOOK_ROWS), len(variants), replace=False).tolist())
    variant_for = dict(zip(sorted(variant_rows), rng.permutation(variants), strict=True))
    coord_rows = set(rng.choice(np.arange(WORKBOOK_ROWS), 27, replace=False).tolist())
    rows, truth = [], []
    unplaceable = list(_UNPLACEABLE)
    names = {c[0]: c[1] for c in CATEGORIES}
    for index, form in enumerate(plan):
        seq = index + 1
        found = dt.date(2026, 10, 26) + dt.timedelta(days=int(rng.integers(0, 12)))
        found_cell = (
            found.strftime("%Y.%m.%d")
            if rng.random() < 0.18
            else dt.datetime.combine(found, dt.time())
        )
        limit = ("立行立改", "7个工作日", "15个工作日", "3个工作日", "date")[int(rng.integers(5))]
        if limit == "date":
            limit = dt.datetime.combine(found + dt.timedelta(days=14), dt.time())
        if form == "none":
            code, desc, where = unplaceable.pop(0)
            cat_text = names[code]
            rows.append(
                {
                    "序号": seq,
                    "问题描述": desc,
                    "问题地点": where,
                    "问题类别": cat_text,
                    "责任单位": "" if rng.random() < 0.5 else _UNIT_WJ,
                    "发现时间": found_cell,
                    "整改时限": limit,
                    "经度": None,
                    "纬度": None,
                    "备注": "",
                }
            )
            truth.append(
                {
                    "seq": seq,
                    "lon": "",
                    "lat": "",
                    "category_code": code,
                    "address_form": "none",
                    "address": where,
                }
            )
            continue
        key = "poi" if form == "poi" else form
        choice = cats_by_form[key][int(rng.integers(len(cats_by_form[key])))]
        code, _, poi_type = choice.partition(":")
        descs = _PROBLEMS[code][0]
        desc = descs[int(rng.integers(len(descs)))]
        address, point, info = _make_problem(rng, form, places, poi_type or None)
        variant = variant_for.get(index)
        if variant:
            address = _vary_address(address, info, str(variant))
        lon, lat = to_lonlat(point)
        community = locate_community(point)
        unit = _unit_for(rng, code, community, units) if rng.random() < 0.85 else ""
        cat_text = names[code]
        if rng.random() < 0.25:
            cat_text = f"{names[code[:2]]}-{cat_text}"
        c_lon = c_lat = None
        note = ""
        if index in coord_rows:
            if rng.random() < 0.45:
                g_lon, g_lat = wgs84_to_gcj02(lon, lat)
                c_lon, c_lat = round(float(g_lon), 6), round(float(g_lat), 6)
                note = "坐标来源:高德"
            else:
                c_lon, c_lat = round(lon, 6), round(lat, 6)
                note = "坐标来源:GPS"
        rows.append(
            {
                "序号": seq,
                "问题描述": desc,
                "问题地点": address,
                "问题类别": cat_text,
                "责任单位": unit,
                "发现时间": found_cell,
                "整改时限": limit,
                "经度": c_lon,
                "纬度": c_lat,
                "备注": note,
            }
        )
        truth.append(
            {
                "seq": seq,
                "lon": f"{lon:.7f}",
                "lat": f"{lat:.7f}",
                "category_code": code,
                "address_form": form,
                "address": address,
            }
        )
    return rows, truth


_HOLIDAYS_2026 = {dt.date(2026, 10, d) for d in range(1, 9)} | {dt.date(2026, 9, 25)}


def _is_workday(day: dt.date) -> bool:
    return day.weekday() < 5 and day not in _HOLIDAYS_2026


def _add_workdays(day: dt.date, n: int) -> dt.date:
    while n > 0:
        day += dt.timedelta(days=1)
        if _is_workday(day):
            n -= 1
    return day


def _at(rng, day: dt.date) -> dt.datetime:
    minutes = int(rng.integers(8 * 60 + 30, 17 * 60 + 30))
    return dt.datetime.combine(day, dt.time(minutes // 60, minutes % 60))


def _build_history(rng, places: _Places, *, to_lonlat) -> list[dict]:
    """Return earlier problems (Aug–Nov 2026) with their handling events."""
    now = dt.date(2026, 11, 30)
    days = [dt.date(2026, 8, 1) + dt.timedelta(days=i) for i in range(120)]
    workdays = [d for d in days if _is_workday(d) and d < dt.date(2026, 11, 28)]
    forms = ["poi", "house_number", "intersection", "segment", "road"]
    deadlines = {c[0]: c[2] for c in CATEGORIES}
    cats_by_form: dict[str, list[str]] = {}
    for code, (_d, where) in _PROBLEMS.items():
        for w in where:
            cats_by_form.setdefault(w.split(":")[0], []).append(
                code + (":" + w.split(":")[1] if ":" in w else "")
            )
    src_p = np.array([0.18, 0.08, 0.02, 0.32, 0.22, 0.18])
    records = []
    closed: list[dict] = []
    total = 320
    for i in range(total):
        reported = workdays[int(rng.integers(len(workdays)))]
        recurrence = closed and i > 200 and rng.random() < 0.08
        if recurrence:
            base = closed[int(rng.integers(len(closed)))]
            code, address = base["category_code"], base["address"]
            lon = base["lon"] + float(rng.normal(0, 0.00008))
            lat = base["lat"] + float(rng.normal(0, 0.00008))
            last = dt.datetime.fromisoformat(base["events"][-1]["at"]).date()
            reported = _add_workdays(last, int(rng.integers(3, 15)))
            if reported >= now:
                recurrence = False
        if not recurrence:
            form = forms[int(rng.choice(5, p=[0.45, 0.25, 0.15, 0.1, 0.05]))]
            choice = cats_by_form[form][int(rng.integers(len(cats_by_form[form])))]
            code, _, poi_type = choice.partition(":")
            address, point, _info = _make_problem(rng, form, places, poi_type or None)
            lon, lat = to_lonlat(point)
        descs = _PROBLEMS[code][0]
        description = descs[int(rng.integers(len(descs)))]
        at = _at(rng, reported)
        events = []
        outcome = rng.random()
        t = reported
        if outcome < 0.04:
            events.append(
                {
                    "action": "reject",
                    "at": _at(rng, t).isoformat(),
                    "note": _HISTORY_NOTES["reject"],
                }
            )
        else:
            t = _add_workdays(t, int(rng.integers(0, 2)))
            events.append(
                {
                    "action": "dispatch",
                    "at": _at(rng, t).isoformat(),
                    "note": _HISTORY_NOTES["dispatch"],
                }
            )
            deadline = _add_workdays(reported, deadlines[code])
            late = rng.random() < 0.12
            rounds = 1 + int(rng.random() < 0.15) + int(rng.random() < 0.04)
            t = _add_workdays(t, int(rng.integers(0, 2)))
            if t < now:
                events.append(
                    {
                        "action": "start",
                        "at": _at(rng, t).isoformat(),
                        "note": _HISTORY_NOTES["start"],
                    }
                )
            for r in range(rounds):
                span = deadlines[code] + (int(rng.integers(2, 8)) if late else 0)
                t = _add_workdays(t, int(rng.integers(1, max(2, span))))
                if t >= now:
                    break
                events.append(
                    {
                        "action": "submit",
                        "at": _at(rng, t).isoformat(),
                        "note": _HISTORY_NOTES["submit"],
                    }
                )
                t = _add_workdays(t, int(rng.integers(1, 4)))
                if t >= now:
                    break
                ok = r == rounds - 1
                action = "verify_ok" if ok else "verify_fail"
                events.append(
                    {
                        "action": action,
                        "at": _at(rng, t).isoformat(),
                        "note": _HISTORY_NOTES[action],
                    }
                )
            del deadline
        # keep events time-ordered even when two fall on the same day
        for a, b in zip(events[:-1], events[1:], strict=False):
            if b["at"] <= a["at"]:
                b["at"] = (
                    dt.datetime.fromisoformat(a["at"]) + dt.timedelta(minutes=30)
                ).isoformat()
        if events and events[0]["at"] <= at.isoformat():
            events[0]["at"] = (at + dt.timedelta(minutes=20)).isoformat()
            for a, b in zip(events[:-1], events[1:], strict=False):
                if b["at"] <= a["at"]:
                    b["at"] = (
                        dt.datetime.fromisoformat(a["at"]) + dt.timedelta(minutes=30)
                    ).isoformat()
        record = {
            "ref": "",
            "category_code": code,
            "description": description,
            "address": address,
            "lon": round(lon, 7),
            "lat": round(lat, 7),
            "source": SOURCES[int(rng.choice(6, p=src_p))],
            "reported_at": at.isoformat(),
            "events": events,
        }
        records.append(record)
        if events and events[-1]["action"] == "verify_ok":
            closed.append(record)
    records.sort(key=lambda r: r["reported_at"])
    for i, r in enumerate(records, start=1):
        r["ref"] = f"YL2026-{i:04d}"
    return records


# --------------------------------------------------------------------------------------
# Output helpers
# --------------------------------------------------------------------------------------
def _round_geom(geom):
    return shapely.transform(geom, lambda c: np.round(c, 7))


def _frame(rows: list[dict], *, to_wgs) -> gpd.GeoDataFrame:
    gdf = gpd.GeoDataFrame(rows, geometry="geometry", crs=None)
    geoms = [_round_geom(shapely.transform(g, to_wgs)) for g in gdf.geometry]
    return gpd.GeoDataFrame(gdf.drop(columns="geometry"), geometry=geoms, crs="EPSG:4326")


def generate_demo_town(*, county_code: str = "532599", seed: int = SEED) -> DemoTown:
    """Generate the synthetic demo county seat.

    Parameters
    ----------
    county_code : str
        Six-digit GB/T 2260 county code written into ``county.json`` and the
        sub-district records. The default ``532599`` is fictitious (53 云南, 25 红河州).
    seed : int
        Seed of the one random generator; the same seed gives the same town.

    Returns
    -------
    DemoTown
        Layers as GeoDataFrames in EPSG:4326 (coordinates rounded to 7 decimals),
        units, categories, the cross-inspection workbook rows with their truth, and
        months of problem history.
    """
    if not (len(county_code) == 6 and county_code.isdigit()):
        msg = f"县级行政区划代码应为 6 位数字: {county_code!r}"
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    utm = utm_crs_for(CENTER_LON, CENTER_LAT)
    fwd = Transformer.from_crs("EPSG:4326", utm, always_xy=True)
    inv = Transformer.from_crs(utm, "EPSG:4326", always_xy=True)
    e0, n0 = fwd.transform(CENTER_LON, CENTER_LAT)
    valley = _Valley(e0=e0, n0=n0)

    def to_wgs(coords: np.ndarray) -> np.ndarray:
        x, y = inv.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    def to_lonlat(p: Point) -> tuple[float, float]:
        x, y = inv.transform(p.x, p.y)
        return round(float(x), 7), round(float(y), 7)

    boundary = _build_boundary(valley, rng)
    river_line, water = _build_river(valley)
    pool = _NamePool(rng)
    sources, majors, _levels = _draw_streets(valley, rng, pool)
    segments, _ = _node_streets(sources, boundary=boundary, water=water)

    rows, refs = [], {}
    for seg, idx in segments:
        src = sources[idx]
        d = src.line.project(seg.interpolate(0.5, normalized=True))
        name, highway = src.name_at(d)
        bridge = "yes" if water.contains(seg.interpolate(0.5, normalized=True)) else "no"
        rows.append(
            {
                "name": name,
                "highway": highway,
                "oneway": src.oneway,
                "bridge": bridge,
                "side": src.side,
                "s_mid": src.s_mid,
                "geometry": seg,
            }
        )
    for src in sources:
        start = 0.0
        for end, name, _hw in src.names:
            if name not in refs:
                refs[name] = substring(src.line, start, end)
            start = end
    roads_m = gpd.GeoDataFrame(rows, geometry="geometry")
    # Sort for a stable, readable file: by street, then along the valley.
    roads_m["_along"] = [valley.along(g.centroid.x, g.centroid.y) for g in roads_m.geometry]
    roads_m = roads_m.sort_values(["name", "_along"], kind="stable").reset_index(drop=True)
    streets = _Streets(roads_m, refs)

    inner = boundary.buffer(-3.0)
    water_zone = water.buffer(8.0)
    plates = _build_addresses(streets, inner=inner, water_zone=water_zone)
    pois = _place_pois(
        rng, streets, roads_m, inner=inner, water_zone=water_zone, valley=valley, sides={}
    )

    sub_rows, com_rows = _build_partition(boundary, river_line, majors, valley, county_code)
    com_tree = shapely.STRtree([c["geometry"] for c in com_rows])

    def locate_community(p: Point) -> dict | None:
        hits = com_tree.query(p, predicate="intersects")
        return com_rows[int(min(hits))] if len(hits) else None

    for poi in pois:
        com = locate_community(poi["geometry"])
        poi["subdistrict_code"] = com["subdistrict_code"]
        poi["community_code"] = com["code"]
    units = _build_units(rng, com_rows)
    places = _Places(streets, pois, plates)
    wb_rows, truth = _build_workbook(
        rng, places, to_lonlat=to_lonlat, locate_community=locate_community, units=units
    )
    history = _build_history(rng, places, to_lonlat=to_lonlat)

    center_lon, center_lat = to_lonlat(boundary.centroid)
    county = {
        "county_code": county_code,
        "county_name": COUNTY_NAME,
        "seat_name": SEAT_NAME,
        "province": PROVINCE,
        "prefecture": PREFECTURE,
        "center": [center_lon, center_lat],
        "utm_epsg": int(utm.to_epsg()),
        "synthetic": True,
    }

    river_rows = [
        {"name": RIVER_NAME, "kind": "water", "geometry": water},
        {"name": RIVER_NAME, "kind": "centerline", "geometry": river_line},
    ]
    road_out = roads_m[["name", "highway", "oneway", "bridge", "geometry"]].to_dict("records")
    poi_out = [
        {
            k: p[k]
            for k in ("name", "type", "address", "subdistrict_code", "community_code", "geometry")
        }
        for p in pois
    ]
    plates_sorted = sorted(plates, key=lambda r: (r["street"], r["number"]))
    return DemoTown(
        county=county,
        boundary=_frame(
            [{"name": f"{COUNTY_NAME}县城建成区", "kind": "builtup", "geometry": boundary}],
            to_wgs=to_wgs,
        ),
        river=_frame(river_rows, to_wgs=to_wgs),
        roads=_frame(road_out, to_wgs=to_wgs),
        subdistricts=_frame(sub_rows, to_wgs=to_wgs),
        communities=_frame(com_rows, to_wgs=to_wgs),
        pois=_frame(poi_out, to_wgs=to_wgs),
        addresses=_frame(plates_sorted, to_wgs=to_wgs),
        units=units,
        categories=build_categories(),
        workbook_title=f"{COUNTY_NAME}2026年10-11月州级交叉检查反馈问题清单",
        workbook_rows=wb_rows,
        truth=truth,
        history=history,
    )


__all__ = [
    "CATEGORIES",
    "POI_TYPES",
    "SOURCES",
    "WORKBOOK_HEADERS",
    "DemoTown",
    "build_categories",
    "generate_demo_town",
]
del MultiLineString
