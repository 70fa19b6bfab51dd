"""The moderation word filter: a pure module, fed plain strings.

A comment is matched in its *matching form*: each character NFKC-normalised and casefolded
(core/rules.py `normalise`, the one normaliser of liveroom: full-width letters and digits
become ASCII, case goes), traditional Chinese folded to simplified (a table of the common
characters below: opencc is not a dependency), and every space, punctuation mark, symbol,
control and format character dropped, so that `微 信`, `微.信`, `ＶＸ` and `微信` are one
word. Each character of the form remembers which character of the original it came from,
so a match can be masked in the text as shown (`mask`).

Words are put through the same form and looked up with one Aho-Corasick automaton (`Automaton`
below: one pass over the comment whatever the number of words, a dict lookup per character;
pyahocorasick was measured and is slower here: its nodes scan their children linearly, and
the root of a Chinese word list has thousands; see bench/word_filter.py). A built-in rule, switched on per filter, finds contact details:
mainland mobile numbers, WeChat ids after 微信/VX/V信/加V/WX, QQ numbers after QQ/扣扣.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable

from liveroom.core.rules import normalise

ACTIONS = ("refuse", "mask", "shadow")

# traditional -> simplified, the characters most seen in evasions and everyday comments
# (each pair is one traditional and one simplified character, in one string for reading)
_T2S_PAIRS = (
    "號号聯联繫系賣卖買买錢钱網网幣币紅红騙骗贏赢獎奖資资訊讯鏈链碼码員员車车東东"
    "們们個个這这來来說说時时會会對对發发國国學学過过後后無无與与還还進进開开關关問问間间實实"
    "體体點点動动機机當当經经現现樣样種种見见頭头長长門门裡里話话讓让愛爱報报場场單单風风電电"
    "變变議议題题氣气親亲紙纸總总邊边戰战陽阳陰阴書书寫写聽听貓猫魚鱼鳥鸟馬马門门愛爱廣广東东"
    "團团圓圆園园義义藥药醫医療疗傳传價价優优術术華华衛卫論论設设認认讀读課课謝谢請请試试該该"
    "詳详細细約约級级紀纪絡络給给綠绿線线練练組组結结統统續续維维編编績绩縣县飛飞輸输轉转辦办"
    "運运遠远選选還还醬酱釣钓鐘钟鐵铁銀银鋪铺銷销鏡镜長长陳陈隊队隨随險险雙双雞鸡難难靈灵頁页"
    "順顺領领額额顏颜願愿類类飯饭飲饮養养館馆髮发鬥斗麥麦黃黄齊齐齒齿龍龙龜龟擊击據据擴扩擁拥"
    "攜携撥拨擇择據据揚扬換换掃扫掛挂採采搖摇敗败敵敌數数斷断氣气溝沟滅灭漢汉濕湿為为烏乌燈灯"
    "營营獨独獲获環环現现産产畢毕盤盘眾众礦矿禮礼禍祸積积窮穷競竞筆笔範范簡简糧粮義义習习聖圣"
    "腦脑膽胆臉脸舊旧艱艰莊庄萬万葉叶蘇苏蘭兰處处號号虧亏蝦虾蟲虫衝冲補补裝装複复覺觉觀观規规"
    "視视親亲謊谎證证識识護护豐丰貝贝負负財财責责貨货販贩貧贫貴贵費费賀贺資资賓宾賞赏賠赔質质"
    "購购賬账贈赠趕赶躍跃輕轻較较載载輛辆辭辞邊边郵邮鄉乡鍋锅錯错錄录鐘钟閃闪閱阅陸陆階阶雖虽"
    "霧雾響响頂顶項项預预頻频題题顯显餘余驗验騎骑驚惊體体鬧闹魯鲁鮮鲜鹽盐麗丽黨党"
)
T2S: dict[str, str] = {_T2S_PAIRS[i]: _T2S_PAIRS[i + 1] for i in range(0, len(_T2S_PAIRS) - 1, 2)}

# dropped from the matching form: spaces, punctuation, symbols, controls and format chars
_DROP_MAJOR = frozenset("ZPSC")

# contact details, found in the matching form (lower case, no spaces or punctuation)
_CONTACT_RES = (
    ("phone", re.compile(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])")),
    ("wechat", re.compile(r"(?:微信|威信|vx|wx|v信|加v|加微)(?:号|id)?([a-z][a-z0-9]{4,19}|1[3-9][0-9]{9})")),
    ("qq", re.compile(r"(?:qq|扣扣|企鹅)(?:号)?([1-9][0-9]{4,10})")),
)


def _fold(ch: str) -> str:
    """One original character in the matching form: "" when it is dropped."""
    out = []
    for c in normalise(ch):  # NFKC + casefold (may give several characters, e.g. "ﬁ")
        if unicodedata.category(c)[0] in _DROP_MAJOR:
            continue
        out.append(T2S.get(c, c))
    return "".join(out)


_FOLDED: dict[str, str] = {}  # character -> its matching form, filled as characters are seen
_FOLDED_MAX = 200_000  # a bound on the cache (Unicode has ~150,000 assigned characters)


def matching_form(text: str) -> tuple[str, list[int]]:
    """`text` as matching sees it, and for each of its characters the index of the original
    character it came from."""
    form: list[str] = []
    where: list[int] = []
    cache = _FOLDED
    for i, ch in enumerate(text):
        f = cache.get(ch)
        if f is None:
            f = _fold(ch)
            if len(cache) < _FOLDED_MAX:
                cache[ch] = f
        if f:
            form.append(f)
            where.extend([i] * len(f)) if len(f) > 1 else where.append(i)
    return "".join(form), where


class _FoldTable(dict[int, str]):
    """str.translate's table: code point -> matching form, computed on first sight."""

    def __missing__(self, code: int) -> str:
        f = _fold(chr(code))
        if len(self) < _FOLDED_MAX:
            self[code] = f
        return f


