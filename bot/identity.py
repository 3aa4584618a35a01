"""Who a resident is. 18-digit ID numbers (GB 11643-1999): check digit, birth date and sex; and a forgiving reader of
the answer a resident gives to prove who they are (the household head's name, the last 6 characters of the head's ID
number) and of "stop checking". Pure functions, no I/O."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_SHAPE = re.compile(r"[0-9]{17}[0-9X]")


class InvalidIdNumber(ValueError):
    """The reason is in Chinese, ready to show to whoever typed the number."""


@dataclass(frozen=True)
class IdNumber:
    value: str
    birth_date: dt.date
    sex: str  # 男 / 女

    @property
    def suffix6(self) -> str:
        return self.value[-6:]


def check_digit(first17: str) -> str:
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def parse_id_number(raw: str) -> IdNumber:
    """The checked ID number, always in ASCII: full-width digits (as Chinese input methods type them) are read as
    digits; other scripts' digits (which int() would also take) are refused."""
    value = unicodedata.normalize("NFKC", raw or "").strip().upper()
    if not _SHAPE.fullmatch(value):
        raise InvalidIdNumber("身份证号应为18位，前17位是数字，最后一位是数字或X")
    if check_digit(value[:17]) != value[17]:
        raise InvalidIdNumber("身份证号校验位不对，请核对号码")
    try:
        birth = dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError as e:
        raise InvalidIdNumber("身份证号里的出生日期不存在") from e
    if not dt.date(1900, 1, 1) <= birth <= dt.date.today():
        raise InvalidIdNumber("身份证号里的出生日期不合理")
    return IdNumber(value, birth, "男" if int(value[16]) % 2 else "女")


def make_id_number(region6: str, birth: dt.date, sequence3: str) -> str:
    """A well-formed ID number for synthetic data and tests (the people are fictitious)."""
    first17 = f"{region6}{birth:%Y%m%d}{sequence3}"
    return first17 + check_digit(first17)


# ---------------------------------------------------------------------------------------------------------------------
# What residents type to prove who they are: "户主张三，后六位04291x", "王三元 一二五四四七", "1409 2919 5803 0704 2X"


@dataclass(frozen=True)
class IdentityAnswer:
    name: str | None  # the head's name, if the text gives one
    code: str | None  # 6 characters (5 digits, then a digit or upper-case X), if the text gives one
    full_id_given: bool  # a whole 18-character ID number was typed; only its last 6 are kept


# 百家姓: a name must start with one of these (names with a middle dot, 阿依·买买提, need not)
SURNAMES = frozenset(
    "张 王 李 赵 刘 陈 杨 黄 吴 周 徐 孙 马 朱 胡 郭 何 高 林 罗 郑 梁 谢 宋 唐 许 韩 冯 邓 曹 彭 "
    "曾 肖 田 董 袁 潘 于 蒋 蔡 余 杜 叶 程 苏 魏 吕 丁 任 沈 姚 卢 姜 崔 钟 谭 陆 汪 范 金 石 廖 "
    "贾 夏 韦 付 方 白 邹 孟 熊 秦 邱 江 尹 薛 闫 段 雷 侯 龙 史 陶 黎 贺 顾 毛 郝 龚 邵 万 钱 严 "
    "覃 武 戴 莫 孔 向 汤 常 温 康 施 文 牛 樊 葛 邢 安 齐 易 乔 伍 庞 颜 倪 庄 聂 章 鲁 岳 翟 殷 "
    "詹 申 欧 耿 关 兰 焦 俞 左 柳 甘 祝 包 宁 尚 符 舒 阮 柯 纪 梅 童 凌 毕 单 季 裴 霍 涂 成 苗 "
    "谷 盛 曲 翁 冉 骆 蓝 路 游 辛 靳 管 柴 蒙 鲍 华 喻 祁 蒲 房 滕 屈 饶 解 牟 艾 尤 阳 时 穆 农 "
    "司 卓 古 吉 缪 简 车 项 连 芦 麦 褚 娄 窦 戚 岑 景 党 宫 费 卜 冷 晏 席 卫 米 柏 宗 瞿 桂 全 "
    "佟 应 臧 闵 苟 邬 边 卞 姬 师 和 仇 栾 隋 商 刁 沙 荣 巫 寇 桑 郎 甄 丛 仲 虞 敖 巩 明 佘 池 "
    "查 麻 苑 迟 邝 官 封 谈 匡 鞠 惠 荆 乐 冀 郁 胥 南 班 储 原 栗 燕 楚 鄢 劳 谌 奚 皮 粟 冼 蔺 "
    "楼 盘 满 闻 位 厉 伊 仝 区 郜 海 阚 花 权 强 帅 屠 豆 朴 盖 练 廉 禹 井 祖 漆 巴 丰 支 卿 国 "
    "狄 平 计 索 宣 晋 相 初 门 云 容 敬 来 扈 晁 芮 都 普 阙 浦 戈 伏 鹿 薄 邸 雍 辜 羊 阿 乌 母 "
    "裘 亓 修 邰 赫 杭 况 那 宿 鲜 印 逯 隆 茹 诸 战 慕 危 玉 银 亢 嵇 公 哈 湛 宾 戎 勾 茅 利 於 "
    "呼 居 揭 干 但 尉 冶 斯 元 束 檀 衣 信 展 阴 昝 智 幸 奉 植 衡 富 尧 闭 由".split()
)
COMPOUND_SURNAMES = frozenset(
    "欧阳 司马 上官 诸葛 东方 皇甫 尉迟 公孙 慕容 令狐 长孙 宇文 司徒 夏侯 端木 独孤 南宫 万俟 呼延 西门".split()
)

