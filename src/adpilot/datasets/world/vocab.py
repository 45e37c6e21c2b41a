"""The world's vocabulary: categories, attributes, style topics, brands, places and text templates.

Everything the generator writes as text comes from here, so that the catalogue, the search queries, the reviews
and the ad copy speak about the same attribute values (AdvertiseGen ``key#value`` style), and the truth oracle can
find those values again in any text.
"""

from __future__ import annotations

from dataclasses import dataclass

# (zh, en) pairs throughout: index 0 Chinese, index 1 English.
Word = tuple[str, str]

STYLES: tuple[Word, ...] = (
    ("简约", "minimalist"), ("复古", "vintage"), ("运动", "sporty"), ("甜美", "sweet"),
    ("商务", "business"), ("潮流", "trendy"), ("文艺", "artsy"), ("休闲", "casual"),
)
"""The latent style topics; a user's style taste is a distribution over these eight."""

FOOD_STYLES: tuple[Word, ...] = (
    ("清淡", "light"), ("老字号", "heritage"), ("高蛋白", "high-protein"), ("香甜", "sweet"),
    ("精品", "premium"), ("网红", "trending"), ("手工", "handmade"), ("休闲", "snack"),
)
"""Food speaks of the same eight topics with its own words (a topic is latent; words are per category)."""

COLORS: tuple[Word, ...] = (("白色", "white"), ("黑色", "black"), ("红色", "red"), ("蓝色", "blue"),
                            ("灰色", "grey"), ("粉色", "pink"), ("卡其色", "khaki"), ("绿色", "green"))


@dataclass(frozen=True)
class Leaf:
    """A leaf category: names, median price (RMB), price spread (log sd) and gender lean (-1 men .. +1 women)."""

    zh: str
    en: str
    price: float
    spread: float
    lean: float


@dataclass(frozen=True)
class TopCategory:
    """A top category: its leaves, attribute keys with values, the key naming the style topic, brands."""

    zh: str
    en: str
    leaves: tuple[Leaf, ...]
    attributes: tuple[tuple[Word, tuple[Word, ...]], ...]
    style_key: Word
    style_words: tuple[Word, ...]
    brands: tuple[Word, ...]
    selling: tuple[Word, ...]


_FEATURE = ("功能", "feature")
_MATERIAL = ("材质", "material")
_COLOR = ("颜色", "color")

