"""Reports of need and impact (CONTRACT.md "Reports").

Where things are:
- `disclosure` — the disclosure control every figure passes through before it
  leaves the server (suppression of small counts, secondary suppression,
  rounding); pure, no database.
- `period` — whole calendar months and the groupings; pure.
- `facts` — what each counted family brings to a report over a period,
  gathered a chunk of families at a time (keys opened in batch).
- `figures` — the raw figures of each report per group; pure.
- `services` — `run_report`, the use case (roles, parameters, audit).
"""