# --- the code: digits, Chinese numerals (幺 = 1, 洞 = 0, 两 = 2), X, with spaces, dashes or dots between them ---
_DIGIT_VALUE = {str(d): str(d) for d in range(10)} | {
    "零": "0", "〇": "0", "洞": "0", "一": "1", "幺": "1", "二": "2", "两": "2", "三": "3",
    "四": "4", "五": "5", "六": "6", "七": "7", "八": "8", "九": "9",
}  # fmt: skip
_CHINESE_DIGITS = frozenset(ch for ch in _DIGIT_VALUE if not ch.isascii())
_X_CHARS = frozenset("Xx叉×")
_TOKEN = r"(?:[0-9零〇洞一幺二两三四五六七八九叉×]|(?<![A-Za-z])[Xx](?![A-Za-z]))"
_SEPARATOR = r"[ \t\-‐‑‒–—―−_.]"
_RUN = re.compile(rf"{_TOKEN}(?:{_SEPARATOR}{{0,3}}{_TOKEN})*")
_TOKEN_RE = re.compile(_TOKEN)
# "后六位", "最后6个数字", "18位", "尾号": labels whose numerals are not part of the code
_CODE_LABEL = re.compile(
    r"(?:(?:最后|后面|末尾|末|尾|后)\s*)?(?<![0-9])(?:[六6]|十八|18)\s*(?:位|个)(?:数字|数|号码|号)?"
    r"|(?:最后|后面|末尾|末|尾|后)\s*(?:[六6]|十八|18)(?![0-9])|尾号"
)
_LABEL_ENDS = frozenset("是号码位叫的证数字为")  # a run right after these starts the code; no name ends there
_SOFT_PREFIX_MAX = 3  # Chinese numerals just before a code may end the name: 张三125447, 赵六一二五四四七
_CODE_SHAPE = re.compile(r"^\d{5}[\dX]$")

