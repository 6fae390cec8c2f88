"""Usage and cost (/usage/): who used how much, on which account, at what price.

rollup.py keeps the daily counts, priced with prices.py when a day is rolled; cells.py
sums them per grouping; report.py builds the table, views.py and table.py show it,
exports.py exports it.
"""