_TABLE = _FoldTable()


def fast_form(text: str) -> str:
    """The matching form alone (no map back), in C: what every comment costs."""
    return text.translate(_TABLE)


def word_form(word: str) -> str:
    return fast_form(word)


@dataclass(frozen=True, slots=True)
class Match:
    start: int  # in the original text: the first matched character
    end: int  # one past the last matched character
    what: str  # the word (in matching form), or "contact:<rule>"
    chars: tuple[int, ...]  # the original characters that made the match (masked ones)


class Automaton:
    """Aho-Corasick over str: a trie of dicts with failure links, outputs merged along them."""

    __slots__ = ("goto", "fail", "out")

    def __init__(self, words: Iterable[str]) -> None:
        goto: list[dict[str, int]] = [{}]
        out: list[tuple[str, ...]] = [()]
        for w in words:
            node = 0
            for ch in w:
                nxt = goto[node].get(ch)
                if nxt is None:
                    nxt = len(goto)
                    goto[node][ch] = nxt
                    goto.append({})
                    out.append(())
                node = nxt
            out[node] = out[node] + (w,)
        fail = [0] * len(goto)
        queue = list(goto[0].values())
        for node in queue:  # breadth first: a node's failure target is done before it
            for ch, nxt in goto[node].items():
                f = fail[node]
                while f and ch not in goto[f]:
                    f = fail[f]
                target = goto[f].get(ch, 0)
                fail[nxt] = target if target != nxt else 0
                out[nxt] = out[nxt] + out[fail[nxt]]
                queue.append(nxt)
        self.goto, self.fail, self.out = goto, fail, out

    def iter(self, text: str) -> list[tuple[int, str]]:
        """(index of the last character, word) for every occurrence of every word."""
        goto, fail, out = self.goto, self.fail, self.out
        found: list[tuple[int, str]] = []
        node = 0
        for i, ch in enumerate(text):
            while True:
                nxt = goto[node].get(ch)
                if nxt is not None:
                    node = nxt
                    break
                if node == 0:
                    break
                node = fail[node]
            if out[node]:
                found.extend((i, w) for w in out[node])
        return found


class WordFilter:
    """A set of words (and optionally the contact rule), matched in one pass."""

    __slots__ = ("words", "contacts", "_auto")

    def __init__(self, words: Iterable[str] = (), contacts: bool = False) -> None:
        forms = sorted({f for f in (word_form(w) for w in words) if f})
        self.words = forms
        self.contacts = contacts
        self._auto = Automaton(forms) if forms else None

    def __bool__(self) -> bool:
        return bool(self.words) or self.contacts

    def find(self, text: str) -> list[Match]:
        """Every match in `text`, in order of where it starts."""
        if not self:
            return []
        form = fast_form(text)
        spans: list[tuple[int, int, str]] = []
        if self._auto is not None and form:
            for end, word in self._auto.iter(form):
                spans.append((end - len(word) + 1, end + 1, word))
        if self.contacts:
            for name, rx in _CONTACT_RES:
                for m in rx.finditer(form):
                    spans.append((m.start(), m.end(), "contact:" + name))
        if not spans:
            return []
        spans.sort()
        where = matching_form(text)[1]  # only for a comment that matched
        return [Match(where[a], where[b - 1] + 1, w, tuple(sorted({where[k] for k in range(a, b)}))) for a, b, w in spans]

    def mask(self, text: str, matches: list[Match] | None = None) -> str:
        """`text` with every matched character shown as `*` (the spaces and punctuation
        between them kept)."""
        matches = self.find(text) if matches is None else matches
        if not matches:
            return text
        hit = {i for m in matches for i in m.chars}
        return "".join("*" if i in hit else ch for i, ch in enumerate(text))


def combine(*filters: WordFilter) -> WordFilter:
    """One filter with the words of all (the global list and a room's)."""
    words: list[str] = []
    for f in filters:
        words.extend(f.words)
    return WordFilter(words, any(f.contacts for f in filters))


def load_words(path: str) -> list[str]:
    """A word list file: one word a line; blank lines and lines starting with # skipped."""
    with open(path, encoding="utf-8") as fh:
        return [line.strip() for line in fh if line.strip() and not line.lstrip().startswith("#")]