# --- the name ---
_HAN = "\u3400-\u4dbf\u4e00-\u9fff"
_DOTS = re.compile(rf"(?<=[{_HAN}])\s*[·•‧・.．]\s*(?=[{_HAN}])")
_PIECE = re.compile(rf"[{_HAN}·]+|\x01")
_QUESTION = re.compile(r"吗|呢|么|啥|什么|怎么|多少|哪|谁")
_HEAD = "\x01"  # stands for "户主" in the text: the name after it is the head's
_HEAD_WORDS = re.compile(r"户主(?:人)?(?:的)?(?:姓名|名字|全名|名)?")
# words around a name that are not the name; longest first, so 身份证号码 goes before 身份证
_FILLERS = sorted(
    """
    姓名 名字 全名 名叫 叫做 我叫 叫 就是 是 姓 本人 我是 我们家 我们 我家 俺家 咱家 家里 俺 咱 我 的
    身份证号码 身份证号 身份证 证件号码 证件号 号码 号 电话号码 电话 手机号码 手机号 手机 联系方式
    你好 您好 好的 好吧 谢谢你 谢谢您 谢谢 麻烦你 麻烦您 麻烦了 麻烦 请 帮我查 帮我 帮忙 查一下 一下 核对 验证 输入
    说错了 搞错了 写错了 弄错了 打错了 错了 不对 刚才 重新说 更正 应该是 其实是 写的是 写的 登记的是 登记的 登记
    对 对的 没错 嗯嗯 嗯 额 呃 哦 噢 喔 啊 吧 呀 啦 呗 咯 哟 哇 嘞 那个 这个
    爸爸 老爸 我爸 父亲 妈妈 老妈 我妈 母亲 老公 爱人 丈夫 媳妇 老婆 妻子 儿子 女儿 爷爷 奶奶 老伴 公公 婆婆
    """.split(),
    key=len,
    reverse=True,
)
_FILLER = re.compile("|".join(map(re.escape, _FILLERS)))
# characters never found in a given name; they show the text is a phrase (申请低保, 钱到了, 敬老院)
_NOT_IN_GIVEN_NAME = frozenset(
    "了吗呢吧啊呀啦哦么啥哪谁怎咋嘛呗的们这个吃喝没别就很给被把让请帮办"
    "说讲找钱费贴补销码卡证院房屋查领缴报医想要租款姨岗部用你他她它去活位"
    "户漏喽答卦障规沟庄村坪湾峪寨窑洼乡县省街巷社场馆站厂局委"  # 文明户, 宋家沟, 居委
)
# transliterated names (买买提, 阿不都, 卡德尔) use more characters; these never
_NOT_IN_DOTTED_NAME = frozenset("了吗呢吧啊呀啦哦么啥哪谁怎咋嘛呗的们这个你他她它我是")
# words that are not names even though they start with a surname (危房, 马上, 路费, 高龄补贴)
_NOT_NAME_WORDS = re.compile(
    "|".join(
        """
        低保 补贴 补助 申请 报销 医保 社保 农保 养老 危房 安置 改造 敬老 公益 就业 培训 贷款 救助
        津贴 保险 户口 上学 看病 工资 政策 条件 材料 手续 办理 时候 时间 马上 明天 今天 昨天 后天
        以后 现在 干活 打工 路费 车费 房租 安居 阿姨 大爷 大妈 叔叔 老师 师傅 孙子 孙女 孩子 老人
        社区 村里 政府 干部 书记 主任 工作 农村 明白 知道 可以 需要 应该 符合 关于 由于 于是 但是
        国家 平时 计划 普通 银行 信息 哈哈 劳务 门诊 盖章 支付 项目 简单 解决 原因 原来 党员 毕业
        范围 曾经 方便 康复 周末 高龄 全部 全家 都行 商量 查询 公交 公司 居住 居委 宿舍 管理 施工
        季度 辛苦 记得 记不 不对 没有 不用 不查 算了 取消 退出 再说 易地 搬迁 扶贫 车间 维修 居民 方面 强化 周边
        区划 蒙古 居家 都有 全县 位于 位置 门口 区里 常态 焦化 公共 楼长 单元 党委 原有 权益 保障 广场 超市 议事
        理事 委员 实践 时代
        """.split()
    )
)

# whole messages that are no names, though names may contain them (高中华, 安全生)
_NOT_NAMES = frozenset(
    "初中 高中 安全 安排 和谐 公告 公示 方法 方式 程序 全面 路线 路口 车票 车辆 利率 余额 班车 满意 国庆".split()
)


def _run_candidates(text: str, run: re.Match) -> list[tuple[int, int, str]]:
    """The 6- and 18-character numbers in one run of digits as (start, end, value). A number inside a longer run is
    none, unless spaces part it from a neighbour (one of the two 6 or more long), or what comes before it are at most 3
    Chinese numerals right after a word (the end of a name: 张三125447, 赵六一二五四四七)."""
    tokens = list(_TOKEN_RE.finditer(text, run.start(), run.end()))
    n = len(tokens)
    spaced = [i > 0 and tokens[i].start() > tokens[i - 1].end() for i in range(n)]
    group_of, sizes = [], []
    for i in range(n):
        if i == 0 or spaced[i]:
            sizes.append(0)
        group_of.append(len(sizes) - 1)
        sizes[-1] += 1
    hard = [i > 0 and spaced[i] and max(sizes[group_of[i - 1]], sizes[group_of[i]]) >= 6 for i in range(n)] + [True]
    chinese = [t.group() in _CHINESE_DIGITS for t in tokens]
    before = text[run.start() - 1] if run.start() else ""
    after_word = bool(re.match(rf"[{_HAN}]", before)) and before not in _LABEL_ENDS
    found = []
    for length in (6, 18):
        for a in range(n - length + 1):
            b = a + length
            soft = after_word and a <= _SOFT_PREFIX_MAX and all(chinese[:a])
            if not (a == 0 or hard[a] or soft) or not hard[b]:
                continue
            if a == 0 and after_word and chinese[0] and any(t.group().isascii() for t in tokens[:b]):
                continue  # 张三 12544: the 三 ends the name, the digits are too few
            chars = [t.group() for t in tokens[a:b]]
            if any(ch in _X_CHARS for ch in chars[:-1]):
                continue
            if group_of[a] != group_of[b - 1] and any(sizes[g] > 8 for g in range(group_of[a], group_of[b - 1] + 1)):
                continue  # spaced parts of one number are short: 140929 19580307 042X, not 125447 13812345678
            found.append((tokens[a].start(), tokens[b - 1].end(), "".join(_DIGIT_VALUE.get(ch, "X") for ch in chars)))
    return found


