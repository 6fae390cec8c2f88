"""The usage table as files: CSV in long form (CONTRACT.md: one line per row × column
pair with tasks, then each row's totals, then the grand total) and XLSX as the page
shows it (openpyxl's write-only mode into a temporary file, never a workbook in memory)."""

import csv
import tempfile

from django.http import FileResponse, StreamingHttpResponse

from tasks.usage.report import as_decimal, text_of
from tasks.web.exports import Echo, neutralise

CSV_HEADER = ["row", "col", "tasks", "succeeded", "failed", "cancelled", "run_seconds", "cost"]
MEASURES = ["tasks", "succeeded", "failed", "cancelled", "run_seconds", "cost"]
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
TOTAL = "*"


def figures_values(figures):
    return [
        figures.tasks,
        figures.succeeded,
        figures.failed,
        figures.cancelled,
        f"{figures.run_seconds:.3f}",
        figures.cost_text,
    ]


def csv_lines(report):
    writer = csv.writer(Echo())
    yield writer.writerow(CSV_HEADER)
    for r in report.row_values:
        row = neutralise(text_of(r))
        for c in report.col_values:
            figures = report.cells.get((r, c))
            if figures is not None:
                yield writer.writerow([row, neutralise(text_of(c)), *figures_values(figures)])
        yield writer.writerow([row, TOTAL, *figures_values(report.row_totals[r])])
    yield writer.writerow([TOTAL, TOTAL, *figures_values(report.total)])


def csv_response(report):
    response = StreamingHttpResponse(csv_lines(report), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{file_name(report)}.csv"'
    return response


def xlsx_response(report):
    from openpyxl import Workbook  # only the exports need it
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    book = Workbook(write_only=True)
    sheet = book.create_sheet("usage")

    def text(value):
        # A string cell, never a formula, whatever it starts with (a caller's "=...").
        # Control characters have no place in a cell: openpyxl refuses them.
        cell = WriteOnlyCell(sheet, value=ILLEGAL_CHARACTERS_RE.sub("", text_of(value)))
        cell.data_type = "s"
        return cell

    def numbers(figures):
        if figures is None:
            return [None] * len(MEASURES)
        values = figures_values(figures)[:4]
        return [*values, round(figures.run_seconds, 3), as_decimal(figures)]

    heading = f"{report.rows} \\ {report.cols}"
    sheet.append([heading, *(text(c) for c in report.col_values for _ in MEASURES), "total"])
    sheet.append(["", *(MEASURES * (len(report.col_values) + 1))])
    for r in report.row_values:
        cells = [v for c in report.col_values for v in numbers(report.cells.get((r, c)))]
        sheet.append([text(r), *cells, *numbers(report.row_totals[r])])
    totals = [v for c in report.col_values for v in numbers(report.col_totals[c])]
    sheet.append(["total", *totals, *numbers(report.total)])
    spool = tempfile.TemporaryFile()
    book.save(spool)
    spool.seek(0)
    return FileResponse(
        spool, as_attachment=True, filename=f"{file_name(report)}.xlsx", content_type=XLSX_TYPE
    )


def file_name(report):
    return f"usage-{report.start}-{report.end}-{report.rows}-{report.cols}"
