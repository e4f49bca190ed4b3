"""The live page of the local pipeline: what a person watching a run wants to see, every few seconds.

- in:  the two OpenSearch indices (counts, dead letters by reason, sentiment over time, latest summaries) and the
  flow's Prometheus endpoint (records read, lag, the Bedrock window, throttles, latency, tokens, cost, backup
  and epoch age): only what a real deployment also has;
- out: an HTML page served on loopback (`server.py`: `/`, `/fragment`, `/state.json`) that refreshes itself, and
  the same rendering written as `out/report.html` at the end of a demo (`page.py`).

No JavaScript or CSS from elsewhere: the charts are SVG drawn here (`charts.py`), the refresh is a few lines of
the page's own script.
"""