CATEGORIES: tuple[TopCategory, ...] = (
    TopCategory(
        "服装", "Clothing",
        (Leaf("上衣", "top", 129, 0.45, 0.6), Leaf("连衣裙", "dress", 219, 0.45, 1.0),
         Leaf("裤子", "trousers", 159, 0.4, 0.0), Leaf("外套", "jacket", 329, 0.5, 0.1),
         Leaf("卫衣", "hoodie", 169, 0.35, -0.2)),
        ((_MATERIAL, (("牛仔布", "denim"), ("棉", "cotton"), ("针织", "knit"), ("雪纺", "chiffon"),
                      ("羊毛", "wool"), ("真丝", "silk"), ("亚麻", "linen"))),
         (_COLOR, COLORS),
         (("图案", "pattern"), (("纯色", "solid"), ("条纹", "striped"), ("格子", "plaid"), ("印花", "print"),
                              ("刺绣", "embroidered"))),
         (("版型", "fit"), (("宽松", "loose"), ("修身", "slim"), ("直筒", "straight")))),
        ("风格", "style"), STYLES,
        (("北岸", "Northshore"), ("木棉记", "Kapok"), ("素野", "Wildplain"), ("拾光", "Daylight"),
         ("青屿", "Isle"), ("言几", "Yanji")),
        (("百搭显瘦", "easy to match"), ("舒适透气", "breathable comfort"), ("时尚百搭", "effortless style")),
    ),
    TopCategory(
        "鞋靴", "Shoes",
        (Leaf("运动鞋", "sneakers", 399, 0.45, -0.3), Leaf("高跟鞋", "heels", 259, 0.4, 1.0),
         Leaf("靴子", "boots", 359, 0.4, 0.3), Leaf("凉鞋", "sandals", 129, 0.4, 0.4)),
        ((_MATERIAL, (("真皮", "leather"), ("网面", "mesh"), ("帆布", "canvas"), ("麂皮", "suede"))),
         (_COLOR, COLORS),
         (_FEATURE, (("透气", "breathable"), ("减震", "cushioned"), ("防滑", "non-slip"), ("轻便", "lightweight")))),
        ("风格", "style"), STYLES,
        (("步履", "Stride"), ("云迹", "Cloudtrail"), ("踏歌", "Tage"), ("Vela", "Vela")),
        (("久走不累", "all-day comfort"), ("轻盈脚感", "light on your feet")),
    ),
    TopCategory(
        "运动", "Sports",
        (Leaf("瑜伽垫", "yoga mat", 89, 0.4, 0.6), Leaf("篮球", "basketball", 149, 0.35, -0.8),
         Leaf("哑铃", "dumbbells", 199, 0.5, -0.6), Leaf("帐篷", "tent", 459, 0.5, -0.3),
         Leaf("跑步短裤", "running shorts", 99, 0.35, -0.2)),
        ((_MATERIAL, (("TPE", "TPE"), ("橡胶", "rubber"), ("铝合金", "aluminium"), ("尼龙", "nylon"))),
         (_COLOR, COLORS[:5]),
         (_FEATURE, (("防水", "waterproof"), ("便携", "portable"), ("耐磨", "durable"), ("轻量", "lightweight")))),
        ("风格", "style"), STYLES,
        (("极动", "Kinetic"), ("远山", "Farpeak"), ("跃界", "Leapline"), ("Orca", "Orca")),
        (("专业训练", "pro training"), ("户外必备", "outdoor essential")),
    ),
    TopCategory(
        "数码", "Digital",
        (Leaf("耳机", "headphones", 299, 0.6, -0.2), Leaf("手机", "smartphone", 2999, 0.5, -0.1),
         Leaf("平板电脑", "tablet", 2499, 0.4, 0.0), Leaf("智能手表", "smartwatch", 999, 0.5, -0.2),
         Leaf("充电宝", "power bank", 129, 0.35, -0.1)),
        ((_COLOR, (("黑色", "black"), ("白色", "white"), ("银色", "silver"), ("蓝色", "blue"))),
         (_FEATURE, (("降噪", "noise-cancelling"), ("快充", "fast charging"), ("长续航", "long battery life"),
                     ("防水", "waterproof"), ("高清屏", "HD display"))),
         (("连接", "connectivity"), (("蓝牙", "Bluetooth"), ("5G", "5G"), ("Wi-Fi", "Wi-Fi"), ("USB-C", "USB-C")))),
        ("风格", "style"), STYLES,
        (("星核", "Starcore"), ("声屿", "Soundisle"), ("极光", "Aurora"), ("Nimbus", "Nimbus")),
        (("旗舰性能", "flagship performance"), ("学生党必备", "student favourite")),
    ),
    TopCategory(
        "美妆", "Beauty",
        (Leaf("口红", "lipstick", 189, 0.4, 1.0), Leaf("面霜", "face cream", 299, 0.5, 0.8),
         Leaf("精华", "serum", 399, 0.5, 0.8), Leaf("香水", "perfume", 499, 0.5, 0.6)),
        ((("功效", "effect"), (("保湿", "hydrating"), ("美白", "brightening"), ("抗皱", "anti-ageing"),
                             ("控油", "oil control"), ("修护", "repairing"))),
         (("肤质", "skin type"), (("干性", "dry"), ("油性", "oily"), ("混合", "combination"), ("敏感", "sensitive"))),
         (("成分", "ingredient"), (("玻尿酸", "hyaluronic acid"), ("烟酰胺", "niacinamide"), ("维C", "vitamin C"),
                                 ("视黄醇", "retinol")))),
        ("风格", "style"), STYLES,
        (("花间", "Floret"), ("澄肌", "Clearskin"), ("若水", "Ruoshui"), ("Lumen", "Lumen")),
        (("温和不刺激", "gentle formula"), ("持久显色", "long-lasting")),
    ),
    TopCategory(
        "家居", "Home",
        (Leaf("床品四件套", "bedding set", 299, 0.45, 0.4), Leaf("台灯", "desk lamp", 159, 0.4, 0.0),
         Leaf("收纳盒", "storage box", 49, 0.4, 0.3), Leaf("保温杯", "insulated bottle", 99, 0.35, 0.1)),
        ((_MATERIAL, (("纯棉", "cotton"), ("陶瓷", "ceramic"), ("不锈钢", "stainless steel"), ("实木", "solid wood"),
                      ("竹", "bamboo"))),
         (_COLOR, COLORS),
         (_FEATURE, (("易清洗", "easy-clean"), ("节能", "energy-saving"), ("大容量", "large-capacity"),
                     ("可折叠", "foldable")))),
        ("风格", "style"), STYLES,
        (("栖木", "Perch"), ("暖居", "Warmhome"), ("素舍", "Plainhouse"), ("Oaken", "Oaken")),
        (("品质生活", "better living"), ("居家好物", "home essential")),
    ),
    TopCategory(
        "食品", "Food",
        (Leaf("坚果", "nuts", 69, 0.4, 0.1), Leaf("茶叶", "tea", 159, 0.6, -0.2), Leaf("咖啡", "coffee", 89, 0.45, 0.0),
         Leaf("零食礼包", "snack box", 59, 0.35, 0.3), Leaf("牛奶", "milk", 65, 0.3, 0.1)),
        ((("口味", "flavour"), (("原味", "original"), ("五香", "spiced"), ("香辣", "spicy"), ("甜味", "sweet"),
                              ("抹茶", "matcha"))),
         (("产地", "origin"), (("云南", "Yunnan"), ("新疆", "Xinjiang"), ("福建", "Fujian"), ("内蒙古", "Inner Mongolia"),
                             ("进口", "imported"))),
         (("规格", "pack"), (("500g", "500g"), ("1kg", "1kg"), ("礼盒装", "gift box"), ("家庭装", "family pack")))),
        ("特色", "highlight"), FOOD_STYLES,
        (("山野集", "Wildharvest"), ("味之坊", "Flavourhouse"), ("茗香", "Mingxiang"), ("Kernel", "Kernel")),
        (("新鲜直发", "shipped fresh"), ("健康美味", "healthy and tasty")),
    ),
)

