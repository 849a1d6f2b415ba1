"""Letters for post: an A4 PDF laid out for a DL window envelope (A4 folded in three).

The recipient's name and address sit in the window (20 mm from the left, 50 mm from the top, 85
by 35 mm: inside the window of the common DL and C5 window envelopes). Nothing else is printed
in or near the window, and the service's name goes top right where the envelope hides it: a
window showing "Restorative Justice" would tell anyone who handles the post that the person is
involved in a crime. The text is set in a Unicode TrueType font (DejaVu Sans by default) so
Welsh (ŵ, ŷ, â) prints as written.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Sequence

from .vocabulary import NotificationProblem

DEFAULT_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
DEFAULT_BOLD_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"

PAGE_WIDTH, PAGE_HEIGHT = 210.0, 297.0    # A4, millimetres
MARGIN = 20.0
ADDRESS_X, ADDRESS_Y, ADDRESS_W, ADDRESS_H = 20.0, 50.0, 85.0, 35.0
ADDRESS_FONT_PT, ADDRESS_LINE_MM = 10, 4.6
MAX_ADDRESS_LINES = 7                     # the name and at most six lines: what fits the window
FOLD_MARKS_MM = (99.0, 198.0)             # A4 folded in three for a DL envelope
BODY_TOP = 100.0                          # below the window and the first fold
BODY_FONT_PT, BODY_LINE_MM = 11, 5.6
MAX_BODY_CHARS = 20_000
PAGE_WORDS = {"en": ("Page", "of"), "cy": ("Tudalen", "o")}


class LetterProblem(NotificationProblem):
    what = "letter"


def _font(path: str | Path | None, default: str, what: str) -> str:
    chosen = Path(path or default)
    if not chosen.is_file():
        raise FileNotFoundError(f"the {what} font for letters was not found at {chosen}: install a Unicode TrueType "
                                f"font (Debian: fonts-dejavu-core) or pass its path")
    return str(chosen)


def letter_pdf(*, recipient_name: str, address_lines: Sequence[str], date_text: str, subject: str, body: str,
               county_name: str, font_path: str | Path | None = None, bold_font_path: str | Path | None = None,
               language: str = "en", compress: bool = True, created_at: datetime | None = None) -> bytes:
    """The letter as PDF bytes. address_lines are the postal address under the name, postcode
    last. county_name is the sender (the service's name) printed top right. A missing font is a
    FileNotFoundError naming it; an address that will not fit the window, or a missing part, is
    a LetterProblem."""
    from fpdf import FPDF     # here, so the rest of the domain imports without fpdf2

    regular = _font(font_path, DEFAULT_FONT, "regular")
    if bold_font_path is None and font_path is not None:
        bold = regular        # a caller's own font: use it for headings too unless told otherwise
    else:
        try:
            bold = _font(bold_font_path, DEFAULT_BOLD_FONT, "bold")
        except FileNotFoundError:
            if bold_font_path is not None:
                raise
            bold = regular

    lines = [" ".join(str(line).split()) for line in address_lines]
    problems = []
    name = " ".join(str(recipient_name).split())
    if not name:
        problems.append(("recipient_name", "is required"))
    if not lines or not all(lines):
        problems.append(("address_lines", "needs at least one line, and no empty ones"))
    if len(lines) + 1 > MAX_ADDRESS_LINES:
        problems.append(("address_lines", f"at most {MAX_ADDRESS_LINES - 1} lines fit the envelope window"))
    if not body.strip():
        problems.append(("body", "is required"))
    if len(body) > MAX_BODY_CHARS:
        problems.append(("body", f"must be at most {MAX_BODY_CHARS} characters"))
    if "\x00" in body + subject + name + county_name + date_text + "".join(lines):
        problems.append(("body", "must not contain NUL characters"))
    if language not in PAGE_WORDS:
        problems.append(("language", f"{language!r} is not one of {', '.join(PAGE_WORDS)}"))
    if problems:
        raise LetterProblem(problems)

    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    pdf.set_compression(compress)
    pdf.add_font("body", "", regular)
    pdf.add_font("body", "B", bold)
    pdf.set_creator("Mend")
    if created_at is not None:
        pdf.set_creation_date(created_at)
    page_word, of_word = PAGE_WORDS[language]

    def footer():
        pdf.set_y(-15)
        pdf.set_font("body", "", 8)
        pdf.cell(0, 5, f"{page_word} {pdf.page_no()} {of_word} {{nb}}", align="C")

    pdf.footer = footer
    pdf.alias_nb_pages()
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.set_auto_page_break(True, margin=MARGIN + 5)
    pdf.add_page()

    # Fold marks in the left margin, on the first page only.
    pdf.set_line_width(0.2)
    for y in FOLD_MARKS_MM:
        pdf.line(3, y, 8, y)

    # Sender and date, top right: outside the window.
    pdf.set_font("body", "B", 11)
    pdf.set_xy(115, 15)
    pdf.multi_cell(PAGE_WIDTH - MARGIN - 115, 5, county_name, align="R")
    pdf.set_font("body", "", 10)
    pdf.set_x(115)
    pdf.multi_cell(PAGE_WIDTH - MARGIN - 115, 5, date_text, align="R")

    # The address block, inside the window.
    pdf.set_font("body", "", ADDRESS_FONT_PT)
    too_wide = [i for i, line in enumerate([name] + lines) if pdf.get_string_width(line) > ADDRESS_W]
    if too_wide:
        raise LetterProblem([("recipient_name" if i == 0 else f"address_lines[{i - 1}]",
                              f"is too long to show in the envelope window (at most {ADDRESS_W:.0f} mm)")
                             for i in too_wide])
    for i, line in enumerate([name] + lines):
        pdf.set_xy(ADDRESS_X, ADDRESS_Y + i * ADDRESS_LINE_MM)
        pdf.cell(ADDRESS_W, ADDRESS_LINE_MM, line)

    # Heading and text.
    pdf.set_xy(MARGIN, BODY_TOP)
    if subject.strip():
        pdf.set_font("body", "B", BODY_FONT_PT + 1)
        pdf.multi_cell(0, BODY_LINE_MM + 0.4, " ".join(subject.split()))
        pdf.ln(3)
    pdf.set_font("body", "", BODY_FONT_PT)
    pdf.multi_cell(0, BODY_LINE_MM, body.replace("\r\n", "\n").replace("\t", "    ").strip())
    return bytes(pdf.output())
