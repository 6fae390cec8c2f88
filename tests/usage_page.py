"""Reading /usage/'s table back out of its HTML, for the tests that compare it with the
exports and with figures computed on their own."""

from html.parser import HTMLParser

PARTS = ("cell-tasks", "cell-status", "cell-run", "cell-cost")


class UsageTable(HTMLParser):
    """rows: [(label, [cell or None, ...])], a cell {part: text} by PARTS; the header's
    column labels in `columns`."""

    def __init__(self, html):
        super().__init__()
        self.rows, self.columns = [], []
        self.in_table = self.in_head = False
        self.row = self.cell = self.part = self.label = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        classes = (dict(attrs).get("class") or "").split()
        if tag == "table" and "usage-table" in classes:
            self.in_table = True
        if not self.in_table:
            return
        if tag == "thead":
            self.in_head = True
        elif tag == "tr" and not self.in_head:
            self.row = []
        elif tag == "th":
            self.label = ""
        elif tag == "td":
            self.cell = {}
        elif tag == "div" and self.cell is not None:
            self.part = next((c for c in classes if c in PARTS), None)
            if self.part:
                self.cell[self.part] = ""

    def handle_endtag(self, tag):
        if not self.in_table:
            return
        if tag == "table":
            self.in_table = False
        elif tag == "thead":
            self.in_head = False
        elif tag == "th":
            if self.in_head:
                self.columns.append(self.label.strip())
            else:
                self.row_label = self.label.strip()
            self.label = None
        elif tag == "td":
            self.row.append(self.cell or None)
            self.cell = None
        elif tag == "div":
            self.part = None
        elif tag == "tr" and self.row is not None:
            self.rows.append((self.row_label, self.row))
            self.row = None

    def handle_data(self, data):
        if self.label is not None:
            self.label += data
        if self.cell is not None and self.part:
            self.cell[self.part] += data


def figures(cell):
    """A cell's (tasks, succeeded, failed, cancelled, cost) as the page shows them."""
    s, f, c = (int(x) for x in cell["cell-status"].split("·"))
    return int(cell["cell-tasks"]), s, f, c, cell["cell-cost"].strip()