LEAVES: tuple[tuple[int, Leaf], ...] = tuple((c, leaf) for c, top in enumerate(CATEGORIES) for leaf in top.leaves)
"""Every leaf with the index of its top category; a user's category interest is a distribution over these."""

GEOS: tuple[str, ...] = ("CN-BJ", "CN-SH", "CN-GD", "CN-ZJ", "CN-JS", "CN-SC", "CN-HB", "CN-SD", "CN-FJ", "CN-HA",
                         "CN-SN", "CN-CQ")
GEO_WEIGHTS: tuple[float, ...] = (0.10, 0.10, 0.16, 0.11, 0.11, 0.08, 0.06, 0.09, 0.05, 0.06, 0.04, 0.04)
AGE_BANDS: tuple[str, ...] = ("18-24", "25-34", "35-44", "45-54", "55+")
AGE_WEIGHTS: tuple[float, ...] = (0.22, 0.36, 0.22, 0.12, 0.08)
DEVICES: tuple[str, ...] = ("mobile", "desktop", "tablet")
SLOTS: tuple[str, ...] = ("home_banner", "search_top", "item_related", "feed")
SEASONS: tuple[Word, ...] = (("春季新款", "Spring"), ("夏季新款", "Summer"), ("秋冬新款", "Autumn/Winter"),
                             ("2026新款", "2026"))
"""Title prefixes of seasonal categories (clothing, shoes)."""
EDITIONS: tuple[Word, ...] = (("2026新款", "2026"), ("热销款", "Bestseller"), ("官方正品", "Official"))
"""Title prefixes of the other categories."""

REVIEW_TEMPLATES: dict[str, tuple[Word, ...]] = {
    "pos": (("{a1}很正，{a2}质感不错，{style}风格很喜欢，物流也快，会回购。",
             "Love it: the {a1} is spot on and the {a2} feels great. Very {style}, fast delivery, will buy again."),
            ("收到了，{title_short}和描述一致，{a1}{a2}都满意，好评！",
             "Arrived as described, {a1} and {a2} both great. Five stars.")),
    "mid": (("{a1}还可以，{a2}一般，价格还算合适。",
             "The {a1} is fine, the {a2} is so-so; fair for the price."),
            ("整体中规中矩，{style}风格还行，{a2}有点失望。",
             "Okay overall, nicely {style}, but the {a2} disappointed me a little.")),
    "neg": (("{a1}和图片差别很大，{a2}做工粗糙，不推荐。",
             "The {a1} looks nothing like the photos and the {a2} is poorly made. Not recommended."),
            ("质量不行，{a2}用了几天就有问题，退货了。",
             "Poor quality: the {a2} had problems after a few days. Returned it.")),
}
"""Review text per sentiment; ``{a1}``/``{a2}`` are the product's attribute values, so reviews carry its words."""

CREATIVE_TEMPLATES: tuple[tuple[Word, str], ...] = (
    (("{style}风{a1}{a2}{leaf}，{a3}，{brand}{selling}，限时优惠！",
      "{brand} {style} {a1} {a2} {leaf}: {a3}, {selling}. Limited-time offer!"), "human"),
    (("{brand}{leaf}，{a1}新品上市，{selling}", "New {a1} {leaf} from {brand}, {selling}."), "template"),
    (("{a2}{leaf}，{style}之选", "{a2} {leaf} for a {style} look"), "template"),
    (("爆款好物，限时抢购，点击查看！", "Bestseller, limited stock. Tap to see more!"), "human"),
)
"""Ad copy of graded richness (many attribute values / the style word / none), so creative quality varies."""
