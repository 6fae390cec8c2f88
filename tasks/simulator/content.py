"""The words tasks are made of: prompts and their translations, fail reasons, Describe and
Shorten results. Chinese first because that is what the real users type."""

import re

# (prompt as typed, promptEn as the proxy translates it)
PROMPTS = (
    ("猫猫", "Cat"),
    ("灯塔", "Lighthouse"),
    ("龙", "Dragon"),
    ("黄昏时的灯塔", "A lighthouse at dusk"),
    ("山水画，水墨风格", "Landscape painting, ink wash style"),
    ("一只在樱花树下睡觉的柴犬", "A Shiba Inu sleeping under a cherry blossom tree"),
    ("赛博朋克风格的上海夜景，霓虹灯", "Cyberpunk Shanghai night scene, neon lights"),
    ("穿汉服的少女，工笔画", "A girl in Hanfu, gongbi painting"),
    ("雪山下的小木屋，温暖的灯光", "A small wooden cabin under snowy mountains, warm light"),
    ("宇航员在月球上喝茶", "An astronaut drinking tea on the moon"),
    ("古风庭院，雨天，荷花", "Ancient Chinese courtyard, rainy day, lotus flowers"),
    ("熊猫吃竹子，皮克斯风格", "A panda eating bamboo, Pixar style"),
    ("未来城市的空中花园", "Hanging gardens of a future city"),
    ("敦煌飞天壁画", "Dunhuang flying apsaras mural"),
    ("水彩风格的江南小镇", "Watercolor Jiangnan water town"),
    ("橘猫在窗台上晒太阳", "An orange cat basking in the sun on a windowsill"),
    ("a red fox in a snowy forest, cinematic lighting", None),
    ("isometric cozy bedroom, pastel colors, 3d render", None),
    ("portrait of an old fisherman, dramatic light, 85mm", None),
    ("studio ghibli style countryside train station", None),
    ("minimalist logo of a mountain and sun, vector", None),
    ("steampunk owl with brass gears, highly detailed", None),
    ("underwater city with bioluminescent coral", None),
    ("a bowl of ramen, food photography", None),
)

# Parameters users append; the proxy passes them through untranslated.
PARAMS = ("", "", "", " --ar 16:9", " --v 6.0", " --ar 3:4 --v 6.1", " --niji 6")
PARAMS += (" --ar 2:3 --v 7 --style raw --seed 1234",)

# Used to translate prompts given to submit() that are not in PROMPTS.
GLOSSARY = {
    "猫猫": "cat",
    "猫": "cat",
    "狗": "dog",
    "灯塔": "lighthouse",
    "山水": "landscape",
    "龙": "dragon",
    "熊猫": "panda",
    "少女": "girl",
    "城市": "city",
    "夜景": "night scene",
    "樱花": "cherry blossom",
    "雪山": "snowy mountain",
    "大海": "sea",
    "海": "sea",
    "月亮": "moon",
    "花": "flower",
    "森林": "forest",
    "水墨": "ink wash",
    "风格": "style",
    "黄昏": "dusk",
    "宇航员": "astronaut",
    "机器人": "robot",
    "汉服": "Hanfu",
    "山": "mountain",
    "水": "water",
    "鸟": "bird",
    "鱼": "fish",
    "雨": "rain",
    "雪": "snow",
}

FAIL_REASONS = (
    "Invalid Form Body",
    "任务超时",
    "[Internal Server Error] 服务器内部错误: java.net.SocketTimeoutException: Read timed out",
    "Banned prompt detected",
    "[Invalid parameter] Unrecognized parameter(s): `--ar16:9`",
)

USERS = ("volvner", "xiaoming2023", "lunar_cat", "mjproxy", "kitty_art")

_NUMBERS = ("1️⃣", "2️⃣", "3️⃣", "4️⃣", "5️⃣")
_ASCII = re.compile(r"^[\x00-\x7f]*$")
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]+")


def prompt_text(index):
    # index packs a PROMPTS entry and a PARAMS suffix, so a plan stores one small int
    base, en = PROMPTS[index // len(PARAMS)]
    params = PARAMS[index % len(PARAMS)]
    return base + params, (en or base) + params


def prompt_count():
    return len(PROMPTS) * len(PARAMS)


def translate(prompt):
    for base, en in PROMPTS:
        if prompt == base:
            return en or base
    if _ASCII.match(prompt):
        return prompt
    text = prompt
    for zh in sorted(GLOSSARY, key=len, reverse=True):
        text = text.replace(zh, f" {GLOSSARY[zh]} ")
    text = _CJK.sub(" ", text)
    text = re.sub(r"\s+", " ", text).strip(" ,")
    return text or "artwork"


def slug(prompt_en):
    words = re.findall(r"[a-z0-9]+", (prompt_en or "").lower())
    return "_".join(words[:8])[:60] or "image"


def describe_result(rng):
    picks = rng.sample(range(len(PROMPTS)), 4)
    lines = []
    for n, i in enumerate(picks):
        base, en = PROMPTS[i]
        ratio = rng.choice(("1:1", "3:4", "16:9", "2:3"))
        lines.append(
            f"{_NUMBERS[n]} {(en or base).lower()}, in the style of soft light --ar {ratio}"
        )
    return "\n\n".join(lines)


def shorten_result(prompt_en, rng):
    words = re.findall(r"[A-Za-z]+", prompt_en) or ["image"]
    important = ", ".join(f"**{w}**" if rng.random() < 0.5 else w for w in words[:8])
    options = []
    for n in range(5):
        k = max(1, len(words) - n)
        options.append(f"{_NUMBERS[n]} {' '.join(words[:k]).lower()}")
    return (
        "**IMPORTANT TOKENS**\n"
        f"{important}\n\n"
        "**SHORTENED OPTIONS**\n" + "\n\n".join(options) + "\n\n"
        "Click on a button below to imagine one of the shortened prompts"
    )
