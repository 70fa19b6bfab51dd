"""core/wordfilter.py fed plain strings: evasions, masking, the contact rule."""

from __future__ import annotations

from liveroom.core.wordfilter import WordFilter, combine, matching_form


def test_matching_form_drops_spaces_punctuation_and_maps_back() -> None:
    form, where = matching_form("Ａ b.微 信!")
    assert form == "ab微信"
    assert where == [0, 2, 4, 6]


def test_evasions_match() -> None:
    f = WordFilter(["微信", "Spam", "傻瓜", "联系"])
    for text in ["加我微信", "加我微 信", "微.信", "微-信 吧", "ＳＰＡＭ here", "s p a m", "傻\u200b瓜", "聯繫我", "联 繫"]:
        assert f.find(text), text
    for text in ["微博", "spa m", "no"]:
        if text == "spa m":
            assert f.find(text)  # spaces between letters are ignored: still 'spam'
        else:
            assert not f.find(text), text


def test_traditional_word_matches_simplified_text() -> None:
    f = WordFilter(["聯繫"])  # the list itself in traditional characters
    assert f.find("请联系我")


def test_mask_keeps_what_lies_between() -> None:
    f = WordFilter(["微信"])
    assert f.mask("加我微 信吧") == "加我* *吧"
    assert f.mask("ｗｅｉ 微-信") == "ｗｅｉ *-*"
    assert f.mask("nothing") == "nothing"


def test_contact_rule() -> None:
    f = WordFilter(contacts=True)
    assert [m.what for m in f.find("call 138 1234 5678")] == ["contact:phone"]
    assert [m.what for m in f.find("加V: abc_1234")] == ["contact:wechat"]
    assert [m.what for m in f.find("V信 helloworld")] == ["contact:wechat"]
    assert [m.what for m in f.find("ＱＱ 12345678")] == ["contact:qq"]
    assert [m.what for m in f.find("扣扣号：987654")] == ["contact:qq"]
    assert f.mask("call １３８-1234-5678 now") == "call ***-****-**** now"
    # not contacts: a 10-digit number, a price, an id without its marker
    for text in ["1381234567", "only 199 yuan", "abc_1234", "12345678"]:
        assert not f.find(text), text
    assert not WordFilter().find("13812345678")  # the rule is switched off


def test_overlapping_words_and_combine() -> None:
    f = combine(WordFilter(["ab"]), WordFilter(["bc"], contacts=True))
    assert [m.what for m in f.find("xabcx")] == ["ab", "bc"]
    assert f.mask("xabcx") == "x***x"
    assert f.contacts


def test_thousands_of_words() -> None:
    words = [f"词{i}语" for i in range(5000)]
    f = WordFilter(words)
    assert [m.what for m in f.find("这是 词 4 2 7 语 啊")] == ["词427语"]
    assert not f.find("这是词语啊")
