"""Usage and cost (/usage/): who used how much, on which account, at what price.

rollup.py keeps the daily counts, prices.py finds a task's price, report.py builds the
table, views.py and exports.py show and export it.
"""