def _codes(text: str) -> tuple[list[str], set[int]]:
    """Every 6- or 18-character number in the text, in order, and the positions of the characters that are no name:
    those numbers and all ASCII digits and X (Chinese numerals outside a number may be part of a name: 王三元)."""
    values: list[tuple[int, str]] = []
    used: set[int] = set()
    for run in _RUN.finditer(text):
        for start, end, value in _run_candidates(text, run):
            values.append((start, value))
            used.update(range(start, end))
        used.update(m.start() for m in _TOKEN_RE.finditer(text, run.start(), run.end()) if m.group().isascii())
    return [value for _, value in sorted(values)], used


def _as_name(piece: str) -> str | None:
    if "·" in piece:  # minority names: 阿依·买买提, 买买提·吐尔逊
        parts = piece.split("·")
        if len(piece) > 8 or len(parts) > 3 or any(len(p) < 2 for p in parts):
            return None
        if any(ch in _NOT_IN_DOTTED_NAME for ch in piece) or all(ch in _CHINESE_DIGITS for ch in piece if ch != "·"):
            return None
    elif piece[:2] in COMPOUND_SURNAMES and 3 <= len(piece) <= 5:
        pass
    elif piece[0] in SURNAMES and 2 <= len(piece) <= 4:
        if any(ch in _NOT_IN_GIVEN_NAME for ch in piece[1:]):
            return None
    else:
        return None
    if _NOT_NAME_WORDS.search(piece) or piece in _NOT_NAMES:
        return None
    return piece


def _name(text: str) -> str | None:
    text = _DOTS.sub("·", text)
    text = _HEAD_WORDS.sub(_HEAD, text)
    text = _FILLER.sub("\n", text)
    pieces: list[tuple[str, bool]] = []  # (piece, right after 户主)
    after_head = False
    for m in _PIECE.finditer(text):
        if m.group() == _HEAD:
            after_head = True
            continue
        if m.group().strip("·"):
            pieces.append((m.group().strip("·"), after_head))
        after_head = False
    names = [_as_name(p) for p, _ in pieces]
    if not names or not all(names):
        return None
    if len(set(names)) == 1:
        return names[0]
    heads = [p for p, head in pieces if head]
    return heads[0] if len(heads) == 1 else None


def parse_identity_answer(text: str) -> IdentityAnswer:
    """The head's name and the last 6 characters of the head's ID number, as far as the text gives them.

    Forgiving about how the code is written (Chinese numerals, full-width digits, spaces, a whole ID number) and strict
    about names: a name starts with a known surname and is all that is left once the words around it are removed, so a
    question or a phrase ("申请低保", "算了") is never taken for one."""
    text = unicodedata.normalize("NFKC", text or "")
    text = _CODE_LABEL.sub("\n", text)
    numbers, used = _codes(text)
    full = [value for value in numbers if len(value) == 18]
    if full:  # a whole ID number wins over a 6-character one; of several, the last (a correction) counts
        code, full_id_given = full[-1][-6:], True
    else:
        code, full_id_given = (numbers[-1] if numbers else None), False
    if code is not None and not _CODE_SHAPE.match(code):
        code, full_id_given = None, False
    rest = "".join("\n" if i in used else ch for i, ch in enumerate(text))
    name = None if _QUESTION.search(text) or is_cancel(text) else _name(rest)
    return IdentityAnswer(name=name, code=code, full_id_given=full_id_given)


# --- "stop checking" ---
_NOT_WORD = re.compile(r"[\W_]+")
_LEADING = re.compile(r"^(?:那就|那么|那|还是|要不|我看|我|俺|就|嗯|哎呀|哎哟|哎|唉|好吧|好|行|哦)+")
_TRAILING = re.compile(r"(?:吧|啊|呀|啦|哈|嘛|哦|呗|了|谢谢你|谢谢|谢了)+$")
_CANCEL_WORDS = frozenset(
    "不查 算 不用 取消 退出 不弄 先不查 以后再说 换个人查 不想查 不用查 不要查 别查 不办 不想弄 "
    "不问 不查询 停 停止 结束 放弃 下次再说 改天再说 回头再说 再说 不要 不需要 不干 没事 不用麻烦".split()
)
_CANCEL_START = tuple("不查 算了 不用查 不用了 取消 退出 不想查 先不查 以后再说 换个人查 不要查 别查".split())


def is_cancel(text: str) -> bool:
    """The resident wants to stop the check: 不查了, 算了吧, 那就算了吧, 取消, 以后再说, 换个人查 ...
    The whole message says so, or its last part: "身份证不在手边 不用了"."""
    parts = [part for part in _NOT_WORD.split(unicodedata.normalize("NFKC", text or "")) if part]
    return bool(parts) and (_is_cancel_phrase("".join(parts)) or _is_cancel_phrase(parts[-1]))


def _is_cancel_phrase(said: str) -> bool:
    said = _LEADING.sub("", said)
    return bool(said) and (said.startswith(_CANCEL_START) or _TRAILING.sub("", said) in _CANCEL_WORDS)
