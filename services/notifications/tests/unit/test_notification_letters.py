"""Letters as PDF: the text is really there (read back through the fonts' Unicode maps, Welsh
included), the address sits in the envelope window and nothing else does, pages are numbered,
and what cannot be posted is refused."""
from __future__ import annotations

import re

import pytest

from mend_notifications.domain.letters import (ADDRESS_H, ADDRESS_W, ADDRESS_X, ADDRESS_Y, DEFAULT_FONT, PAGE_HEIGHT,
                                               LetterProblem, letter_pdf)

MM = 72 / 25.4


def letter(**kw) -> bytes:
    args = dict(recipient_name="Siân Pritchard", address_lines=["Flat 2", "14 Castle Street", "Penrith", "CA11 7PT"],
                date_text="16 Mehefin 2026", subject="Eich cyfarfod adferol",
                body="Annwyl Siân Pritchard,\n\nRydym wedi trefnu eich cyfarfod adferol: ŵ ŷ â ô.\n\nCofion cynnes,",
                county_name="Gwasanaeth Cyfiawnder Adferol Cumbria", language="cy", compress=False)
    args.update(kw)
    return letter_pdf(**args)


# -- reading an uncompressed fpdf2 PDF back: glyph ids through each font's ToUnicode map ----------
def _literal_strings(s: str):
    """The PDF literal strings shown with Tj in a text object, unescaped, as bytes."""
    i, out = 0, []
    while (i := s.find("(", i)) != -1:
        depth, j, buf = 1, i + 1, bytearray()
        while depth:
            c = s[j]
            if c == "\\":
                nxt = s[j + 1]
                if nxt in "01234567":
                    m = re.match(r"[0-7]{1,3}", s[j + 1:])
                    buf.append(int(m.group(0), 8))
                    j += 1 + len(m.group(0))
                    continue
                buf.append(ord({"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}.get(nxt, nxt)))
                j += 2
                continue
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
                if not depth:
                    break
            buf.append(ord(c))
            j += 1
        out.append(bytes(buf))
        i = j + 1
    return out


def pdf_texts(data: bytes) -> list[tuple[float, float, str]]:
    """(x mm from the left, y mm from the top, text) for each text object."""
    s = data.decode("latin-1")
    objects = {int(n): body for n, body in re.findall(r"(\d+) 0 obj(.*?)endobj", s, re.S)}
    fonts = dict(re.findall(r"/(F\d+) (\d+) 0 R", re.search(r"/Font\s*<<(.*?)>>", s, re.S).group(1)))
    maps = {}
    for name, ref in fonts.items():
        to_unicode = int(re.search(r"/ToUnicode (\d+) 0 R", objects[int(ref)]).group(1))
        cmap = objects[to_unicode]
        pairs = {int(a, 16): chr(int(b, 16)) for a, b in re.findall(r"<([0-9A-F]{4})> <([0-9A-F]{4})>", cmap)}
        maps[name] = pairs
    texts, font = [], None
    for stream in re.findall(r"stream\r?\n(.*?)endstream", s, re.S):
        for block in re.findall(r"BT(.*?)ET", stream, re.S):
            if m := re.search(r"/(F\d+) [\d.]+ Tf", block):
                font = m.group(1)
            at = re.search(r"([\d.]+) ([\d.]+) Td", block)
            if not at or font not in maps:
                continue
            raw = b"".join(_literal_strings(block[at.end():]))
            text = "".join(maps[font].get(int.from_bytes(raw[k:k + 2], "big"), "?") for k in range(0, len(raw), 2))
            texts.append((float(at.group(1)) / MM, PAGE_HEIGHT - float(at.group(2)) / MM, text))
    return texts


def all_text(data: bytes) -> str:
    return "\n".join(t for _, _, t in pdf_texts(data))


def in_window(x: float, y: float) -> bool:
    return ADDRESS_X - 1 <= x <= ADDRESS_X + ADDRESS_W and ADDRESS_Y - 1 <= y <= ADDRESS_Y + ADDRESS_H


# -----------------------------------------------------------------------------------------------
def test_a_letter_is_a_pdf_with_its_welsh_text_readable():
    data = letter()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    assert data.count(b"/Type /Page\n") == 1 and b"/MediaBox [0 0 595.28 841.89]" in data     # one A4 page
    text = all_text(data)
    for part in ("Siân Pritchard", "14 Castle Street", "CA11 7PT", "16 Mehefin 2026", "Eich cyfarfod adferol",
                 "Annwyl Siân Pritchard,", "ŵ ŷ â ô", "Cofion cynnes,", "Gwasanaeth Cyfiawnder Adferol",
                 "Tudalen 1 o 1"):
        assert part in text, part


def test_the_address_and_only_the_address_is_in_the_envelope_window():
    placed = pdf_texts(letter())
    window = [t for x, y, t in placed if in_window(x, y)]
    assert window == ["Siân Pritchard", "Flat 2", "14 Castle Street", "Penrith", "CA11 7PT"]
    # The service's name (which says what this letter is about) is nowhere near the window.
    for x, y, t in placed:
        if "Cyfiawnder" in t or "Adferol" in t or "adferol" in t:
            assert not in_window(x, y) and (x > ADDRESS_X + ADDRESS_W or y > ADDRESS_Y + ADDRESS_H + 5)


def test_the_window_is_where_dl_window_envelopes_have_theirs():
    # A4 folded in three for a DL envelope: the top panel is 99 mm, and window envelopes put the
    # window about 20 mm from the left and 45 to 55 mm from the top; the block must clear the fold.
    assert 15 <= ADDRESS_X <= 25 and 40 <= ADDRESS_Y <= 55 and ADDRESS_Y + ADDRESS_H <= 95
    xs = {round(x, 1) for x, y, _ in pdf_texts(letter()) if in_window(x, y)}
    assert len(xs) == 1 and ADDRESS_X <= xs.pop() <= ADDRESS_X + 2      # one left edge, after the cell's padding


def test_a_long_letter_runs_onto_numbered_pages():
    body = "\n\n".join(f"Paragraph {i}: " + "Diolch am siarad â ni. " * 12 for i in range(40))
    data = letter(body=body, language="en")
    pages = data.count(b"/Type /Page\n")
    assert pages >= 3
    text = all_text(data)
    assert f"Page 1 of {pages}" in text and f"Page {pages} of {pages}" in text
    assert "Paragraph 39:" in text


def test_compressed_output_is_a_smaller_pdf():
    small, big = letter(compress=True), letter(compress=False)
    assert small.startswith(b"%PDF-") and len(small) < len(big)


def test_a_missing_font_is_a_clear_error():
    with pytest.raises(FileNotFoundError) as e:
        letter(font_path="/nonexistent/Font.ttf")
    assert "/nonexistent/Font.ttf" in str(e.value) and "font" in str(e.value)


def test_another_font_can_be_given():
    data = letter(font_path=DEFAULT_FONT.replace("DejaVuSans.ttf", "DejaVuSerif.ttf"))
    assert b"DejaVuSerif" in data and "ŵ ŷ â ô" in all_text(data)


@pytest.mark.parametrize("kw, problem", [
    (dict(recipient_name="  "), ("recipient_name", "is required")),
    (dict(address_lines=[]), ("address_lines", "needs at least one line, and no empty ones")),
    (dict(address_lines=["1 Road", "", "CA11 7PT"]), ("address_lines", "needs at least one line, and no empty ones")),
    (dict(address_lines=[f"line {i}" for i in range(7)]), ("address_lines", "at most 6 lines fit the envelope window")),
    (dict(address_lines=["The Old Rectory Cottage Annexe, Llanfairpwllgwyngyll Road West", "LL61 5UJ"]),
     ("address_lines[0]", "is too long to show in the envelope window (at most 85 mm)")),
    (dict(body=" \n "), ("body", "is required")),
    (dict(body="x\x00"), ("body", "must not contain NUL characters")),
    (dict(language="fr"), ("language", "'fr' is not one of en, cy")),
])
def test_what_cannot_be_posted_is_refused(kw, problem):
    with pytest.raises(LetterProblem) as e:
        letter(**kw)
    assert problem in e.value.problems
