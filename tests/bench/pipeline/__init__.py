"""The pipeline benchmark behind `make bench` (issue 15): one command that starts its own
stack, runs each measure beside a ceiling measured in the same run, prints one table,
writes it into docs/measurements.md and draws docs/bench/latency.png.

One module per job: sizes (how much of each), bodies (the reports sent), http_client and
load (closed- and open-loop load), bare_endpoint (the ceiling's Flask app), final_status
(seeing reports reach their final status without polling), external (the component
benches' seam), measures, table, plot, markdown_section; __main__ ties them together.
"""
